"""The worker of a cluster run: one Ray actor holding one copy of the mapper (so one client, one connection pool
and one node-local request cache per worker), answering batches the driver sends it.

Workers reserve no CPU: they wait on HTTP, and fractional CPU reservations on small nodes starved Ray's own
tasks. Each gets its part of the run's `max_concurrency`, so all workers together keep at most what the user set
in flight.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

from ..errors import DataError
from ..llm.client import get_client, shared_clients
from ..llm.executor import USAGE_KEYS, usage_delta
from . import caches, ledger as ledger_module
from .caches import ReplyRow

PROGRESS_KEYS = ("calls", "cache_hits", "failures", "retries")


class BatchWorker:
    """Runs `fn(batch, indices)` for the driver (a Ray actor: `ray.remote(BatchWorker)`).

    Args:
        fn: the batched row callable; an `LLMMapper` gets its config rewritten here (see below).
        share (`int`, *optional*): requests this worker may keep in flight (`max_concurrency` of its config).
        cache_root (`str`, *optional*): folder (on this node's disk, `~` expanded here) for node caches; defaults to
            `ray_nodes/` next to this node's request cache.
        run_id (`str`): names this run's node cache files.
        seed (`list`, *optional*): replies to put in the node cache first (a resumed run's earlier replies).
        ledger (*optional*): the run's `Ledger` actor when the config has a call or token budget.
    """

    def __init__(self, fn: Any, share: int | None, cache_root: str | None, run_id: str,
                 seed: Sequence[ReplyRow] | None = None, ledger: Any = None):
        import ray

        self.node_id = ray.get_runtime_context().get_node_id()
        llm = getattr(fn, "llm", None)
        if llm is not None:
            changes: dict[str, Any] = {}
            if share is not None:
                changes["max_concurrency"] = share
            if llm.cache:
                path = caches.node_cache_path(cache_root, run_id, self.node_id)
                if seed:
                    caches.add_replies(path, seed)
                changes["cache_path"] = path
            fn.llm = llm.replace(**changes)
            if ledger is not None:
                ledger_module.install(ledger, want=share or 4)
            get_client(fn.llm)  # made now, in one thread: two batch threads must not each make one
        self.fn = fn
        self._reported = self._usage_now()
        self._lock = threading.Lock()
        self._batches = 0

    def ready(self) -> str:
        """This worker's node id (the driver waits for it before sending batches)."""
        return self.node_id

    def run(self, batch: dict[str, list[Any]], ids: list[int]) -> tuple[list[int], dict[str, list[Any]], dict[str, int]]:
        """The new columns of one batch, and the usage spent since this worker's last report."""
        out = self.fn(batch, ids)
        ledger_module.flush_all()
        for name, values in out.items():
            if len(values) != len(ids):
                raise DataError(f"{type(self.fn).__name__} returned {len(values)} values of {name!r} for a batch of {len(ids)} rows.")
        with self._lock:
            now = self._usage_now()
            spent = usage_delta(self._reported, now)
            self._reported = now
            self._batches += 1
        return ids, dict(out), spent

    def progress(self) -> int:
        """A number that grows whenever a request of this worker finishes (the driver's hang check)."""
        usage = self._usage_now()
        return self._batches + sum(usage[k] for k in PROGRESS_KEYS)

    @staticmethod
    def _usage_now() -> dict[str, int]:
        total = dict.fromkeys(USAGE_KEYS, 0)
        for client in shared_clients():
            for key, value in client.usage.as_dict().items():
                if key in total:
                    total[key] += value
        return total


def collect_node_replies(cache_root: str | None, run_id: str) -> tuple[str, list[ReplyRow]]:
    """(node id, this run's replies kept on this node): a Ray task pinned to the node."""
    import ray

    return ray.get_runtime_context().get_node_id(), caches.collect_run_replies(cache_root, run_id)


def drop_node_replies(cache_root: str | None, run_id: str) -> None:
    """Delete this run's node cache files on this node: a Ray task pinned to the node, after the merge."""
    caches.drop_run_files(cache_root, run_id)


__all__ = ["BatchWorker", "collect_node_replies", "drop_node_replies"]
