"""One cluster run: start workers, hand them batches, keep finished batches, survive lost workers, stop on a hang.

The driver keeps a queue of batches (row ids) and gives each ready worker up to `batches_per_worker` at a
time. A finished batch is written to the checkpoint before anything else happens to it. A worker that dies
(its node was lost, its process killed) gives its unfinished batches back to the front of the queue and is
replaced on another node when there is room; the run fails only when no worker is left. A worker that has
work but finishes no request for `stall_timeout` seconds stops the run with `ClusterStalledError`.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import ClusterError, ClusterStalledError, HfPrefselError
from ..llm.executor import add_usage
from .checkpoint import ShardStore
from .cluster import NodeSlots, worker_nodes
from .worker import BatchWorker

logger = logging.getLogger(__name__)
PROBE_EVERY = 2.0  # seconds between progress probes of a busy worker


@dataclass
class WorkerState:
    """The driver's view of one worker actor."""

    handle: Any
    node_id: str
    share: int | None
    started: float
    ready_ref: Any = None  # None once the worker answered `ready`
    tasks: dict[Any, list[int]] = field(default_factory=dict)  # run() ref -> its row ids
    last_progress: float = 0.0
    progress_value: int = -1
    probe_ref: Any = None
    probe_sent: float = 0.0


@dataclass
class RunSettings:
    """What a run needs beyond the data: placement, limits and timeouts (from `RayExecutor`)."""

    slots: list[NodeSlots]
    shares: list[int | None]
    resource: str | None
    batches_per_worker: int
    stall_timeout: float
    start_timeout: float
    worker_args: tuple  # (fn ref, cache_root, run_id, seed ref, ledger) for BatchWorker after `share`


