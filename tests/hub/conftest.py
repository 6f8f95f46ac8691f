"""Fixtures for the hub tests: a small Artifact subclass and a few real LIMA rows (read at test time)."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pytest

from hf_prefsel.hub import Artifact

LIMA = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "instructions", "lima_train_1k.jsonl")
)


class ToyVocabulary(Artifact):
    """A tag vocabulary stand-in: JSON content plus arrays of several dtypes and shapes."""

    artifact_type = "toy_vocabulary"
    format_version = 2

    def __init__(self, tags: list[str], counts: dict[str, int], arrays: dict[str, np.ndarray] | None = None):
        self.tags = tags
        self.counts = counts
        self.arrays = arrays or {}

    def to_dict(self) -> dict:
        return {"tags": self.tags, "counts": self.counts}

    def tensors(self) -> dict[str, np.ndarray]:
        return dict(self.arrays)

    @classmethod
    def from_dict(cls, data: dict, tensors: dict[str, np.ndarray]) -> "ToyVocabulary":
        return cls(data["tags"], data["counts"], tensors)

    def card_body(self) -> str:
        top = sorted(self.counts.items(), key=lambda kv: -kv[1])[:2]
        return f"**{len(self.tags)} tags.** Top: " + ", ".join(f"{t} ({c})" for t, c in top)


class ToyTree(Artifact):
    """A second artifact type, to check that types are not confused."""

    artifact_type = "toy_tree"

    def __init__(self, children: dict[str, list[str]]):
        self.children = children

    def to_dict(self) -> dict:
        return {"children": self.children}

    @classmethod
    def from_dict(cls, data: dict, tensors: dict[str, np.ndarray]) -> "ToyTree":
        return cls(data["children"])


@pytest.fixture
def toy() -> ToyVocabulary:
    rng = np.random.default_rng(0)
    return ToyVocabulary(
        tags=["math", "coding", "écriture"],
        counts={"math": 5, "coding": 9, "écriture": 1},
        arrays={
            "embeddings": rng.standard_normal((3, 8)).astype(np.float32),
            "ids": np.array([3, 1, 2], dtype=np.int64),
            "mask": np.array([[True, False], [False, True]]),
            "half": rng.standard_normal((2, 3, 4)).astype(np.float16),
            "transposed": np.arange(12, dtype=np.int32).reshape(3, 4).T,  # not C-contiguous
        },
    )


@pytest.fixture
def toy_cls() -> type[ToyVocabulary]:
    return ToyVocabulary


@pytest.fixture
def tree_cls() -> type[ToyTree]:
    return ToyTree


def read_lima(n: int) -> list[dict[str, Any]]:
    """The first `n` rows of the shared LIMA sample; skipped if the shared data is absent (fails in CI)."""
    if not os.path.exists(LIMA):
        if os.environ.get("CI"):
            pytest.fail(f"Test data {LIMA} is missing.")
        pytest.skip(f"Test data {LIMA} is missing.")
    rows = []
    with open(LIMA, encoding="utf-8") as f:
        for line in f:
            rows.append(json.loads(line))
            if len(rows) == n:
                break
    return rows


@pytest.fixture
def lima_rows() -> list[dict[str, Any]]:
    return read_lima(12)
