"""Counting what LLM work cost, and enforcing a budget."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Protocol

from ..errors import BudgetExceededError


@dataclass
class Usage:
    """Counters of one client's work since it was created (or last `reset`).

    `calls` are requests that reached a model (the cost); `cache_hits` were answered from the
    request cache for free. `invalid_replies` failed schema validation (each may trigger a
    repair call); `failures` are requests that ended in an error after retries and repairs.
    `rows_fallback` counts rows of several-rows calls whose answer was missing or invalid and
    that were asked again on their own. `rows` are rows an `LLMMapper` computed (not those `datasets` served
    from its cache) and `rows_failed` those of them whose error column is set (endpoint errors, a spent budget,
    invalid replies after repairs, unusable input): what a caller compares to decide a run failed.
    """

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    invalid_replies: int = 0
    repairs: int = 0
    failures: int = 0
    rows_fallback: int = 0
    rows: int = 0
    rows_failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        data["total_tokens"] = self.total_tokens
        return data

    def reset(self) -> None:
        with self._lock:
            for name in self.as_dict():
                if name != "total_tokens":
                    setattr(self, name, 0)

    def __str__(self) -> str:
        d = self.as_dict()
        return (
            f"{d['calls']} calls ({d['cache_hits']} cache hits), {d['prompt_tokens']} prompt + "
            f"{d['completion_tokens']} completion tokens, {d['retries']} retries, "
            f"{d['invalid_replies']} invalid replies ({d['repairs']} repair calls), {d['failures']} failures"
        )


class Spent(Protocol):
    """What a budget is checked against: `Usage`, or a log-probability source's `LogprobUsage`."""

    @property
    def calls(self) -> int: ...

    @property
    def total_tokens(self) -> int: ...


class Budget:
    """Caps on calls and tokens; `reserve` is checked before each paid call."""

    def __init__(self, max_calls: int | None, max_total_tokens: int | None, usage: Spent):
        self.max_calls = max_calls
        self.max_total_tokens = max_total_tokens
        self.usage = usage
        self._in_flight = 0
        self._lock = threading.Lock()

    def reserve(self) -> None:
        with self._lock:
            if self.max_calls is not None and self.usage.calls + self._in_flight >= self.max_calls:
                raise BudgetExceededError(
                    f"The call budget of {self.max_calls} is spent. Replies so far are in the request cache; "
                    "raise `max_calls` and rerun to continue without paying for them again."
                )
            if self.max_total_tokens is not None and self.usage.total_tokens >= self.max_total_tokens:
                raise BudgetExceededError(
                    f"The token budget of {self.max_total_tokens} is spent ({self.usage.total_tokens} used). "
                    "Raise `max_total_tokens` and rerun; cached replies cost nothing."
                )
            self._in_flight += 1

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1