class Run:
    """Runs `batches` (lists of row ids) of `fetch(ids) -> batch dict` on workers, writing results to `store`."""

    def __init__(self, ray: Any, settings: RunSettings, fetch: Callable[[list[int]], dict[str, list[Any]]],
                 store: ShardStore, on_rows: Callable[[int], None]):
        self.ray = ray
        self.settings = settings
        self.fetch = fetch
        self.store = store
        self.on_rows = on_rows
        self.workers: list[WorkerState] = []
        self.replacements_left = len(settings.shares)
        self.usage: dict[str, int] = {}
        self.lost = 0  # workers lost (their batches requeued)
        self.requeued = 0
        self._remote = ray.remote(BatchWorker)

    # -- workers ----------------------------------------------------------------------------------------------
    def _start(self, node: NodeSlots, share: int | None) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options: dict[str, Any] = dict(
            num_cpus=0,
            max_concurrency=self.settings.batches_per_worker + 1,  # batches, plus the progress probe
            max_restarts=0,
            max_task_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=True),
        )
        if self.settings.resource:
            options["resources"] = {self.settings.resource: 1}
        fn_ref, cache_root, run_id, seed_ref, ledger = self.settings.worker_args
        handle = self._remote.options(**options).remote(fn_ref, share, cache_root, run_id, seed_ref, ledger)
        now = time.monotonic()
        self.workers.append(WorkerState(handle, node.node_id, share, now, handle.ready.remote(), last_progress=now))

    def start_workers(self) -> None:
        for node, share in zip(self.settings.slots, self.settings.shares):
            self._start(node, share)

    def _lose(self, worker: WorkerState, queue: collections.deque, why: BaseException) -> None:
        """A dead worker: its batches go back to the front of the queue, and another takes its place if one can."""
        logger.warning("A cluster worker on node %s was lost (%s); %d batch(es) go back to the queue.",
                       worker.node_id[:12], type(why).__name__, len(worker.tasks))
        for ids in reversed(list(worker.tasks.values())):
            queue.appendleft(ids)
        self.lost += 1
        self.requeued += len(worker.tasks)
        self.workers.remove(worker)
        nodes = [n for n in worker_nodes(self.settings.resource, None) if n.node_id != worker.node_id]
        if self.replacements_left > 0 and nodes:
            self.replacements_left -= 1
            load = collections.Counter(w.node_id for w in self.workers)
            self._start(min(nodes, key=lambda n: load[n.node_id] / n.slots), worker.share)

    def stop_workers(self) -> None:
        for worker in self.workers:
            try:
                self.ray.kill(worker.handle, no_restart=True)
            except Exception:  # already gone
                pass
        self.workers = []

    # -- the loop ---------------------------------------------------------------------------------------------
    def execute(self, batches: list[list[int]]) -> dict[str, int]:
        """Run every batch; returns the usage the workers reported. Raises what a batch raised, or `ClusterError`."""
        ray = self.ray
        queue: collections.deque[list[int]] = collections.deque(batches)
        self.start_workers()
        try:
            while queue or any(w.tasks for w in self.workers):
                self._dispatch(queue)
                refs = self._refs()
                if not refs:
                    raise ClusterError("No cluster worker is left to run the remaining batches; check the nodes "
                                       "(`ray status`) and rerun: finished rows are kept and will not be paid again.")
                done, _ = ray.wait(refs, num_returns=1, timeout=0.5)
                if done:
                    done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                for ref in done:
                    self._settle(ref, queue)
                self._probe()
                self._check_timeouts(queue)
            return self.usage
        finally:
            self.stop_workers()

    def _dispatch(self, queue: collections.deque) -> None:
        for worker in self.workers:
            if worker.ready_ref is not None:
                continue
            while queue and len(worker.tasks) < self.settings.batches_per_worker:
                ids = queue.popleft()
                if not worker.tasks:
                    worker.last_progress = time.monotonic()
                worker.tasks[worker.handle.run.remote(self.fetch(ids), ids)] = ids

    def _refs(self) -> list[Any]:
        refs: list[Any] = []
        for worker in self.workers:
            if worker.ready_ref is not None:
                refs.append(worker.ready_ref)
            refs.extend(worker.tasks)
            if worker.probe_ref is not None:
                refs.append(worker.probe_ref)
        return refs

    def _owner(self, ref: Any) -> tuple[WorkerState, str]:
        for worker in self.workers:
            if ref == worker.ready_ref:
                return worker, "ready"
            if ref in worker.tasks:
                return worker, "task"
            if ref == worker.probe_ref:
                return worker, "probe"
        raise KeyError(ref)

    def _settle(self, ref: Any, queue: collections.deque) -> None:
        from ray.exceptions import ObjectLostError, RayActorError, RayTaskError

        try:
            worker, kind = self._owner(ref)
        except KeyError:  # its worker was lost earlier in this round
            return
        try:
            value = self.ray.get(ref)
        except (RayActorError, ObjectLostError) as exc:
            if getattr(exc, "actor_init_failed", False):
                raise ClusterError(
                    f"A cluster worker failed to start on node {worker.node_id[:12]}: {exc}. Every node needs hf_prefsel "
                    "installed (same version as here, with its `ray` extra)."
                ) from None
            self._lose(worker, queue, exc)
            return
        except RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if kind == "task" and isinstance(cause, Exception):
                if isinstance(cause, HfPrefselError):
                    raise cause from None  # the same error a single-process run raises
                raise cause
            raise
        now = time.monotonic()
        if kind == "ready":
            worker.ready_ref = None
            worker.node_id = value
            worker.last_progress = now
        elif kind == "probe":
            worker.probe_ref = None
            if value != worker.progress_value:
                worker.progress_value = value
                worker.last_progress = now
        else:
            worker.tasks.pop(ref)
            ids, columns, spent = value
            self.store.write(ids, columns)
            self.usage = add_usage(self.usage, spent)
            worker.last_progress = now
            self.on_rows(len(ids))

    def _probe(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            if worker.ready_ref is None and worker.tasks and worker.probe_ref is None and now - worker.probe_sent >= PROBE_EVERY:
                worker.probe_ref = worker.handle.progress.remote()
                worker.probe_sent = now

    def _check_timeouts(self, queue: collections.deque) -> None:
        now = time.monotonic()
        for worker in list(self.workers):
            if worker.ready_ref is not None and now - worker.started > self.settings.start_timeout:
                logger.warning("A cluster worker could not start on node %s within %.0f s; going on without it.",
                               worker.node_id[:12], self.settings.start_timeout)
                self.ray.kill(worker.handle, no_restart=True)
                self.workers.remove(worker)
            elif worker.tasks and now - worker.last_progress > self.settings.stall_timeout:
                rows = sum(len(ids) for ids in worker.tasks.values())
                raise ClusterStalledError(
                    f"A cluster worker on node {worker.node_id[:12]} has {rows} rows in hand and finished no request in "
                    f"{self.settings.stall_timeout:.0f} s, so it looks hung (a stuck endpoint connection or a stuck mapper). "
                    "Finished rows are kept: rerun to resume. Raise `stall_timeout` if single requests legitimately take longer."
                )


__all__ = ["Run", "RunSettings", "WorkerState"]
