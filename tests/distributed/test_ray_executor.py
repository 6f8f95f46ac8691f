"""RayExecutor on a real two-node loopback cluster: same result as one process, budgets and concurrency kept over
all workers, node caches merged back, clear errors for a dead address and a hung worker."""

from __future__ import annotations

import time

import pytest
from ray_fakes import HangingTagger, SlowResponder, instructions

from hf_prefsel.distributed import RayExecutor, map_on_ray
from hf_prefsel.errors import ClusterStalledError, ClusterUnavailableError, EndpointUnavailableError
from hf_prefsel.llm import free_port
from hf_prefsel.llm.executor import LocalExecutor
from hf_prefsel.tacos import OpenTagger


def executor(cluster, tmp_path, **kw) -> RayExecutor:
    kw.setdefault("progress", False)
    return RayExecutor(cluster.address, checkpoint_dir=str(tmp_path / "runs"), node_cache_dir=str(tmp_path / "nodes"), **kw)


def test_same_result_as_one_process_and_spread_over_both_nodes(ray_cluster, fault_server, tmp_path):
    server = fault_server()
    ds = instructions(120)
    local, local_usage = LocalExecutor().map(ds, OpenTagger(server.config(str(tmp_path / "local.sqlite"))), batch_size=8, desc="local")
    ray_exec = executor(ray_cluster, tmp_path)
    remote, usage = ray_exec.map(ds, OpenTagger(server.config(str(tmp_path / "ray.sqlite"))), batch_size=8, desc="ray")

    assert remote.column_names == local.column_names
    assert remote.features == local.features
    assert remote.to_list() == local.to_list()
    assert remote["tags"][7] == ["topic word7"]
    assert usage["calls"] == local_usage["calls"] == 120
    assert usage["cache_hits"] == 0
    report = ray_exec.last_run
    assert report.workers == 4 and report.resumed_rows == 0
    assert report.replies_merged == 120


def test_node_caches_are_merged_so_a_single_machine_rerun_is_free(ray_cluster, fault_server, tmp_path):
    server = fault_server()
    cache = str(tmp_path / "driver.sqlite")
    ds = instructions(40)
    first = map_on_ray(ds, OpenTagger(server.config(cache)), address=ray_cluster.address, batch_size=8, progress=False,
                       checkpoint_dir=str(tmp_path / "runs"), node_cache_dir=str(tmp_path / "nodes"))
    paid = server.generation_requests
    assert paid == 40
    again, usage = LocalExecutor().map(ds, OpenTagger(server.config(cache)), batch_size=8, desc="rerun")
    assert usage["calls"] == 0 and usage["cache_hits"] == 40
    assert server.generation_requests == paid
    assert again.to_list() == first.to_list()
    assert not (tmp_path / "nodes").exists() or not any((tmp_path / "nodes").rglob("*.sqlite")), "node caches are dropped after the merge"


def test_total_in_flight_and_call_budget_stay_what_the_user_set(ray_cluster, fault_server, tmp_path):
    slow = SlowResponder(0.05)
    server = fault_server(responder=slow)
    ds = instructions(96)
    llm = server.config(str(tmp_path / "c.sqlite"), max_concurrency=6, max_calls=50)
    out, usage = executor(ray_cluster, tmp_path).map(ds, OpenTagger(llm), batch_size=8, desc="budget")
    assert slow.peak <= 6
    assert server.generation_requests == usage["calls"] == 50
    assert sum(1 for e in out["tags_error"] if e == "") == 50
    assert all("BudgetExceededError" in e for e in out["tags_error"] if e)


def test_token_budget_is_shared_by_all_workers(ray_cluster, fault_server, tmp_path):
    server = fault_server(responder=SlowResponder(0.02))  # 15 tokens a reply
    llm = server.config(str(tmp_path / "t.sqlite"), max_concurrency=4, max_total_tokens=300)
    out, usage = executor(ray_cluster, tmp_path).map(instructions(96), OpenTagger(llm), batch_size=8, desc="tokens")
    # like one process: no call starts once 300 are spent; calls already in flight (at most 4) still finish
    assert 300 <= usage["prompt_tokens"] + usage["completion_tokens"] <= 300 + 4 * 15
    assert server.generation_requests == usage["calls"] <= 24
    assert sum(1 for e in out["tags_error"] if "BudgetExceededError" in e) == 96 - usage["calls"]


