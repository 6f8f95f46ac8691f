"""Fixtures for the TACOS tests: one shared embedder, and real rows read at test time from ../shared/data."""

from __future__ import annotations

import os

import pytest

from shared_data import read_jsonl  # tests/ is on pythonpath

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedder():
    """The bundled MiniLM, loaded once for the session; its cache lets tests re-embed the same tags for free."""
    from hf_prefsel.embed import Embedder

    return Embedder(cache_size=50_000)


@pytest.fixture(scope="session")
def flask_rows() -> list[dict]:
    """1,740 FLASK eval instructions whose real multi-label annotations (skills + domains) serve as tags."""
    return read_jsonl("instructions", "flask_eval_skills.jsonl")
