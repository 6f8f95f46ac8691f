"""`serve_local()` backends: a killed parent leaves neither servers nor log files behind; both backends answer."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from hf_prefsel.llm import LLMClient

pytestmark = pytest.mark.slow

_PARENT = """
import os, sys
from hf_prefsel.llm import serve_local
servers = serve_local(1, backend=sys.argv[1])
print(servers.processes[0].pid, os.readlink(f"/proc/{servers.processes[0].pid}/fd/1"), flush=True)
sys.stdin.read()
"""


def _require(backend: str) -> None:
    pytest.importorskip("xllamacpp" if backend == "xllamacpp" else "llama_cpp.server")


@pytest.mark.parametrize("backend", ["xllamacpp", "llama_cpp_python"])
def test_killed_parent_leaves_no_server_and_no_log(backend):
    _require(backend)
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "hf_prefsel-llama-*")))
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, backend], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid, log = parent.stdout.readline().split(" ", 1)
        assert log.strip().endswith("(deleted)")  # the server writes into a file no folder lists
        assert glob.glob(os.path.join(tempfile.gettempdir(), "hf_prefsel-llama-*")) == sorted(before)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 15
    while _alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(int(pid)), "the server outlived its parent"


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_batching_backend_reports_slots_and_prefix_reuse(lima_rows, cache_path):
    _require("xllamacpp")
    from hf_prefsel.llm import serve_local
    from hf_prefsel.tacos import OpenTagger

    with serve_local(1, backend="xllamacpp", slots=4) as servers:
        tagger = OpenTagger(servers.config(cache_path=cache_path), input_column=None)
        rows = {"instruction": [" ".join(r["instruction"].split())[:400] for r in lima_rows[:8]]}
        out = tagger(rows)
        assert sum(map(bool, out["tags"])) >= 6
        client: LLMClient = tagger.client
        assert client.backends[0].slots == 4 and client.replica_limits() == [4 + 3]
        stats = servers.prefix_stats()
        assert stats["requests"] == tagger.usage.calls
        assert stats["prefix_hits"] >= stats["requests"] - 4  # each slot's first request may find it cold
        assert stats["reused_tokens"] / max(1, stats["prefix_hits"]) > 120  # the shared few-shot prefix
