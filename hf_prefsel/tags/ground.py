"""Grounding: map each row's concepts onto the leaves of a `KnowledgeTree`.

A concept is grounded by (1) exact match of its canonical form to a leaf, else (2) the
nearest leaf by embedding when the cosine similarity reaches a threshold, else (3) it is
reported as ungrounded. Nothing is dropped silently: every concept gets a match kind.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..embed import Embedder, embedder_for, faiss_threads_for
from ..errors import ConfigError, DataError, MissingColumnError
from .tree import KnowledgeTree, canonicalize_concept

MATCH_EXACT = "exact"
MATCH_NEAREST = "nearest"
MATCH_UNGROUNDED = "ungrounded"


@dataclass
class GroundingConfig:
    """Where grounding reads and writes, and how loose the embedding fallback is.

    Args:
        concepts_column (`str`, defaults to `"concepts"`): input column, `list[str]` per row
            (rows with `None`, e.g. failed tagging, get empty outputs).
        threshold (`float`, defaults to `0.8`):
            Minimum cosine similarity for the nearest-leaf fallback. With MiniLM, ≥0.8 is
            usually a paraphrase ("binary search algorithm" → "binary search"); 0.6-0.7 starts
            mapping to merely related concepts. Set it above 1 to allow exact matches only.
        leaves_column (`str`, defaults to `"concept_leaves"`): output, sorted unique leaf node ids.
        paths_column (`str`, defaults to `"concept_paths"`):
            output, one ancestor path (leaf → root node ids) per leaf in `leaves_column`.
        match_column (`str`, defaults to `"concept_match"`):
            output, one of `"exact"`, `"nearest"`, `"ungrounded"` per input concept (same order).
        path_names_column (`str`, *optional*): also write the paths as names (readable, larger).
        embed_batch_size (`int`, defaults to `256`): concepts embedded per call for the fallback.
    """

    concepts_column: str = "concepts"
    threshold: float = 0.8
    leaves_column: str = "concept_leaves"
    paths_column: str = "concept_paths"
    match_column: str = "concept_match"
    path_names_column: str | None = None
    embed_batch_size: int = 256

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold:
            raise ConfigError(f"threshold is a cosine similarity (<= 1 to allow nearest matches), got {self.threshold}.")
        if self.embed_batch_size < 1:
            raise ConfigError("embed_batch_size must be >= 1.")


@dataclass
class GroundingReport:
    """Counts of how concepts were grounded, computed from the output columns."""

    rows: int = 0
    rows_without_leaf: int = 0
    concepts: int = 0
    exact: int = 0
    nearest: int = 0
    ungrounded: int = 0
    top_ungrounded: list[tuple[str, int]] = field(default_factory=list)

    @property
    def grounded_fraction(self) -> float:
        return (self.exact + self.nearest) / self.concepts if self.concepts else 0.0

    def __str__(self) -> str:
        return (
            f"{self.concepts:,} concepts in {self.rows:,} rows: {self.exact:,} exact, {self.nearest:,} nearest, "
            f"{self.ungrounded:,} ungrounded ({100 * self.grounded_fraction:.1f}% grounded); "
            f"{self.rows_without_leaf:,} rows have no leaf."
        )


class TreeGrounder:
    """A `Dataset.map(batched=True)` callable adding leaf ids and ancestor paths to each row.

    Pickles to the tree, config and embedder settings only (the FAISS index and model are
    rebuilt lazily), so `datasets` can fingerprint it and send it to worker processes.

    Args:
        tree (`KnowledgeTree`): the tree to ground on. Needs embeddings for the nearest-leaf
            fallback (trees from `KnowledgeTree.build` have them).
        config (`GroundingConfig`, *optional*).
        embedder (`Embedder`, *optional*): must be the model the tree's leaves were embedded
            with. Defaults to the model the tree records (`tree.embedding_model`).

    Example:
        >>> grounder = TreeGrounder(tree)
        >>> ds = ds.map(grounder, batched=True, batch_size=256)
        >>> print(grounding_report(ds))
    """

    def __init__(self, tree: KnowledgeTree, config: GroundingConfig | None = None, embedder: Embedder | None = None):
        self.tree = tree
        self.config = config or GroundingConfig()
        if embedder is None and tree.embedding_model is not None and self.config.threshold <= 1.0:
            embedder = embedder_for(tree.embedding_model)
        self.embedder = embedder
        self._index: Any = None
        self._leaf_ids: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"tree": self.tree, "config": self.config, "embedder": self.embedder}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._index = None
        self._leaf_ids = None

    def _nearest(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Nearest leaf id and cosine similarity for each text."""
        import faiss

        if self.tree.embeddings is None:
            raise ConfigError("This tree has no embeddings, so the nearest-leaf fallback cannot run; set threshold > 1 (exact only) or rebuild the tree.")
        if self.embedder is None:
            raise ConfigError("The nearest-leaf fallback needs the embedder the tree was built with; pass `embedder=`.")
        if self._index is None:
            self._leaf_ids = self.tree.leaves
            leaf_emb = np.ascontiguousarray(self.tree.embeddings[self._leaf_ids])
            self._index = faiss.IndexFlatIP(leaf_emb.shape[1])
            self._index.add(leaf_emb)
        ids = np.empty(len(texts), dtype=np.int64)
        sims = np.empty(len(texts), dtype=np.float32)
        bs = self.config.embed_batch_size
        for s in range(0, len(texts), bs):
            vec = self.embedder.encode(texts[s : s + bs])
            if vec.shape[1] != self._index.d:
                raise ConfigError(
                    f"The embedder gives {vec.shape[1]}-d vectors but the tree's are {self._index.d}-d; "
                    f"use the model the tree was built with ({self.tree.embedding_model!r})."
                )
            with faiss_threads_for(float(len(vec)) * self._index.ntotal * self._index.d):
                d, i = self._index.search(np.ascontiguousarray(vec, dtype=np.float32), 1)
            ids[s : s + bs] = self._leaf_ids[i[:, 0]]
            sims[s : s + bs] = d[:, 0]
        return ids, sims

    def ground(self, concept_lists: Sequence[Sequence[str] | None]) -> tuple[list[list[int]], list[list[str]]]:
        """Ground lists of concepts; returns `(leaf ids per row, match kind per concept per row)`.

        Unmatched strings are embedded once per call, however often they repeat.
        """
        lookup = self.tree.leaf_lookup
        canon_rows: list[list[str]] = []
        pending: set[str] = set()
        for i, concepts in enumerate(concept_lists):
            if concepts is None:
                canon_rows.append([])
                continue
            if isinstance(concepts, str) or not isinstance(concepts, (list, tuple)):
                raise DataError(
                    f"Row {i} of the concepts column is {type(concepts).__name__}, expected a list of strings. "
                    "Tag the rows with ConceptTagger, or wrap single concepts in a list."
                )
            row = [canonicalize_concept(c) for c in concepts]
            canon_rows.append(row)
            pending.update(c for c in row if c and c not in lookup)
        near: dict[str, int] = {}
        if pending and self.config.threshold <= 1.0:
            texts = sorted(pending)
            ids, sims = self._nearest(texts)
            near = {t: int(j) for t, j, s in zip(texts, ids, sims) if s >= self.config.threshold}
        leaves_out: list[list[int]] = []
        match_out: list[list[str]] = []
        for row in canon_rows:
            leaves: set[int] = set()
            kinds: list[str] = []
            for c in row:
                if c in lookup:
                    leaves.add(lookup[c])
                    kinds.append(MATCH_EXACT)
                elif c in near:
                    leaves.add(near[c])
                    kinds.append(MATCH_NEAREST)
                else:
                    kinds.append(MATCH_UNGROUNDED)
            leaves_out.append(sorted(leaves))
            match_out.append(kinds)
        return leaves_out, match_out

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        col = self.config.concepts_column
        if col not in batch:
            raise MissingColumnError(col, list(batch), option="concepts_column")
        leaves, matches = self.ground(batch[col])
        out: dict[str, list] = {
            self.config.leaves_column: leaves,
            self.config.paths_column: [[self.tree.path(l) for l in row] for row in leaves],
            self.config.match_column: matches,
        }
        if self.config.path_names_column:
            out[self.config.path_names_column] = [[self.tree.path_names(l) for l in row] for row in leaves]
        return out


