"""Faults on a real loopback cluster: a worker node killed mid-job, and the driver killed and rerun."""

from __future__ import annotations

import collections
import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time

import datasets
import pytest
from ray_fakes import SlowResponder, instructions

from hf_prefsel.distributed import RayExecutor
from hf_prefsel.tacos import OpenTagger

HERE = os.path.dirname(os.path.abspath(__file__))


def wait_for_shards(folder: str, count: int, failed=lambda: None, timeout: float = 120) -> None:
    """Until `count` batches are checkpointed; `failed()` returns what ended the run early, if anything."""
    deadline = time.monotonic() + timeout
    while len(glob.glob(os.path.join(folder, "*", "shard-*.arrow"))) < count:
        assert failed() is None, f"the run ended before {count} batches finished: {failed()!r}"
        assert time.monotonic() < deadline, f"fewer than {count} batches finished in {timeout:.0f} s"
        time.sleep(0.05)


def expected_tags(n: int) -> list[list[str]]:
    return [[f"topic word{i}"] for i in range(n)]


@pytest.mark.slow
def test_worker_node_killed_mid_job_loses_no_row(ray_cluster, fault_server, tmp_path):
    server = fault_server(responder=SlowResponder(0.05))
    node = ray_cluster.add_node()
    ray_cluster.wait_nodes(3)
    runs = str(tmp_path / "runs")
    executor = RayExecutor(ray_cluster.address, checkpoint_dir=runs, node_cache_dir=str(tmp_path / "nodes"), progress=False,
                           stall_timeout=120)
    llm = server.config(str(tmp_path / "c.sqlite"), max_concurrency=6)
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = executor.map(instructions(600), OpenTagger(llm), batch_size=8, desc="node loss")
        except BaseException as exc:  # reported by the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    wait_for_shards(runs, 10, failed=lambda: outcome.get("error"))
    ray_cluster.kill(node)  # SIGKILL to the node's whole process group: raylet, its workers, their requests
    thread.join(timeout=240)
    assert not thread.is_alive(), "the run did not finish after the node loss"
    assert "error" not in outcome, outcome.get("error")
    out, usage = outcome["result"]
    report = executor.last_run
    assert report.workers == 6 and report.workers_lost >= 2  # two ran on the killed node
    assert report.batches_requeued >= 1
    assert len(out) == 600
    assert out["tags"] == expected_tags(600)
    assert set(out["tags_error"]) == {""}


@pytest.mark.slow
def test_driver_killed_and_rerun_gives_no_duplicate_and_repays_only_requests_in_flight(ray_cluster, fault_server, tmp_path):
    server = fault_server(responder=SlowResponder(0.05))
    n, runs, out_dir = 400, str(tmp_path / "runs"), str(tmp_path / "out")
    command = [sys.executable, os.path.join(HERE, "ray_driver.py"), ray_cluster.address, server.url, str(n), runs,
               str(tmp_path / "driver.sqlite"), str(tmp_path / "nodes"), out_dir]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))

    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_shards(runs, 15, failed=lambda: first.poll() and first.stderr.read()[-3000:])
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    paid_before = server.generation_requests
    assert paid_before < n, "the first run was not interrupted mid-job"

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    out = datasets.load_from_disk(out_dir)

    assert summary["report"]["resumed_rows"] >= 15 * 8
    assert len(out) == n and out["tags"] == expected_tags(n)  # every row once, in order
    assert out["instruction"] == instructions(n)["instruction"]
    repaid = [p for p, count in collections.Counter(r["prompt"] for r in server.requests).items() if count > 1]
    # only requests in flight when the driver died can be paid twice (at most max_concurrency = 4)
    assert len(repaid) <= 4
    assert server.generation_requests == n + len(repaid)
    # the rerun asked once per unfinished row, paying only where no node had the reply cached
    usage = summary["usage"]
    assert usage["calls"] + usage["cache_hits"] == n - summary["report"]["resumed_rows"]
    assert usage["calls"] <= server.generation_requests - paid_before
