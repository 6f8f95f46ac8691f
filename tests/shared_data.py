"""Where the suite finds real data: ../shared/data, read at test time and never copied into the repo."""

from __future__ import annotations

import json
import os

import pytest

SHARED_DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


def shared_path(*parts: str) -> str:
    """Path of a file under ../shared/data; skips the test locally, fails it in CI, if the file is absent."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        if os.environ.get("CI"):
            pytest.fail(f"Test data {path} is missing.")
        pytest.skip(f"Test data {path} is missing.")
    return path


def read_jsonl(*parts: str, limit: int | None = None) -> list[dict]:
    """Rows of a JSONL file under ../shared/data (the first `limit` rows if given)."""
    rows: list[dict] = []
    with open(shared_path(*parts), encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and len(rows) >= limit:
                break
            rows.append(json.loads(line))
    return rows