def grounding_report(dataset: Any, config: GroundingConfig | None = None, top: int = 20) -> GroundingReport:
    """Summarize a grounded dataset (or a dict of columns): exact / nearest / ungrounded counts.

    Reads the output columns, so it is right however the grounding was split across
    batches or processes.
    """
    config = config or GroundingConfig()
    columns = dataset.column_names if hasattr(dataset, "column_names") else list(dataset)
    for option in ("match_column", "leaves_column"):
        c = getattr(config, option)
        if c not in columns:
            raise MissingColumnError(c, columns, option=option)
    matches = dataset[config.match_column]
    leaves = dataset[config.leaves_column]
    concepts = dataset[config.concepts_column] if config.concepts_column in columns else [None] * len(matches)
    kinds = Counter(k for row in matches for k in row)
    missed: Counter[str] = Counter()
    for row_c, row_m in zip(concepts, matches):
        if row_c:
            missed.update(canonicalize_concept(c) for c, m in zip(row_c, row_m) if m == MATCH_UNGROUNDED)
    return GroundingReport(
        rows=len(matches),
        rows_without_leaf=sum(1 for row in leaves if not row),
        concepts=sum(kinds.values()),
        exact=kinds[MATCH_EXACT],
        nearest=kinds[MATCH_NEAREST],
        ungrounded=kinds[MATCH_UNGROUNDED],
        top_ungrounded=missed.most_common(top),
    )


def ground_dataset(
    dataset: Any,
    tree: KnowledgeTree,
    config: GroundingConfig | None = None,
    *,
    embedder: Embedder | None = None,
    batch_size: int = 1000,
    num_proc: int | None = None,
    desc: str = "Grounding concepts",
) -> tuple[Any, GroundingReport]:
    """`dataset.map(TreeGrounder(...), batched=True)` plus its `GroundingReport`."""
    grounder = TreeGrounder(tree, config, embedder)
    out = dataset.map(grounder, batched=True, batch_size=batch_size, num_proc=num_proc, desc=desc)
    return out, grounding_report(out, grounder.config)
