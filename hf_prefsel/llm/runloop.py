"""One event loop per process, in a background thread: the synchronous face of the async client.

A private loop makes the synchronous API work inside Jupyter (which already runs a loop) and keeps connections
and semaphores alive across `Dataset.map` batches.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")

_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_PID: int | None = None
_LOOP_LOCK = threading.Lock()


def _loop() -> asyncio.AbstractEventLoop:
    global _LOOP, _LOOP_PID
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP_PID != os.getpid() or not _LOOP.is_running():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="hf_prefsel-llm", daemon=True)
            thread.start()
            _LOOP, _LOOP_PID = loop, os.getpid()
        return _LOOP


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the library's background loop and wait for it.

    A private loop makes the synchronous API work inside Jupyter (which already runs a
    loop) and keeps connections and semaphores alive across `Dataset.map` batches. On
    Ctrl-C the requests in flight are cancelled; replies already received stay cached.
    """
    future = asyncio.run_coroutine_threadsafe(coro, _loop())
    try:
        return future.result()
    except KeyboardInterrupt:
        future.cancel()
        raise


__all__ = ["run_sync"]
