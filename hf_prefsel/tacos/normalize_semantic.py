"""Semantic aggregation (InsTag step 3): embed each group's name and merge near-duplicates by cosine similarity."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .normalize_corpus import Corpus, apply_merge, representatives
from .normalize_rules import clean_tag

if TYPE_CHECKING:  # pragma: no cover
    from ..embed import Embedder

_TAG_EMBEDDERS: dict[str | None, Embedder] = {}


def tag_embedder(model_name_or_path: str | None = None) -> Embedder:
    """The process-wide `Embedder` used for tags when none is passed: batch size 256 and a 100k-entry cache.

    Tags are a few tokens long; on 2 CPU cores batches of 256 took half the CPU time of 64 for MiniLM (per-batch
    overhead dominates such short inputs). Sharing one instance lets tag clustering reuse the vectors that
    semantic aggregation computed for the same canonical tags.
    """
    if model_name_or_path not in _TAG_EMBEDDERS:
        from ..embed import Embedder

        _TAG_EMBEDDERS[model_name_or_path] = Embedder(model_name_or_path, batch_size=256, cache_size=100_000)
    return _TAG_EMBEDDERS[model_name_or_path]


def semantic_groups(
    corpus: Corpus, group: np.ndarray, embedder: Embedder, threshold: float, neighbours: int, lowercase: bool = True
) -> np.ndarray:
    """Merge groups whose names (most frequent spelling, cleaned) have cosine similarity >= `threshold`.

    Single linkage over each name's `neighbours` nearest neighbours (DBSCAN with `min_samples=1`, as InsTag).
    """
    from ..embed import near_duplicate_groups

    reps = representatives(corpus, group)
    names = [clean_tag(corpus.raw[r], lowercase) or corpus.raw[r] for r in reps]
    if len(names) < 2:
        return group
    merged = near_duplicate_groups(embedder.encode(names), threshold, neighbours=neighbours)
    return apply_merge(group, merged)


__all__ = ["semantic_groups", "tag_embedder"]
