"""`RayExecutor`: a pipeline's per-row model stages on a Ray cluster, resumable, results in input order.

Why Ray actors driven from here rather than Ray Data: the input and the output are both a `datasets.Dataset`
on this machine, so Ray Data's distributed reading brings nothing, while its hidden behaviours were the traps
of the spike (small inputs merged into one block for one actor, CPU reservations stalling its own tasks
silently, a 30-minute no-progress timeout). A pool of actors fed by this process answers each need directly:
the row order is the ids, a finished batch is checkpointed here at once, a lost worker's batches go to
another, and a hang is seen by probing each worker's request counter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from ..errors import ClusterError, ConfigError
from ..llm.backends import HTTPBackend
from ..llm.client import run_sync
from ..llm.concurrency import reported_limit
from ..llm.config import default_cache_path
from ..llm.executor import add_usage, usage_delta
from . import caches
from .checkpoint import ShardStore, job_key
from .cluster import NodeSlots, connect, import_ray, uses_resource, worker_nodes
from .ledger import Ledger
from .scheduler import Run, RunSettings
from .worker import collect_node_replies, drop_node_replies

logger = logging.getLogger(__name__)
GATHER_TIMEOUT = 60.0  # seconds to read (or drop) every node's cached replies; a node slower than that is skipped
PROBE_TIMEOUT = 15.0  # seconds to ask the endpoints how many requests they take


@dataclass
class RunReport:
    """What the last `RayExecutor.map` did: rows, workers and where the time went (seconds)."""

    rows: int = 0
    resumed_rows: int = 0
    workers: int = 0
    setup_seconds: float = 0.0  # connect, checkpoint scan, earlier replies gathered
    run_seconds: float = 0.0  # workers started, batches run
    merge_seconds: float = 0.0  # node caches merged into this machine's cache
    replies_merged: int = 0
    workers_lost: int = 0  # workers that died mid-run (node lost, process killed); their batches ran elsewhere
    batches_requeued: int = 0


class RayExecutor:
    """Runs per-row model stages (any `LLMMapper`, or any `datasets` batched callable) on a Ray cluster.

    Each worker is a Ray actor with its own copy of the mapper, reserving no CPU. Together the workers keep at
    most the config's `max_concurrency` requests in flight (split between them), and spend at most its
    `max_calls`/`max_total_tokens` (a shared ledger actor). Finished batches are checkpointed on this machine
    by row id: rerunning the same job after a crash sends only the rows not yet finished, and replies paid for
    before the crash are taken from the nodes' caches. Node caches are merged into this machine's request
    cache at the end, so later single-machine runs are free.

    Args:
        address (`str`): the cluster's head, `host:port` (the `--port` of `ray start --head`), `ray://host:port`, or `auto`.
        workers (`int`, *optional*): at most this many workers; by default one per slot (below), capped by `max_concurrency`.
        workers_per_node (`int`, *optional*): slots per node; by default the node's amount of `resource`, or 1.
        resource (`str`, *optional*, defaults to `"hf_prefsel"`): a custom resource nodes offer to host workers
            (`ray start --resources '{"hf_prefsel": 2}'`), each worker taking one unit. If no node offers it,
            workers go round-robin over all nodes.
        checkpoint_dir (`str`, *optional*): where finished rows are kept; defaults to `ray_runs/` next to the request cache.
        node_cache_dir (`str`, *optional*): each node's local folder for its request cache (expanded on the node);
            defaults to `ray_nodes/` next to the node's request cache. Keep it off network file systems.
        batches_per_worker (`int`, defaults to 2): batches a worker holds at once, so it never waits for the next.
        stall_timeout (`float`, *optional*): seconds a busy worker may finish no request before the run stops with
            `ClusterStalledError`; defaults to what the config's timeout and retries allow one request.
        start_timeout (`float`, defaults to 120): seconds a worker may take to start before the run goes on without it.
        connect_timeout (`float`, defaults to 60): seconds `ray.init` may take.
        keep_checkpoint (`bool`, defaults to `False`): keep the finished rows after a successful run.
        progress (`bool`, defaults to `True`): a progress bar of finished rows.

    Example:
        >>> with RayExecutor("10.0.0.5:6379") as executor:
        ...     tagged, usage = executor.map(ds, OpenTagger(llm), batch_size=64, desc="Tagging")
    """

    def __init__(
        self,
        address: str,
        *,
        workers: int | None = None,
        workers_per_node: int | None = None,
        resource: str | None = "hf_prefsel",
        checkpoint_dir: str | None = None,
        node_cache_dir: str | None = None,
        batches_per_worker: int = 2,
        stall_timeout: float | None = None,
        start_timeout: float = 120.0,
        connect_timeout: float = 60.0,
        keep_checkpoint: bool = False,
        progress: bool = True,
    ):
        for name, value in (("workers", workers), ("workers_per_node", workers_per_node), ("batches_per_worker", batches_per_worker)):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}.")
        self.address = address
        self.workers = workers
        self.workers_per_node = workers_per_node
        self.resource = resource
        self.checkpoint_dir = checkpoint_dir or os.path.join(os.path.dirname(default_cache_path()), "ray_runs")
        self.node_cache_dir = node_cache_dir
        self.batches_per_worker = batches_per_worker
        self.stall_timeout = stall_timeout
        self.start_timeout = start_timeout
        self.connect_timeout = connect_timeout
        self.keep_checkpoint = keep_checkpoint
        self.progress = progress
        self.last_run: RunReport | None = None
        self._owns_connection = False
        self._ledgers: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r}, workers={self.workers}, resource={self.resource!r})"

    # -- connection -------------------------------------------------------------------------------------------
    def _ray(self) -> Any:
        ray = import_ray()
        if not ray.is_initialized():
            self._ledgers = {}
        if connect(self.address, timeout=self.connect_timeout):
            self._owns_connection = True
        return ray

    def connect(self) -> None:
        """Connect now (`map` connects on first use): e.g. to fail early, or to time runs without connecting."""
        self._ray()

    def close(self) -> None:
        """Disconnect from the cluster if this executor connected (its ledgers go with the connection)."""
        ray = import_ray()
        for ledger in self._ledgers.values():
            try:
                ray.kill(ledger)
            except Exception:  # the connection is already gone
                pass
        self._ledgers = {}
        if self._owns_connection and ray.is_initialized():
            ray.shutdown()
        self._owns_connection = False

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the Executor protocol --------------------------------------------------------------------------------
    def map(self, dataset: Any, fn: Callable[..., dict[str, list[Any]]], *, batch_size: int, desc: str) -> tuple[Any, dict[str, int]]:
        """`dataset` with `fn`'s columns added, in input order, and the usage the workers reported.

        Raises:
            `ClusterUnavailableError`: no cluster at `address`. `ClusterStalledError`: a worker hung.
            `ClusterError`: no worker left. Errors `fn` raises (e.g. `EndpointUnavailableError`) as they are.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
        started = time.monotonic()
        report = RunReport(rows=len(dataset))
        self.last_run = report
        if len(dataset) == 0:
            return dataset, usage_delta({}, {})
        llm = getattr(fn, "llm", None)
        if llm is not None and llm.is_local:
            raise ConfigError(
                "The embedded model runs inside one process; on a cluster, serve it on the nodes (e.g. "
                "`hf_prefsel.llm.serve_local` on each) and pass their URLs as `LLMConfig(endpoints=[...])`."
            )
        ray = self._ray()
        job = job_key(dataset, fn, batch_size)
        store = ShardStore(self.checkpoint_dir, job, len(dataset))
        done = store.done_ids()
        todo = [i for i in range(len(dataset)) if i not in done]
        report.resumed_rows = len(dataset) - len(todo)
        driver_cache = llm.cache_file if llm is not None else None
        usage = usage_delta({}, {})
        if todo:
            # replies paid for by an earlier, crashed run of this job: into this machine's cache and every worker's
            earlier = self._gather_replies(ray, job, driver_cache) if driver_cache else []
            report.setup_seconds = time.monotonic() - started
            batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
            usage = add_usage(usage, self._run(ray, dataset, fn, batches, job, store, earlier, desc, report))
            report.run_seconds = time.monotonic() - started - report.setup_seconds
        merge_start = time.monotonic()
        if driver_cache:
            report.replies_merged = len(self._gather_replies(ray, job, driver_cache, drop=True))
        report.merge_seconds = time.monotonic() - merge_start
        result = attach_columns(dataset, store.table())
        if not self.keep_checkpoint:
            store.remove()
        return result, usage

    # -- pieces -----------------------------------------------------------------------------------------------
    def _run(self, ray: Any, dataset: Any, fn: Any, batches: list[list[int]], job: str, store: ShardStore,
             earlier: list[caches.ReplyRow], desc: str, report: RunReport) -> dict[str, int]:
        nodes = worker_nodes(self.resource, self.workers_per_node)
        if not nodes:
            raise ClusterError(f"The cluster at {self.address} has no alive node.")
        llm = getattr(fn, "llm", None)
        check_reachable(llm, nodes)
        total = in_flight_total(llm)
        slots = interleave(nodes)
        count = min(len(slots), len(batches), self.workers or len(slots), total or len(slots))
        report.workers = count
        ledger = self._ledger(ray, llm)
        if ledger is not None:
            ray.get(ledger.set_workers.remote(count))
        stall = self.stall_timeout or default_stall_timeout(llm)
        settings = RunSettings(
            slots=slots[:count],
            shares=split(total, count) if total else [None] * count,
            resource=self.resource if uses_resource(self.resource) else None,
            batches_per_worker=self.batches_per_worker,
            stall_timeout=stall,
            start_timeout=self.start_timeout,
            worker_args=(ray.put(fn), self.node_cache_dir, job, ray.put(earlier) if earlier else None, ledger),
        )
        from tqdm.auto import tqdm

        bar = tqdm(total=len(dataset), initial=report.resumed_rows, desc=desc, disable=not self.progress)
        run = Run(ray, settings, lambda ids: dataset[ids], store, bar.update)
        try:
            return run.execute(batches)
        finally:
            bar.close()
            report.workers_lost, report.batches_requeued = run.lost, run.requeued

    def _ledger(self, ray: Any, llm: Any) -> Any:
        """The budget ledger of `llm`'s config, shared by every stage this executor runs with it (as one
        process's client is), or `None` without a budget."""
        if llm is None or (llm.max_calls is None and llm.max_total_tokens is None):
            return None
        key = json.dumps(llm.fingerprint_state(), sort_keys=True, default=str)
        if key not in self._ledgers:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
            self._ledgers[key] = ray.remote(Ledger).options(num_cpus=0, scheduling_strategy=here).remote(
                llm.max_calls, llm.max_total_tokens)
        return self._ledgers[key]

    def _gather_replies(self, ray: Any, job: str, dest: str, drop: bool = False) -> list[caches.ReplyRow]:
        """This job's replies kept on every alive node, added to the cache file `dest`; `drop` then deletes them
        on the nodes. A node that cannot be reached is skipped (its replies were only a saving)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]

        def on_each(fn: Callable[..., Any], *args: Any) -> list[Any]:
            remote = ray.remote(fn)
            refs = [remote.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(*args)
                    for node in nodes]
            ready, late = ray.wait(refs, num_returns=len(refs), timeout=GATHER_TIMEOUT)
            out = []
            for ref in ready:
                try:
                    out.append(ray.get(ref))
                except Exception as exc:  # a node lost since: skip it
                    logger.warning("Could not reach a node's request cache (%s: %s); its replies are not merged.", type(exc).__name__, exc)
            if late:
                logger.warning("%d node(s) did not answer within %.0f s; their cached replies are not merged.", len(late), GATHER_TIMEOUT)
                for ref in late:
                    ray.cancel(ref, force=True)
            return out

        rows = {row[0]: row for _, part in on_each(collect_node_replies, self.node_cache_dir, job) for row in part}
        if rows:
            caches.add_replies(dest, rows.values())
        if drop:
            on_each(drop_node_replies, self.node_cache_dir, job)
        return list(rows.values())


def in_flight_total(llm: Any) -> int | None:
    """Requests the whole run may keep in flight, split over the workers: the config's `max_concurrency`; unset,
    what the replicas report they take (TGI's `/info`, llama.cpp's `/props`), as one process would use them.

    `None` when a replica does not say (vLLM, OpenAI-style servers) or cannot be reached from here: each worker
    then finds its own limit by measuring (`hf_prefsel.llm.concurrency`), and since all of them see the same
    server latency, a loaded server slows them all down together.
    """
    if llm is None:
        return None
    if llm.max_concurrency is not None:
        return llm.max_concurrency
    backends = [HTTPBackend(url, llm) for url in llm.endpoints]

    async def probe() -> None:
        try:
            await asyncio.wait_for(asyncio.gather(*(b.prepare() for b in backends)), PROBE_TIMEOUT)
        finally:
            await asyncio.gather(*(b.aclose() for b in backends), return_exceptions=True)

    try:
        run_sync(probe())
    except Exception as exc:  # unreachable from the driver (e.g. cluster-internal URLs): workers will measure
        logger.info("Could not ask the endpoints what they take (%s: %s); each worker measures instead.", type(exc).__name__, exc)
        return None
    if any(b.slots is None for b in backends):
        return None
    return sum(reported_limit(b.slots, queues=b.queues) for b in backends)


def check_reachable(llm: Any, nodes: list[NodeSlots]) -> None:
    """Refuse loopback endpoints (`127.0.0.1`, `localhost`) when workers run on other machines: there they would
    reach their own machine, not the server."""
    hosts = {n.address for n in nodes}
    if llm is None or len(hosts) < 2:
        return
    local = [url for url in llm.endpoints if (urlsplit(url).hostname or "") in ("localhost", "::1") or
             (urlsplit(url).hostname or "").startswith("127.")]
    if local:
        raise ConfigError(
            f"Endpoint {local[0]} is a loopback address, but the cluster's workers run on {len(hosts)} machines "
            f"({', '.join(sorted(hosts))}). Serve the model on an address every node can reach and pass that URL."
        )


def split(total: int, parts: int) -> list[int]:
    """`total` in `parts` near-equal positive integers (`parts <= total`)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def interleave(nodes: list[NodeSlots]) -> list[NodeSlots]:
    """One entry per slot, nodes taking turns, so a run with fewer workers than slots still spans the nodes."""
    out: list[NodeSlots] = []
    for round_ in range(max((n.slots for n in nodes), default=0)):
        out.extend(n for n in nodes if n.slots > round_)
    return out


