"""A real two-node Ray cluster on loopback for the whole session, started and stopped by process group.

`ray stop` would kill every Ray process on the machine (other people's too), so each node is a `ray start
--block` in its own session and is stopped by signalling that session's process group only. Token auth is
turned off for this loopback-only cluster, the same way on the nodes and in this process (the driver).
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

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # ray_fakes: mappers the workers import too (PYTHONPATH below)

pytest.importorskip("ray", reason="the `ray` extra is not installed (pip install -e '.[ray]')")

from hf_prefsel.llm import free_port  # noqa: E402

RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",  # loopback only; token auth would need the same token on nodes and driver
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # stop in ~2 s instead of ~30 s
    "RAY_USAGE_STATS_ENABLED": "0",
}
SLOTS = 2  # workers per node (the custom `hf_prefsel` resource)


class LoopbackCluster:
    """Ray nodes on 127.0.0.1, each a `ray start --block` process group this object owns."""

    def __init__(self, root: str):
        self.root = root
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[subprocess.Popen] = []
        self.temp_dir: str | None = None
        self.env = dict(os.environ, **RAY_ENV)
        self.env["PYTHONPATH"] = os.pathsep.join([HERE, *filter(None, [os.environ.get("PYTHONPATH")])])
        os.environ.update(RAY_ENV)

    def _ray(self, *args: str, log: str) -> subprocess.Popen:
        ray = os.path.join(os.path.dirname(sys.executable), "ray")
        out = open(os.path.join(self.root, log), "w")
        proc = subprocess.Popen([ray, "start", *args, "--num-cpus", "1", "--object-store-memory", str(200 * 2**20),
                                 "--resources", f'{{"hf_prefsel": {SLOTS}}}', "--block"],
                                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.nodes.append(proc)
        return proc

    def start_head(self) -> None:
        # a short temp dir: Ray's socket paths under it must stay within the 107-byte AF_UNIX limit
        self.temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        self._ray("--head", "--port", str(self.port), "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
                  "--temp-dir", self.temp_dir, log="head.log")
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.nodes[0].poll() is not None:
                    raise RuntimeError(f"the Ray head did not start; see {self.root}/head.log")
                time.sleep(0.2)

    def add_node(self) -> subprocess.Popen:
        """Another node joining the cluster; wait for it with `wait_nodes`."""
        return self._ray("--address", self.address, "--node-ip-address", "127.0.0.1", log=f"node{len(self.nodes)}.log")

    def wait_nodes(self, count: int, timeout: float = 120) -> None:
        import ray

        deadline = time.monotonic() + timeout
        while sum(1 for n in ray.nodes() if n.get("Alive")) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {count} Ray nodes came up in {timeout:.0f} s")
            time.sleep(0.3)

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        for proc in reversed(self.nodes):
            if proc.poll() is None:
                self.kill(proc, signal.SIGTERM)
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A head and one worker node (2 worker slots each), this process connected as the driver."""
    import ray

    from hf_prefsel.distributed import connect

    cluster = LoopbackCluster(str(tmp_path_factory.mktemp("ray_cluster")))
    try:
        cluster.start_head()
        cluster.add_node()
        connect(cluster.address)
        cluster.wait_nodes(2)
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.stop()
