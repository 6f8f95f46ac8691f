"""Requests in flight per replica (`hf_prefsel.llm.concurrency`) against a model of a batching server."""

from __future__ import annotations

import pytest

from hf_prefsel.llm import LLMClient, LLMConfig
from hf_prefsel.llm.concurrency import ReplicaLimit, reported_limit

from .batching_server import BatchingServer, tags_for


def _prompts(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"Input: request number {i} about gardening\nOutput:"}] for i in range(n)]


def _run(urls: list[str], n: int, **config) -> LLMClient:
    settings = dict(endpoints=urls, route="completion", cache=False, max_retries=6, backoff=0.05, **config)
    client = LLMClient(LLMConfig(**settings))
    results = client.run_text(_prompts(n))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    return client


def test_cold_start_reaches_the_slot_count():
    with BatchingServer(16) as server:  # reports nothing: the limit must be found
        client = _run([server.url], 240)
        assert client.replica_limits()[0] >= 16
        assert server.peak_active == 16
        # and it stops growing once requests only queue (latency per token beyond the tolerance)
        assert client.replica_limits()[0] < 64
        assert server.slot_steps / server.steps > 8  # most steps decoded a full-ish batch


def test_backs_off_under_429s():
    with BatchingServer(8, queue_limit=0) as server:  # refuses anything beyond its 8 slots
        client = _run([server.url], 200)
        assert server.rejected > 0  # it probed beyond the slots ...
        assert client.replica_limits()[0] <= 12  # ... and came back near them
        assert server.rejected < server.served / 4
        assert client.usage.retries == server.rejected


def test_never_exceeds_the_cap():
    with BatchingServer(16, report="llama_cpp") as server:
        client = _run([server.url], 60, max_concurrency=6)
        assert server.peak_in_flight == 6 and client.replica_limits() == [6]


@pytest.mark.parametrize(("report", "expected"), [("llama_cpp", 32 + 8), ("tgi", 32)])
def test_reported_capacity_is_used_from_the_start(report, expected):
    # steps long enough (0.4 s a reply) that sending the first 40 requests never outlasts a reply on a busy machine
    with BatchingServer(32, step=0.05, report=report) as server:
        client = _run([server.url], 128)
        assert client.replica_limits() == [expected]
        assert server.peak_active == 32 and server.rejected == 0
        # TGI refuses beyond max_concurrent_requests, so it never gets more; llama.cpp queues a few
        assert (32 < server.peak_in_flight <= expected) if report == "llama_cpp" else server.peak_in_flight == 32


def test_a_slow_replica_gets_less():
    with BatchingServer(8, step=0.01) as fast, BatchingServer(8, step=0.05) as slow:
        _run([fast.url, slow.url], 240)
        assert fast.served > 2 * slow.served


def test_reported_limits():
    assert reported_limit(1, queues=True) == 4  # llama-cpp-python: one at a time, three waiting
    assert reported_limit(32, queues=True) == 40 and reported_limit(128, queues=False) == 128


def test_limit_discovery_in_virtual_time():
    """The controller alone, on a simulated batching server (no threads, no clock): deterministic."""
    now = [0.0]
    limit = ReplicaLimit(clock=lambda: now[0])
    slots, step, tokens = 24, 0.01, 10
    running: list[tuple[float, float]] = []  # (finish time, sent time)
    history = []
    for _ in range(4000):  # one simulated event per loop: fill up to the limit, then finish the earliest
        while len(running) < limit.limit:
            # a request's latency: its decode steps at the current batch, plus queueing beyond the slots
            batch = min(len(running) + 1, slots)
            queued = max(0, len(running) + 1 - slots)
            latency = tokens * step * (1 + 0.02 * (batch - 1)) * (1 + queued / slots)
            running.append((now[0] + latency, limit.sent()))
        running.sort(key=lambda item: item[0])
        finish, sent = running.pop(0)
        now[0] = finish
        limit.done(sent, "ok", tokens, len(running) + 1)
        history.append(limit.limit)
    assert max(history[:200]) >= slots  # reached the slots from a cold start of 4
    # and settled near them (with a queue of latency within the tolerance), far below the ceiling
    assert all(slots <= h <= 2.5 * slots for h in history[1000:])
    assert limit.limit < ReplicaLimit().ceiling
    cut = limit.limit
    limit.done(limit.sent(), "overload")
    assert limit.limit < cut


def test_replies_are_valid_tag_lists():
    assert tags_for("Input: Water the tomato plants daily\nOutput:") == ["water", "the", "tomato"]
