"""One call/token budget for all the workers of a cluster run.

A single process checks `LLMConfig.max_calls` and `max_total_tokens` against its own client's usage; N workers
doing that would spend N times the budget. Here a small Ray actor (`Ledger`) holds the run's budget, and each
worker's clients draw calls from it in leases (`LeasedBudget`): large while much is left, one at a time near
the end, so the run never makes more calls than `max_calls` and few calls go unused in a worker's lease.
With a token budget, each call first reports the worker's tokens and reads the run's total; like in one process,
requests already in flight when the token budget runs out still finish.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import BudgetExceededError
from ..llm.usage import Budget, Usage

MAX_LEASE = 16  # calls one lease may grant


class Ledger:
    """The run's budget (a Ray actor: `ray.remote(Ledger)`).

    Args:
        max_calls (`int`, *optional*), max_total_tokens (`int`, *optional*): the user's caps for the whole run.
    """

    def __init__(self, max_calls: int | None, max_total_tokens: int | None):
        self.max_calls = max_calls
        self.max_total_tokens = max_total_tokens
        self.workers = 1
        self.granted = 0
        self.tokens = 0

    def set_workers(self, workers: int) -> None:
        """How many workers share the budget now (sizes the leases)."""
        self.workers = max(1, workers)

    def lease(self, want: int, tokens_spent: int) -> tuple[int, int]:
        """Record `tokens_spent` since the caller's last report and grant up to `want` calls; returns
        `(calls granted, tokens spent by the whole run)`."""
        self.tokens += tokens_spent
        if self.max_calls is None:
            return want, self.tokens
        left = self.max_calls - self.granted
        grant = max(0, min(want, left, MAX_LEASE, max(1, left // (2 * self.workers))))
        self.granted += grant
        return grant, self.tokens

    def totals(self) -> dict[str, int]:
        return {"calls_granted": self.granted, "tokens": self.tokens}


class LeasedBudget(Budget):
    """A client's budget drawn from the run's `Ledger` (replaces `Budget` in worker processes)."""

    def __init__(self, ledger: Any, max_calls: int | None, max_total_tokens: int | None, usage: Usage, want: int = 4):
        super().__init__(max_calls, max_total_tokens, usage)
        self._ledger = ledger
        self._want = max(1, want)
        self._allowance = 0
        self._reported_tokens = 0
        self._run_tokens = 0
        self._sync_lock = threading.Lock()

    def _sync(self, want: int) -> None:
        import ray

        spent = self.usage.total_tokens - self._reported_tokens
        granted, run_tokens = ray.get(self._ledger.lease.remote(want, spent))
        self._reported_tokens += spent
        self._run_tokens = run_tokens
        self._allowance += granted

    def _run_total_tokens(self) -> int:
        return self._run_tokens + self.usage.total_tokens - self._reported_tokens

    def reserve(self) -> None:
        with self._sync_lock:
            if self.max_total_tokens is not None:
                # what other workers spent is only known by asking: once per call (about a millisecond), which
                # bounds the overshoot by the calls in flight over the cluster, as in one process
                self._sync(self._want if self.max_calls is not None and self._allowance == 0 else 0)
                if self._run_total_tokens() >= self.max_total_tokens:
                    raise BudgetExceededError(
                        f"The run's token budget of {self.max_total_tokens} is spent ({self._run_total_tokens()} used over "
                        "all cluster workers). Raise `max_total_tokens` and rerun; cached replies cost nothing."
                    )
            if self.max_calls is not None:
                if self._allowance == 0:
                    self._sync(self._want)
                if self._allowance == 0:
                    raise BudgetExceededError(
                        f"The run's call budget of {self.max_calls} is spent over all cluster workers. Replies so far are "
                        "in the request caches; raise `max_calls` and rerun to continue without paying for them again."
                    )
                self._allowance -= 1

    def release(self) -> None:
        """Nothing to give back: a reserved call is a call made (retries reserve again)."""

    def flush(self) -> None:
        """Report the tokens spent since the last call, so other workers see them even if this one makes no more."""
        if self.max_total_tokens is not None:
            with self._sync_lock:
                self._sync(0)


def budget_factory(ledger: Any, want: int) -> Any:
    """What a worker process builds clients' budgets with: plain for clients without caps, leased otherwise."""

    def make(max_calls: int | None, max_total_tokens: int | None, usage: Usage) -> Budget:
        if max_calls is None and max_total_tokens is None:
            return Budget(max_calls, max_total_tokens, usage)
        return LeasedBudget(ledger, max_calls, max_total_tokens, usage, want=want)

    return make


def flush_all() -> None:
    """`flush` every leased budget of this worker process (after each batch)."""
    from ..llm.client import shared_clients

    for client in shared_clients():
        if isinstance(client.budget, LeasedBudget):
            client.budget.flush()


def install(ledger: Any, want: int) -> None:
    """Make every client this worker process creates (also those a mapper derives with `llm.replace`) draw
    from `ledger`. The process is a Ray actor dedicated to one run, so the swap touches nothing else."""
    from ..llm import client as client_module

    client_module.Budget = budget_factory(ledger, want)


__all__ = ["Ledger", "LeasedBudget", "install"]
