"""Which replica takes the next request, and how many each may have in flight (a mixin of `LLMClient`).

Each replica takes what its server can (`concurrency.ReplicaLimit`: what it reports, or what is measured), at most
`max_concurrency` in all; waiting requests are served first come, first served; prompt-cache warmth breaks ties.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Sequence

from .backends import Backend, HTTPBackend, LocalBackend
from .concurrency import ReplicaLimit, reported_limit
from .config import LLMConfig


class ReplicaDispatch:
    """Replica choice and per-replica concurrency; `LLMClient` calls `_init_dispatch()` in its constructor."""

    config: LLMConfig

    def _init_dispatch(self) -> None:
        self._backends: list[Backend] | None = None
        self._limits: list[ReplicaLimit] = []
        self._total: asyncio.Semaphore | None = None  # the explicit cap over all replicas
        self._waiters: collections.deque[tuple[asyncio.Future, set[int]]] = collections.deque()
        self._woken = 0  # waiters woken that have not taken their room yet
        self._rr = 0
        self._down_until: dict[int, float] = {}

    @property
    def backends(self) -> list[Backend]:
        if self._backends is None:
            if self.config.is_local:
                self._backends = [LocalBackend(self.config)]
            else:
                self._backends = [HTTPBackend(url, self.config) for url in self.config.endpoints]
            # the embedded model runs one call at a time; more in flight would only queue on its lock
            cap = 1 if self.config.is_local else self.config.max_concurrency
            self._limits = [ReplicaLimit(cap=cap) for _ in self._backends]
        return self._backends

    def replica_limits(self) -> list[int]:
        """Requests each replica may have in flight now (what its server reported, or what was measured)."""
        return [limit.limit for limit in self._limits] if self.backends else []

    def _candidates(self, avoid: set[int]) -> list[int]:
        """Replicas that did not just fail to connect (all of them if none is left)."""
        loop_time = asyncio.get_running_loop().time()
        candidates = [i for i in range(len(self.backends)) if i not in avoid and self._down_until.get(i, 0) <= loop_time]
        return candidates or list(range(len(self.backends)))

    def _note_slots(self) -> None:
        """Adopt what prepared replicas reported about their capacity, once each."""
        for i, (backend, limit) in enumerate(zip(self.backends, self._limits)):
            if backend.slots is not None and limit.reported is None:
                limit.report(reported_limit(backend.slots, queues=backend.queues))
                self._wake(i)

    async def _acquire(self, avoid: set[int], warm: Sequence[str]) -> int:
        """Wait for room on a replica (first come, first served), take it and return the replica's index."""
        if self._total is None and self.config.max_concurrency is not None and not self.config.is_local:
            self._total = asyncio.Semaphore(self.config.max_concurrency)
        if self._total is not None:
            await self._total.acquire()
        try:
            self._note_slots()
            while (index := self._pick(avoid, warm)) is None:
                future = asyncio.get_running_loop().create_future()
                self._waiters.append((future, avoid))
                try:
                    await future
                finally:
                    if future.done() and not future.cancelled():
                        self._woken -= 1
        except BaseException:
            if self._total is not None:
                self._total.release()
            raise
        self.backends[index].in_flight += 1
        return index

    def _release(self, index: int) -> None:
        self.backends[index].in_flight -= 1
        if self._total is not None:
            self._total.release()
        self._wake(index)

    def _wake(self, index: int) -> None:
        """Wake as many waiting requests as replica `index` has room for, in arrival order, among those that may use
        it. A woken request picks again and may find the room taken by a newer one; it then waits again."""
        room = self._limits[index].limit - self.backends[index].in_flight
        kept: collections.deque[tuple[asyncio.Future, set[int]]] = collections.deque()
        while self._waiters:
            future, avoid = self._waiters.popleft()
            if future.done():
                continue
            if room > 0 and index in self._candidates(avoid):
                future.set_result(None)
                self._woken += 1
                room -= 1
            else:
                kept.append((future, avoid))
        self._waiters = kept

    def _pick(self, avoid: set[int], warm: Sequence[str] = ()) -> int | None:
        """The replica for the next request among those with room (None if all are full), skipping ones that just
        failed to connect.

        Load first, relative to each replica's limit: an idle replica is always used if there is one. Then prompt-cache warmth
        (`prefix_reuse`): prefer the replica whose last prompt was this very prompt (a repair:
        all of it is cached), then one whose last prompt had the same few-shot prefix (servers
        reuse the prefix of the prompt they last saw). When every replica is busy, a warm one may
        take one more queued request than the least busy, which keeps interleaved prompt families
        on their own replicas without ever leaving a replica idle. Round-robin among the rest.
        """
        candidates = [i for i in self._candidates(avoid) if self.backends[i].in_flight < self._limits[i].limit]
        if not candidates:
            return None
        self._rr += 1

        def load(i: int, less: int = 0) -> float:
            return (self.backends[i].in_flight - less) / self._limits[i].limit

        least = min(load(i) for i in candidates)
        slack = 1 if least > 0 else 0
        pool = [i for i in candidates if load(i) == least]
        if self.config.prefix_reuse:
            near = [i for i in candidates if load(i, slack) <= least]
            for key in warm:
                hot = [i for i in near if key in self.backends[i].recent]
                if hot:
                    pool = [i for i in hot if load(i) == min(load(j) for j in hot)]
                    break
        return min(pool, key=lambda i: (i - self._rr) % len(self.backends))


__all__ = ["ReplicaDispatch"]
