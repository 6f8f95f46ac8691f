"""Building a knowledge tree's levels: k-means on concept embeddings, bottom-up, and naming each parent.

Parents are named without an LLM by default (distinctive words of the leaves under them, or the most central
child), so a tree builds offline and fast at 100k concepts. A `Namer` (e.g. an LLM) is the hook for the Clio-style
steps: summarize, deduplicate, reassign, rename. `KnowledgeTree.build` is the entry point.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from ..embed import Embedder, faiss_threads_for, kmeans
from ..errors import ConfigError, DataError
from .canonical import canonicalize_concept

Namer = Callable[[list[list[str]]], list[str]]
"""Children names of each parent of one level → one name per parent (same order)."""


@dataclass
class KnowledgeTreeConfig:
    """How `KnowledgeTree.build` clusters concepts into a tree.

    Args:
        ratio (`float` or `list[float]`, defaults to `0.1`):
            Parents per child at each level: level `l+1` gets `ceil(n_l * ratio_l)` k-means
            clusters (fewer if some come out empty). A list gives one ratio per level, the last
            one repeating. 0.1 gives ~10 children per parent: 100k concepts → 6 levels.
        max_root_children (`int`, defaults to `12`):
            Clustering stops once a level has at most this many nodes; they become the root's
            children. Keeps the top of the tree readable.
        seed (`int`, defaults to `0`): k-means seed; the same concepts and seed give the same tree.
        niter (`int`, defaults to `20`): k-means iterations per clustering.
        max_flat_k (`int`, defaults to `256`):
            Above this many clusters, a level is clustered in two stages (`ceil(sqrt(k))` coarse
            clusters, then k-means inside each with a share of `k` proportional to its size).
            Cost drops from O(n·k) to O(n·sqrt(k)) per iteration: that is what makes 100k
            concepts fit in minutes on 2 cores. Set it very high for plain k-means everywhere.
        naming (`"terms"` or `"medoid"`, defaults to `"terms"`):
            How parents are named when no `namer` is given. `"terms"`: the three most
            distinctive words of the leaves under the parent against its sibling clusters
            (class-based TF-IDF), e.g. "python, data, processing"; describes the whole subtree.
            `"medoid"`: the name of the child closest to the centroid (a real concept, but at
            upper levels it names one corner of a broad branch).
        merge_duplicate_names (`bool`, *optional*):
            Parents of the same level whose names are equal after `canonicalize_concept` are
            merged (Clio's "deduplicate" step), so it can leave fewer parents than the ratio
            asks for. `None` (default) = only when a `namer` is given: an LLM giving two clusters
            the same name is a judgement that they are one topic, while colliding keyword
            ("terms") names are not.
        reassign (`bool`, defaults to `False`):
            Clio's "reassign" step: after naming, every child moves to the parent whose *name*
            embedding is most similar to it; empty parents are dropped. Needs an embedder, and
            only makes sense with a meaningful `namer` (an LLM).
        rename_after_reassign (`bool`, defaults to `True`):
            Call the namer again on the reassigned children (Clio's "rename" step).
    """

    ratio: float | list[float] = 0.1
    max_root_children: int = 12
    seed: int = 0
    niter: int = 20
    max_flat_k: int = 256
    naming: Literal["medoid", "terms"] = "terms"
    merge_duplicate_names: bool | None = None
    reassign: bool = False
    rename_after_reassign: bool = True

    def __post_init__(self) -> None:
        ratios = self.ratio if isinstance(self.ratio, (list, tuple)) else [self.ratio]
        if not ratios or any(not (0.0 < float(r) < 1.0) for r in ratios):
            raise ConfigError(f"ratio must be in (0, 1) (parents per child), got {self.ratio!r}; 0.1 gives ~10 children per parent.")
        if self.max_root_children < 1:
            raise ConfigError(f"max_root_children must be >= 1, got {self.max_root_children}.")
        if self.niter < 1 or self.max_flat_k < 2:
            raise ConfigError("niter must be >= 1 and max_flat_k >= 2.")
        if self.naming not in ("medoid", "terms"):
            raise ConfigError(f"naming must be 'medoid' or 'terms', got {self.naming!r}.")

    def ratio_at(self, level: int) -> float:
        ratios = self.ratio if isinstance(self.ratio, (list, tuple)) else [self.ratio]
        return float(ratios[min(level, len(ratios) - 1)])


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32), so inner products are cosines."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def _largest_remainder(total: int, weights: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Integer shares of `total` proportional to `weights`, each in [1, cap]."""
    raw = total * weights / weights.sum()
    share = np.clip(np.floor(raw).astype(np.int64), 1, caps)
    remaining = total - int(share.sum())
    order = np.argsort(-(raw - np.floor(raw)), kind="stable")
    while remaining > 0:
        progressed = False
        for i in order:
            if remaining == 0:
                break
            if share[i] < caps[i]:
                share[i] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            break
    while remaining < 0:  # the floor of 1 overshot: take back from the largest shares
        i = int(np.argmax(share))
        if share[i] <= 1:
            break
        share[i] -= 1
        remaining += 1
    return share


def _kmeans_labels(x: np.ndarray, k: int, seed: int, niter: int) -> np.ndarray:
    with faiss_threads_for(float(len(x)) * k * x.shape[1]):
        return kmeans(x, k, seed=seed, niter=niter)[1]


def _cluster_level(x: np.ndarray, k: int, config: KnowledgeTreeConfig, seed: int) -> np.ndarray:
    """Labels `(n,)` in [0, k') of k-means with `k` clusters, two-stage above `max_flat_k`."""
    n = len(x)
    if k <= config.max_flat_k:
        return _kmeans_labels(x, k, seed, config.niter)
    k1 = int(math.ceil(math.sqrt(k)))
    coarse = _kmeans_labels(x, k1, seed, config.niter)
    sizes = np.bincount(coarse, minlength=k1)
    present = np.flatnonzero(sizes)
    shares = _largest_remainder(k, sizes[present].astype(np.float64), sizes[present])
    labels = np.empty(n, dtype=np.int64)
    offset = 0
    order = np.argsort(coarse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    for c, kc in zip(present, shares):
        members = order[bounds[c] : bounds[c + 1]]
        sub = _kmeans_labels(x[members], int(kc), seed + 1 + int(c), config.niter) if kc > 1 else np.zeros(len(members), np.int64)
        labels[members] = sub + offset
        offset += int(kc)
    return labels


def _compact(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0..k'-1 in order of first appearance of the sorted ids (drops empty clusters)."""
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def _group_means(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, x)
    return normalize_rows(sums)


_TOKEN = re.compile(r"[^\W_]+(?:[+#'-][^\W_]*)*", re.UNICODE)
_STOP = frozenset(
    "a an and are as at be by for from in into is it of on or the to with without vs via using about over under".split()
)


def _tokens(name: str) -> Counter:
    return Counter(set(t for t in _TOKEN.findall(name.lower()) if t not in _STOP and len(t) > 1))


def _term_names(tokens: list[Counter], sizes: list[int], n_terms: int = 3) -> list[str]:
    """Class-based TF-IDF: each cluster's most distinctive words against its sibling clusters.

    `tokens[c][t]` = how many leaves under cluster c contain word t; a word scores by the share
    of the cluster's leaves that contain it times its rarity among the clusters of the level.
    """
    cdf = Counter(t for c in tokens for t in c)
    k = len(tokens)
    out = []
    for c, size in zip(tokens, sizes):
        if not c:
            out.append("misc")
            continue
        scored = sorted(c, key=lambda t: (-(c[t] / max(size, 1)) * math.log(1 + k / cdf[t]), -c[t], t))
        out.append(", ".join(scored[:n_terms]))
    return out


@dataclass
class _Level:
    names: list[str]
    embeddings: np.ndarray
    parent_of_child: np.ndarray  # child index (previous level) -> index in this level
    requested_k: int
    tokens: list[Counter] | None = None  # per node: leaves containing each word ("terms" naming)
    sizes: list[int] | None = None  # per node: leaves under it


def call_namer(namer: Namer, children_names: list[list[str]]) -> list[str]:
    """The namer's names for these groups of children, checked (one non-empty string per group) and stripped."""
    out = namer(children_names)
    if not isinstance(out, list) or len(out) != len(children_names) or not all(isinstance(s, str) and s.strip() for s in out):
        raise DataError(
            f"The namer must return a list of {len(children_names)} non-empty strings (one per parent, same order); "
            f"got {type(out).__name__} of length {len(out) if hasattr(out, '__len__') else '?'}."
        )
    return [s.strip() for s in out]


def _name_level(
    child_names: list[str],
    child_emb: np.ndarray,
    labels: np.ndarray,
    config: KnowledgeTreeConfig,
    namer: Namer | None,
    embedder: Embedder | None,
    child_tokens: list[Counter] | None,
    child_sizes: list[int],
) -> _Level:
    """The parents of one level from its k-means `labels`: named, merged when names coincide, optionally reassigned."""
    k = int(labels.max()) + 1
    centroids = _group_means(child_emb, labels, k)

    def aggregate(lab: np.ndarray, kk: int) -> tuple[list[Counter] | None, list[int]]:
        sizes = np.bincount(lab, weights=np.asarray(child_sizes, dtype=np.float64), minlength=kk).astype(np.int64).tolist()
        if child_tokens is None:
            return None, sizes
        toks: list[Counter] = [Counter() for _ in range(kk)]
        for g, c in zip(lab.tolist(), child_tokens):
            toks[g].update(c)
        return toks, sizes

    def groups(lab: np.ndarray, kk: int) -> list[list[str]]:
        out: list[list[str]] = [[] for _ in range(kk)]
        for name, g in zip(child_names, lab.tolist()):
            out[g].append(name)
        return out

    def name_all(lab: np.ndarray, cents: np.ndarray, kk: int) -> list[str]:
        if namer is not None:
            return call_namer(namer, groups(lab, kk))
        if child_tokens is not None:
            return _term_names(*aggregate(lab, kk))
        # medoid: the child with the highest cosine to its own centroid
        sims = np.einsum("ij,ij->i", child_emb, cents[lab])
        pick = np.zeros(kk, dtype=np.int64)
        order = np.lexsort((np.arange(len(lab)), -sims, lab))  # per cluster: best sim, then lowest id
        first = np.ones(len(order), dtype=bool)
        first[1:] = lab[order][1:] != lab[order][:-1]
        pick[lab[order][first]] = order[first]
        return [child_names[i] for i in pick]

    names = name_all(labels, centroids, k)
    merge = config.merge_duplicate_names if config.merge_duplicate_names is not None else namer is not None
    if merge:
        canon = [canonicalize_concept(n) or n for n in names]
        uniq: dict[str, int] = {}
        remap = np.array([uniq.setdefault(c, len(uniq)) for c in canon], dtype=np.int64)
        if len(uniq) < k:
            keep_first = {}
            for i, c in enumerate(canon):
                keep_first.setdefault(c, names[i])
            labels = remap[labels]
            k = len(uniq)
            names = list(keep_first.values())
            centroids = _group_means(child_emb, labels, k)
    if config.reassign:
        assert embedder is not None
        name_emb = normalize_rows(embedder.encode(names))
        nearest = np.argmax(child_emb @ name_emb.T, axis=1)
        labels = _compact(nearest)
        kept = np.unique(nearest)
        names = [names[i] for i in kept]
        k = len(names)
        centroids = _group_means(child_emb, labels, k)
        if config.rename_after_reassign:
            names = call_namer(namer, groups(labels, k)) if namer is not None else names
    tokens, sizes = aggregate(labels, k)
    return _Level(names=names, embeddings=centroids, parent_of_child=labels, requested_k=k, tokens=tokens, sizes=sizes)


def build_levels(
    leaf_names: list[str],
    leaf_emb: np.ndarray,
    config: KnowledgeTreeConfig,
    namer: Namer | None,
    embedder: Embedder | None,
) -> tuple[list[str], np.ndarray, np.ndarray, list[dict[str, int]]]:
    """Cluster the leaves level by level up to one root; returns `(names, parents, embeddings, level_stats)`.

    Nodes are numbered leaves first, then each level bottom-up, the root last (the layout `KnowledgeTree` documents).
    """
    levels: list[_Level] = []
    cur_names, cur_emb = leaf_names, leaf_emb
    use_terms = config.naming == "terms" and namer is None
    cur_tokens = [_tokens(c) for c in leaf_names] if use_terms else None
    cur_sizes = [1] * len(leaf_names)
    stats = [{"level": 0, "nodes": len(leaf_names), "requested": len(leaf_names)}]
    level = 0
    while len(cur_names) > config.max_root_children:
        n = len(cur_names)
        k = min(n - 1, max(1, int(math.ceil(n * config.ratio_at(level)))))
        labels = _compact(_cluster_level(cur_emb, k, config, seed=config.seed + 1000 * level))
        lvl = _name_level(cur_names, cur_emb, labels, config, namer, embedder, cur_tokens, cur_sizes)
        lvl.requested_k = k
        levels.append(lvl)
        level += 1
        stats.append({"level": level, "nodes": len(lvl.names), "requested": k})
        cur_names, cur_emb, cur_tokens, cur_sizes = lvl.names, lvl.embeddings, lvl.tokens, lvl.sizes

    # Assemble: leaves, then each level, then the root.
    names = list(leaf_names)
    parents: list[np.ndarray] = []
    emb_parts = [leaf_emb]
    offset = 0
    size = len(leaf_names)
    for lvl in levels:
        parents.append(lvl.parent_of_child + offset + size)
        offset += size
        size = len(lvl.names)
        names.extend(lvl.names)
        emb_parts.append(lvl.embeddings)
    root_id = offset + size
    parents.append(np.full(size, root_id, dtype=np.int64))
    root_name = "root"
    top_names = levels[-1].names if levels else leaf_names
    if namer is not None:
        root_name = call_namer(namer, [list(top_names)])[0]
    names.append(root_name)
    parents.append(np.array([-1], dtype=np.int64))
    top_emb = emb_parts[-1]
    emb_parts.append(normalize_rows(top_emb.mean(axis=0, keepdims=True)))
    stats.append({"level": level + 1, "nodes": 1, "requested": 1})
    return names, np.concatenate(parents), np.vstack(emb_parts), stats


__all__ = ["KnowledgeTreeConfig", "Namer", "build_levels", "call_namer", "normalize_rows"]
