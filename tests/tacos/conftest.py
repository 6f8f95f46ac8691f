"""Fixtures for the TACOS tests: one shared embedder, and real rows read at test time from ../shared/data."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SHARED_DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))


def shared_path(*parts: str) -> str:
    """Path of a file under ../shared/data (never copied into the repo); skips locally, fails in CI, if absent."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        if os.environ.get("CI"):
            pytest.fail(f"Test data {path} is missing.")
        pytest.skip(f"Test data {path} is missing.")
    return path


def read_jsonl(*parts: str) -> list[dict]:
    with open(shared_path(*parts), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="session")
def embedder():
    """The bundled MiniLM, loaded once for the session; its cache lets tests re-embed the same tags for free."""
    from hf_prefsel.embed import Embedder

    return Embedder(cache_size=50_000)


@pytest.fixture(scope="session")
def flask_rows() -> list[dict]:
    """1,740 FLASK eval instructions whose real multi-label annotations (skills + domains) serve as tags."""
    return read_jsonl("instructions", "flask_eval_skills.jsonl")