def default_stall_timeout(llm: Any) -> float:
    """How long one request may take with its retries (each up to `timeout`, backoff capped at 20 s), plus a minute."""
    if llm is None:
        return 900.0
    return (llm.timeout + 20.0) * (llm.max_retries + 1) + 60.0


def attach_columns(dataset: Any, table: Any) -> Any:
    """`dataset` with the columns of `table` (same row count) added, or replacing same-named ones in place,
    which is what `Dataset.map` does with a function's output."""
    import datasets
    from datasets.table import InMemoryTable

    new = datasets.Dataset(InMemoryTable(table))
    names = list(table.column_names)
    overlap = [c for c in names if c in dataset.column_names]
    base = dataset.remove_columns(overlap) if overlap else dataset
    if base._indices is not None:
        base = base.flatten_indices()
    out = datasets.concatenate_datasets([base, new], axis=1)
    order = list(dataset.column_names) + [c for c in names if c not in dataset.column_names]
    return out.select_columns(order) if overlap else out


def map_on_ray(dataset: Any, fn: Callable[..., dict[str, list[Any]]], *, address: str, batch_size: int = 64,
               desc: str = "Mapping on Ray", **options: Any) -> Any:
    """`dataset.map(fn, batched=True, with_indices=True)` run on the Ray cluster at `address`: a new
    `datasets.Dataset` in input order. `options` are `RayExecutor`'s (checkpoint_dir, workers, stall_timeout, ...)."""
    with RayExecutor(address, **options) as executor:
        out, _ = executor.map(dataset, fn, batch_size=batch_size, desc=desc)
    return out


__all__ = ["RayExecutor", "RunReport", "attach_columns", "check_reachable", "in_flight_total", "map_on_ray", "split"]