def test_errors_a_mapper_raises_come_back_as_they_are(ray_cluster, tmp_path):
    from hf_prefsel.llm import LLMConfig

    llm = LLMConfig(endpoints=[f"http://127.0.0.1:{free_port()}"], route="completion", cache=False, max_retries=0, backoff=0.01)
    start = time.monotonic()
    with pytest.raises(EndpointUnavailableError, match=r"127\.0\.0\.1:\d+"):
        executor(ray_cluster, tmp_path).map(instructions(16), OpenTagger(llm), batch_size=8, desc="dead endpoint")
    assert time.monotonic() - start < 60


def test_dead_cluster_address_fails_within_seconds(tmp_path, fault_server):
    server = fault_server()
    start = time.monotonic()
    with pytest.raises(ClusterUnavailableError, match="No Ray cluster answers"):
        map_on_ray(instructions(4), OpenTagger(server.config(None)), address=f"127.0.0.1:{free_port()}")
    assert time.monotonic() - start < 5


def test_hung_worker_gives_a_clear_error_not_a_hang(ray_cluster, fault_server, tmp_path):
    server = fault_server()
    ds = instructions(32).map(lambda row, i: {"instruction": row["instruction"] + (" HANG" if i == 20 else "")}, with_indices=True)
    start = time.monotonic()
    with pytest.raises(ClusterStalledError, match="finished no request in 5 s"):
        executor(ray_cluster, tmp_path, stall_timeout=5).map(ds, HangingTagger(server.config(None)), batch_size=8, desc="hang")
    assert time.monotonic() - start < 40


@pytest.mark.slow
def test_tacos_runs_end_to_end_on_the_cluster_with_the_same_selection(ray_cluster, fault_server, tmp_path):
    from ray_fakes import tacos_responder, tacos_rows

    from hf_prefsel.tacos.pipeline import TacosConfig, TacosPipeline

    server = fault_server(responder=tacos_responder)
    ds = tacos_rows(48)
    config = TacosConfig(budget=8, explanations=True, batch_size=8)
    local = TacosPipeline(server.config(str(tmp_path / "local.sqlite")), config).run(ds, progress=False)
    paid = server.generation_requests
    ray_exec = executor(ray_cluster, tmp_path)
    remote = TacosPipeline(server.config(str(tmp_path / "ray.sqlite")), config).run(ds, progress=False, executor=ray_exec)

    assert server.generation_requests == 2 * paid  # tagging and judging both asked again, on the cluster
    assert remote.dataset.to_list() == local.dataset.to_list()
    assert remote.pool["score"] == local.pool["score"]
    assert len(remote.dataset) == 8
    assert sum(1 for s in remote.pool["score"] if s == s) >= 40  # judged (not NaN)
    assert set(remote.pool["tags_error"]) == {""}


@pytest.mark.slow
def test_cli_tags_on_the_cluster_with_ray_flag(ray_cluster, fault_server, tmp_path):
    import json
    import os
    import subprocess
    import sys

    server = fault_server()
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in instructions(24).to_list()))
    out = tmp_path / "tagged.jsonl"
    env = dict(os.environ, HF_PREFSEL_CACHE=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, "-m", "hf_prefsel.cli", "tag", "--data", str(data), "--endpoint", server.url, "--route", "completion",
         "--explanations", "yes", "--batch-size", "4", "--ray", ray_cluster.address, "--output", str(out)],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["tags"] for r in rows] == [[f"topic word{i}"] for i in range(24)]
    assert server.generation_requests == 24
    from hf_prefsel.distributed.caches import read_replies

    assert len(read_replies(str(tmp_path / "cache" / "requests.sqlite"))) == 24  # default node caches merged back here
