"""A Ray cluster of several nodes on this machine (127.0.0.1), for tests, benchmarks and trying `--ray` out.

`ray stop` kills every Ray process on the machine, other people's too, so each node here is a `ray start
--block` in its own session, stopped by signalling that session's process group only. Token auth is off
(`RAY_AUTH_MODE=disabled`, set for the nodes and for this process, the driver): the nodes listen on loopback.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Sequence

from ..llm.local import free_port

RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",  # loopback only; token auth needs the same token on every node and the driver
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # a node stops in ~2 s instead of ~30 s
    "RAY_USAGE_STATS_ENABLED": "0",
}


class LoopbackCluster:
    """Ray nodes on 127.0.0.1 that this object starts and stops.

    Args:
        slots (`int`, defaults to 2): `hf_prefsel` resource units per node, i.e. `RayExecutor` workers per node.
        cpus (`int`, defaults to 1): CPUs each node declares.
        python_path (`Sequence[str]`, defaults to `()`): folders the nodes' workers import from (e.g. test helpers).
        log_dir (`str`, *optional*): where the nodes' `ray start` output goes; a temporary folder by default.

    Example:
        >>> with LoopbackCluster() as cluster:
        ...     cluster.start(nodes=2)
        ...     out = map_on_ray(ds, OpenTagger(llm), address=cluster.address)
    """

    def __init__(self, slots: int = 2, cpus: int = 1, python_path: Sequence[str] = (), log_dir: str | None = None):
        self.slots = slots
        self.cpus = cpus
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # short: Ray's socket paths under it must stay within the 107-byte AF_UNIX limit
        self.temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        self.log_dir = log_dir or self.temp_dir
        self.nodes: list[subprocess.Popen] = []
        self.env = dict(os.environ, **RAY_ENV)
        if python_path:
            self.env["PYTHONPATH"] = os.pathsep.join([*python_path, *filter(None, [os.environ.get("PYTHONPATH")])])
        os.environ.update(RAY_ENV)  # this process is the driver: same auth mode as the nodes

    def _ray_start(self, *args: str) -> subprocess.Popen:
        ray = os.path.join(os.path.dirname(sys.executable), "ray")
        log = open(os.path.join(self.log_dir, f"node{len(self.nodes)}.log"), "w")
        proc = subprocess.Popen(
            [ray, "start", *args, "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.cpus),
             "--object-store-memory", str(200 * 2**20), "--resources", f'{{"hf_prefsel": {self.slots}}}', "--block"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self.nodes.append(proc)
        return proc

    def start(self, nodes: int = 2, timeout: float = 120) -> None:
        """Start the head and `nodes - 1` more nodes, and wait until all are up (connects this process to Ray)."""
        head = self._ray_start("--head", "--port", str(self.port), "--include-dashboard", "false", "--temp-dir", self.temp_dir)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or head.poll() is not None:
                    raise RuntimeError(f"The Ray head did not start; see {self.log_dir}/node0.log.") from None
                time.sleep(0.2)
        for _ in range(nodes - 1):
            self.add_node()
        from .cluster import connect

        connect(self.address)
        self.wait_nodes(nodes, timeout)

    def add_node(self) -> subprocess.Popen:
        """One more node; `wait_nodes` waits for it to join."""
        return self._ray_start("--address", self.address)

    def wait_nodes(self, count: int, timeout: float = 120) -> None:
        import ray

        deadline = time.monotonic() + timeout
        while sum(1 for n in ray.nodes() if n.get("Alive")) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Fewer than {count} Ray nodes came up in {timeout:.0f} s; see the logs in {self.log_dir}.")
            time.sleep(0.3)

    def kill(self, node: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """Stop one node: `sig` to its whole process group (raylet, object store, its workers)."""
        try:
            os.killpg(node.pid, sig)
        except ProcessLookupError:
            pass
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()

    def stop(self) -> None:
        """Disconnect this process and stop every node this object started."""
        import ray

        if ray.is_initialized():
            ray.shutdown()
        for node in reversed(self.nodes):
            if node.poll() is None:
                self.kill(node, signal.SIGTERM)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "LoopbackCluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["LoopbackCluster", "RAY_ENV"]
