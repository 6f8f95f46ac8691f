"""Running many LLM coroutines from synchronous code with a progress bar, and measuring what they cost."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Sequence

from .client import RUN_FATAL, LLMClient, run_sync
from .executor import USAGE_KEYS, usage_delta


async def _settle(coro: Awaitable[Any]) -> Any:
    """The coroutine's result, or its exception as a value, unless the exception ends the whole run."""
    try:
        return await coro
    except RUN_FATAL:
        raise
    except Exception as exc:
        return exc


async def gather_all(coros: Sequence[Awaitable[Any]], *, desc: str, progress: bool) -> list[Any]:
    """Run coroutines concurrently, results in input order, with a tqdm bar; if one raises (or on Ctrl-C) the
    others are cancelled and awaited before the exception goes on (no request is left running)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        if progress and tasks:
            from tqdm.auto import tqdm

            for fut in tqdm(asyncio.as_completed(tasks), total=len(tasks), desc=desc):
                await fut
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def gather(coros: Sequence[Awaitable[Any]], *, desc: str = "LLM", progress: bool = False) -> list[Any]:
    """Run coroutines concurrently on the library's loop; results (or exceptions) in input order.

    An unreachable or refusing endpoint (`EndpointUnavailableError`, `EndpointAccessError`) cancels the rest and
    raises at once: every other request would wait out its own retries to fail the same way."""
    if not coros:
        return []
    return run_sync(gather_all([_settle(c) for c in coros], desc=desc, progress=progress))


class UsageMeter:
    """The usage several clients accrue from construction to `delta()` (clients are shared and keep counting)."""

    def __init__(self, clients: Sequence[LLMClient]):
        self.clients = list({id(c): c for c in clients}.values())
        self._before = [c.usage.as_dict() for c in self.clients]

    def delta(self) -> dict[str, int]:
        out = {k: 0 for k in USAGE_KEYS}
        for client, before in zip(self.clients, self._before):
            spent = usage_delta(before, client.usage.as_dict())
            for k in USAGE_KEYS:
                out[k] += spent[k]
        out["total_tokens"] = out["prompt_tokens"] + out["completion_tokens"]
        return out


__all__ = ["UsageMeter", "gather", "gather_all"]
