"""`Retries`, the retry policy both request loops drive (`LLMClient.generate`, `HTTPLogprobs`), on a fake clock:
what is raised at once, how many attempts are made, and when the deadline stops them."""

from __future__ import annotations

import pytest

from hf_prefsel.errors import EndpointAccessError, EndpointError, EndpointUnavailableError
from hf_prefsel.llm import LLMConfig
from hf_prefsel.llm.retry import HTTPStatusError, Retries


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drive(retries: Retries, failures: list[BaseException], clock: Clock) -> list[float]:
    """A loop as the clients run one: each attempt fails with the next failure; returns the waits asked for."""
    waits: list[float] = []
    retries.start()
    for exc in failures:
        clock.now += 1.0  # each attempt takes a second
        retries.failed(exc, "http://h", lambda e: EndpointError(f"rejected: {e}"))
        delay = retries.next_delay()
        if delay is None:
            return waits
        waits.append(delay)
        clock.now += delay
    raise AssertionError("more attempts than failures")


def test_transient_failures_are_retried_max_retries_times_then_the_last_one_is_reported():
    clock = Clock()
    retries = Retries(LLMConfig(max_retries=2, backoff=1.0, deadline=None), clock, ["sk-tok"])
    waits = drive(retries, [HTTPStatusError(503, "http://h", "busy sk-tok")] * 5, clock)
    assert len(waits) == 2 and 0.75 <= waits[0] <= 1.25 and 1.5 <= waits[1] <= 2.5  # doubling, with jitter
    assert retries.attempts == 3 and not retries.deadline_hit
    error = retries.error("http://h")
    assert type(error) is EndpointError and "after 3 attempts" in str(error) and "sk-tok" not in str(error)
    assert f"in {clock.now - 100.0:.1f} s" in str(error)


def test_the_deadline_stops_before_a_wait_that_would_reach_it():
    clock = Clock()
    retries = Retries(LLMConfig(max_retries=10, backoff=4.0, deadline=10.0), clock)
    waits = drive(retries, [TimeoutError("silent")] * 11, clock)
    assert retries.deadline_hit and len(waits) == 1  # 1 s + ~4 s, then 1 s more + ~8 s would pass 10 s
    error = retries.error("http://h")
    assert isinstance(error, EndpointUnavailableError) and "2 attempts" in str(error) and "deadline" in str(error)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_access_refusals_raise_at_once(status):
    retries = Retries(LLMConfig(max_retries=3), Clock())
    with pytest.raises(EndpointAccessError, match=f"HTTP {status}, not retried"):
        retries.failed(HTTPStatusError(status, "http://h", "no"), "http://h", lambda e: AssertionError("not this"))
    assert retries.attempts == 1


def test_other_failures_raise_what_the_caller_builds():
    retries = Retries(LLMConfig(max_retries=3), Clock())
    bad = HTTPStatusError(400, "http://h", "prompt too long")
    with pytest.raises(EndpointError, match="rejected") as info:
        retries.failed(bad, "http://h", lambda e: EndpointError(f"rejected: {e}"))
    assert info.value.__cause__ is bad
    with pytest.raises(HTTPStatusError) as again:  # the failure itself, unchanged
        retries.failed(bad, "http://h", lambda e: e)
    assert again.value is bad and bad.__cause__ is None
    flaky = HTTPStatusError(500, "http://h", "logits_all")  # retryable by status, refused by the caller's rule
    with pytest.raises(HTTPStatusError):
        retries.failed(flaky, "http://h", lambda e: e, retryable=lambda e: "logits_all" not in str(e))
