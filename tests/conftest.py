"""Fixtures shared by the whole suite: an isolated request cache and the real local model server."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


def shared_data(*parts: str) -> str:
    """Path of a file under ../shared/data (never copied into the repo); skips locally, fails in CI, if absent."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        if os.environ.get("CI"):
            pytest.fail(f"Test data {path} is missing.")
        pytest.skip(f"Test data {path} is missing.")
    return path


@pytest.fixture
def cache_path(tmp_path) -> str:
    """A fresh request-cache file, so tests never see each other's replies."""
    return str(tmp_path / "requests.sqlite")


def _require_llama() -> None:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("llama-cpp-python[server] is not installed; the README setup installs it.")
        pytest.skip("llama-cpp-python[server] is not installed")


@pytest.fixture(scope="session")
def local_servers():
    """Two real llama-cpp-python servers with the bundled Gemma 3 270M on 127.0.0.1, stopped at the end."""
    _require_llama()
    from hf_prefsel.llm import serve_local

    servers = serve_local(replicas=2, n_threads=1)
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def lima_rows() -> list[dict]:
    """The first 40 LIMA training rows (real instructions)."""
    import json

    with open(shared_data("instructions", "lima_train_1k.jsonl")) as fh:
        return [json.loads(line) for _, line in zip(range(40), fh)]
