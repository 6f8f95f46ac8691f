"""How many requests each replica gets at once.

A batching server (TGI, vLLM, llama.cpp's server) decodes many requests in about the time of one, so a fixed
small number in flight leaves most of it idle, and too many only queue (or are refused with 429). Each replica
gets its own `ReplicaLimit`:

- if the server says what it can take (`/info` `max_concurrent_requests` on TGI, `/props` `total_slots` on
  llama.cpp, one request at a time on llama-cpp-python), that is the limit (`reported_limit`), lowered only by
  429/503 replies and timeouts (and regained window by window);
- otherwise the limit is found by measuring, from a cold start of `START` requests. While the limit is fully
  used and each doubling raises throughput (in flight / latency per generated token) by `RISE`, it doubles
  (a batching server's step time grows slowly with the batch, so latency alone would stop too early). Then it
  goes back to the best load and grows by about its square root per window while latency per token holds
  (within `TOLERANCE` of that at the best load); beyond it (requests queueing in the server) it shrinks in
  proportion. 429/503 replies and timeouts cut it by `OVERLOAD_CUT`.

A slow replica sees higher latency, so it ends with a lower limit than a fast one. An explicit cap
(`LLMConfig.max_concurrency`) bounds every limit.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

import httpx

START = 4  # requests in flight per replica before anything is known (the old fixed default)
CEILING = 256  # per replica, when neither the server nor the user says more
RISE = 1.15  # slow start doubles the limit while each doubling raises throughput at least this much
TOLERANCE = 1.5  # latency per token above this multiple of that at the best load means requests are queueing
OVERLOAD_CUT = 0.7  # limit multiplier on a 429/503 reply or a timeout

Outcome = Literal["ok", "overload", "other"]


def reported_limit(slots: int, *, queues: bool) -> int:
    """Requests in flight for a server that reports `slots` sequences decoded at once.

    A server that queues what it cannot start yet (llama.cpp, llama-cpp-python) gets a few more, so a slot
    never waits for the client's next request (one-slot llama-cpp-python servers: 1.19x rows/s with 4 in flight
    against 1). TGI refuses requests beyond `max_concurrent_requests` (429), so it gets exactly that.
    """
    slots = max(1, int(slots))
    return slots + max(3, math.ceil(slots / 4)) if queues else slots


@dataclass
class ReplicaLimit:
    """The adaptive in-flight limit of one replica.

    Args:
        cap (`int`, *optional*): never exceed this (the user's `max_concurrency`).
        start (`int`): the cold-start limit.
        ceiling (`int`): the highest limit discovery may reach when the server reports nothing.
        clock: a monotonic clock (tests pass a fake one).
    """

    cap: int | None = None
    start: int = START
    ceiling: int = CEILING
    clock: Callable[[], float] = time.monotonic
    reported: int | None = field(default=None, init=False)
    _limit: float = field(default=0.0, init=False)
    _slow_start: bool = field(default=True, init=False)
    _baseline: float | None = field(default=None, init=False)
    _decided_at: float = field(default=float("-inf"), init=False)
    _started: float | None = field(default=None, init=False)  # when the current window began (limit full)
    _count: int = field(default=0, init=False)
    _tokens: int = field(default=0, init=False)
    _best: float | None = field(default=None, init=False)  # highest throughput of slow start (per-token units)

    def __post_init__(self) -> None:
        self._limit = float(self._bound(self.start))

    @property
    def limit(self) -> int:
        """Requests this replica may have in flight now."""
        return max(1, int(self._limit))

    def _top(self) -> int:
        top = self.reported if self.reported is not None else self.ceiling
        return max(1, min(top, self.cap) if self.cap is not None else top)

    def _bound(self, value: float) -> float:
        return min(max(1.0, value), float(self._top()))

    def report(self, limit: int) -> None:
        """The server said what it can take: use it as the limit and the ceiling from now on."""
        self.reported = max(1, int(limit))
        self._limit = float(self._top())
        self._slow_start = False
        self._restart_window()

    def sent(self) -> float:
        """The time a request leaves for this replica: pass it to `done`."""
        return self.clock()

    def done(self, sent: float, outcome: Outcome, tokens: int = 0, in_flight: int | None = None) -> None:
        """Record how a request ended: `ok` (with its completion `tokens`), `overload` (429, 503, timeout) or
        `other` (errors that say nothing about load, e.g. a rejected request or an unreachable server).
        `in_flight` counts the requests on this replica, this one included, plus those waiting for room."""
        now = self.clock()
        if outcome == "overload":
            if sent >= self._decided_at:  # one cut per burst: requests sent before the last cut say nothing new
                self._limit = self._bound(self._limit * OVERLOAD_CUT)
                self._slow_start = False
                self._restart_window()
            return
        if outcome != "ok":
            return
        if in_flight is not None and in_flight < self.limit:
            self._started = None  # demand, not the limit, set the load: a window measures only a full limit
            return
        if self._started is None:
            self._started, self._count, self._tokens = now, 0, 0
            return
        self._count += 1
        self._tokens += 1 + max(0, tokens)
        if self._count >= max(4, self.limit):  # about one latency: a shorter window may see one burst only
            self._decide(now)

    def _decide(self, now: float) -> None:
        rate = self._tokens / max(1e-9, now - (self._started or now))  # tokens per second with the limit full
        latency = self.limit / rate  # seconds per token of one request (Little's law)
        if self._slow_start:
            if self._best is None or rate > RISE * self._best:
                self._best, self._baseline = rate, latency
                self._limit = self._bound(self._limit * 2)
            else:
                # the last doubling bought (almost) nothing: back to the best load, plus a small queue
                self._slow_start = False
                half = self._limit / 2
                self._limit = self._bound(half + math.sqrt(half))
        else:
            baseline = self._baseline if self._baseline is not None else latency
            ratio = latency / baseline
            # a reported capacity is the server's own word: only refusals and timeouts lower it, not latency
            if ratio > TOLERANCE and self.reported is None:
                # requests queue in the server: shrink towards the load at which latency was within tolerance
                self._limit = self._bound(self._limit * max(0.5, TOLERANCE / ratio))
            else:
                self._limit = self._bound(self._limit + max(1.0, math.sqrt(self._limit)))
            if self._baseline is None or self.limit == 1:  # at one in flight nothing queues: that is the baseline
                self._baseline = latency
        self._restart_window()

    def _restart_window(self) -> None:
        self._started = None
        self._decided_at = self.clock()


def is_overload(exc: BaseException) -> bool:
    """A reply that says the server is over capacity: 429 or 503, or no reply in time."""
    status = getattr(exc, "status", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return status in (429, 503)
    return isinstance(exc, (asyncio.TimeoutError, TimeoutError, httpx.TimeoutException)) or (
        type(exc).__name__ == "InferenceTimeoutError"
    )
