"""The request cache is shared by `num_proc` workers and survives kills."""

from __future__ import annotations

import multiprocessing
import os

from hf_prefsel.llm.cache import CachedReply, RequestCache


def _put_from_worker(path: str) -> None:
    cache = RequestCache(path)
    cache.put(str(os.getpid()), CachedReply("x", 1, 1))
    cache.close()


def test_processes_opening_a_new_file_together(tmp_path):
    """`num_proc` workers create the same cache file at once; none may fail on the WAL switch."""
    ctx = multiprocessing.get_context("fork")
    for i in range(5):
        path = str(tmp_path / f"c{i}.sqlite")
        workers = [ctx.Process(target=_put_from_worker, args=(path,)) for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert [w.exitcode for w in workers] == [0] * 4
        assert len(RequestCache(path)) == 4
