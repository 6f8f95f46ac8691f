"""The TAGS knowledge tree: atomic concepts as leaves, clustered bottom-up into a single root.

The tree is built without an LLM by default (k-means on embeddings, parents named after a
representative child), so it works offline and fast at 100k concepts. An optional `namer`
callable is the hook for the Clio-style LLM steps (summarize, deduplicate, reassign, rename):
it gets the children names of every parent of a level and returns one name per parent.
"""

from __future__ import annotations

import html
import math
import re
import textwrap
import unicodedata
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, ClassVar, Iterable, Iterator, Literal, Sequence

import numpy as np
from scipy.sparse import csr_matrix

from ..embed import Embedder, kmeans
from ..errors import ConfigError, DataError, DependencyError
from ..hub.artifact import Artifact

Namer = Callable[[list[list[str]]], list[str]]
"""Children names of each parent of one level → one name per parent (same order)."""

_SPACES = re.compile(r"\s+")
_EDGE_PUNCT = " \t\n\r.,;:!?\"'`()[]{}<>"


def canonicalize_concept(text: str) -> str:
    """Canonical form of a concept string: NFKC, case-folded, whitespace collapsed, edge punctuation stripped.

    Exact grounding compares canonical forms, so "Binary Search." and "binary  search" are the
    same leaf. Inner punctuation is kept ("C++", "k-means") because it carries meaning.

    Example:
        >>> canonicalize_concept("  Binary   Search. ")
        'binary search'
    """
    if not isinstance(text, str):
        raise DataError(f"A concept must be a string, got {type(text).__name__}: {text!r}. Clean the `concepts` column first.")
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", text).strip(_EDGE_PUNCT).strip()


BUNDLED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def portable_model_name(model_name_or_path: str) -> str:
    """The name to record in a saved tree: the Hub id for the bundled MiniLM (its local path differs per machine)."""
    try:
        from ..embed.embedder import default_model_path

        if model_name_or_path == default_model_path():
            return BUNDLED_MODEL_ID
    except Exception:  # the bundled package is optional here
        pass
    return model_name_or_path


def embedder_for(model_name: str | None) -> Embedder | None:
    """An `Embedder` for a recorded model name; the bundled MiniLM when it is `BUNDLED_MODEL_ID` (no download)."""
    if model_name is None:
        return None
    if model_name == BUNDLED_MODEL_ID:
        return Embedder()
    return Embedder(model_name)


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


def _normalize_rows(x: np.ndarray) -> np.ndarray:
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


_PARALLEL_WORK = 1e9  # n·k·d below which FAISS runs single-threaded


@contextmanager
def faiss_threads_for(work: float) -> Iterator[None]:
    """Run small FAISS calls on one thread.

    FAISS's OpenMP threads spin-wait; on a busy 2-core machine a k-means of 50 points took
    0.3 s with 2 threads and 0.2 ms with 1 (measured). Big calls keep all threads.
    """
    import faiss

    if work >= _PARALLEL_WORK:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


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
    return _normalize_rows(sums)


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


class KnowledgeTree(Artifact):
    """A rooted tree of knowledge concepts: leaves are canonical atomic concepts, parents are broader topics.

    Nodes are numbered `0..n_nodes-1`; `parents[root] == -1`. A tree built by `build` numbers
    the leaves first (sorted canonical concepts), then each level bottom-up, the root last.
    Every node has an L2-normalized embedding (a leaf: its concept's; a parent: the normalized
    mean of its children's), kept so grounding and LLM reassignment can reuse them.

    Example:
        >>> tree = KnowledgeTree.build(["binary search", "quicksort", "prime numbers", "gcd"])
        >>> tree.depth, tree.n_leaves
        (1, 4)
        >>> tree.save_pretrained("my_tree")  # artifact.json + tensors.safetensors + README.md
    """

    artifact_type: ClassVar[str] = "knowledge_tree"
    format_version: ClassVar[int] = 1

    def __init__(
        self,
        names: Sequence[str],
        parents: Sequence[int] | np.ndarray,
        embeddings: np.ndarray | None = None,
        *,
        embedding_model: str | None = None,
        config: KnowledgeTreeConfig | None = None,
        level_stats: list[dict[str, int]] | None = None,
    ):
        self.names = [str(n) for n in names]
        self.parents = np.asarray(parents, dtype=np.int64).reshape(-1)
        n = len(self.names)
        if n == 0:
            raise DataError("A knowledge tree needs at least one node.")
        if len(self.parents) != n:
            raise DataError(f"names has {n} entries but parents has {len(self.parents)}; give one parent id per node (-1 for the root).")
        roots = np.flatnonzero(self.parents < 0)
        if len(roots) != 1:
            raise DataError(f"A tree has exactly one root (parent -1); got {len(roots)}. Add a common root node.")
        if np.any(self.parents >= n):
            raise DataError("A parent id is out of range; parent ids index into `names`.")
        self.root = int(roots[0])
        self.embeddings = None if embeddings is None else np.ascontiguousarray(embeddings, dtype=np.float32)
        if self.embeddings is not None and self.embeddings.shape[0] != n:
            raise DataError(f"embeddings has {self.embeddings.shape[0]} rows for {n} nodes; give one row per node.")
        self.embedding_model = embedding_model
        self.config = config
        self.level_stats = level_stats or []
        self.depths = self._compute_depths()
        child_counts = np.bincount(self.parents[self.parents >= 0], minlength=n)
        self.leaves = np.flatnonzero(child_counts == 0).astype(np.int64)
        self._leaf_lookup: dict[str, int] | None = None
        self._ancestors: csr_matrix | None = None
        self._children: list[np.ndarray] | None = None
        self._leaf_counts: np.ndarray | None = None

    # ------------------------------------------------------------------ structure
    def _compute_depths(self) -> np.ndarray:
        """Depth of every node by a breadth-first walk from the root; O(n), and detects nodes cut off from it."""
        n = len(self.parents)
        has_parent = self.parents >= 0
        order = np.argsort(np.where(has_parent, self.parents, -1), kind="stable")
        counts = np.bincount(self.parents[has_parent], minlength=n)
        starts = np.concatenate([[0], np.cumsum(counts)])
        order = order[has_parent[order]]
        depth = np.full(n, -1, dtype=np.int64)
        depth[self.root] = 0
        frontier = np.array([self.root])
        d = 0
        while len(frontier):
            kids = np.concatenate([order[starts[i] : starts[i + 1]] for i in frontier.tolist()]) if len(frontier) < 64 else \
                np.flatnonzero(np.isin(self.parents, frontier))
            d += 1
            kids = kids[depth[kids] < 0]
            depth[kids] = d
            frontier = kids
        if np.any(depth < 0):
            bad = int(np.flatnonzero(depth < 0)[0])
            raise DataError(f"parents does not form a tree: node {bad} ({self.names[bad]!r}) cannot reach the root (a cycle?).")
        return depth

    @property
    def n_nodes(self) -> int:
        return len(self.names)

    @property
    def n_leaves(self) -> int:
        return len(self.leaves)

    @property
    def depth(self) -> int:
        """Edges from the root to the deepest leaf."""
        return int(self.depths.max())

    @property
    def leaf_lookup(self) -> dict[str, int]:
        """Canonical concept → leaf node id (used by exact grounding)."""
        if self._leaf_lookup is None:
            lookup: dict[str, int] = {}
            for i in self.leaves.tolist():
                lookup.setdefault(canonicalize_concept(self.names[i]), i)
            self._leaf_lookup = lookup
        return self._leaf_lookup

    def children(self, node: int) -> np.ndarray:
        """Child node ids of `node` (empty for a leaf)."""
        if self._children is None:
            order = np.argsort(self.parents, kind="stable")
            counts = np.bincount(self.parents[self.parents >= 0], minlength=self.n_nodes)
            starts = np.concatenate([[0], np.cumsum(counts)])
            order = order[self.parents[order] >= 0]
            self._children = [order[starts[i] : starts[i + 1]] for i in range(self.n_nodes)]
        return self._children[node]

    def path(self, node: int) -> list[int]:
        """Node ids from `node` up to the root, both included."""
        out = [int(node)]
        while self.parents[out[-1]] >= 0:
            out.append(int(self.parents[out[-1]]))
        return out

    def path_names(self, node: int) -> list[str]:
        return [self.names[i] for i in self.path(node)]

    def ancestor_matrix(self) -> csr_matrix:
        """Sparse `(n_nodes, n_nodes)` 0/1 matrix: row `l` of a leaf marks `l` and all its ancestors (root included).

        Rows of inner nodes are empty. Mass on leaves times this matrix is the mass of every
        node, which is how the metric and samplers propagate to ancestors without a loop.
        """
        if self._ancestors is None:
            rows, cols = [], []
            cur = self.leaves.copy()
            owner = self.leaves.copy()
            while len(cur):
                rows.append(owner)
                cols.append(cur)
                nxt = self.parents[cur]
                keep = nxt >= 0
                cur, owner = nxt[keep], owner[keep]
            r = np.concatenate(rows)
            c = np.concatenate(cols)
            self._ancestors = csr_matrix((np.ones(len(r), dtype=np.float64), (r, c)), shape=(self.n_nodes, self.n_nodes))
        return self._ancestors

    def leaf_counts(self) -> np.ndarray:
        """Number of leaves under every node (a leaf counts itself)."""
        if self._leaf_counts is None:
            self._leaf_counts = np.asarray(self.ancestor_matrix().sum(axis=0)).reshape(-1).astype(np.int64)
        return self._leaf_counts

    def nodes_at_depth(self, depth: int) -> np.ndarray:
        return np.flatnonzero(self.depths == depth)

    # ------------------------------------------------------------------ building
    @classmethod
    def flat(cls, labels: Sequence[str], embeddings: np.ndarray | None = None, root_name: str = "root") -> "KnowledgeTree":
        """A depth-1 tree: every (canonical, de-duplicated) label is a leaf under one root.

        This is the "labels, no hierarchy" case in which the tree metric reduces to MIG's
        label-level information (with no label-graph propagation).
        """
        canon = sorted({canonicalize_concept(t) for t in labels} - {""})
        if not canon:
            raise DataError("No non-empty labels given to KnowledgeTree.flat.")
        names = canon + [root_name]
        parents = [len(canon)] * len(canon) + [-1]
        emb = None
        if embeddings is not None:
            if len(embeddings) != len(canon):
                raise DataError("flat(): give one embedding per unique canonical label (sorted), or none.")
            leaf = _normalize_rows(np.asarray(embeddings, dtype=np.float32))
            emb = np.vstack([leaf, _normalize_rows(leaf.mean(axis=0, keepdims=True))])
        return cls(names, parents, emb)

    @classmethod
    def build(
        cls,
        concepts: Iterable[str],
        config: KnowledgeTreeConfig | None = None,
        *,
        embedder: Embedder | None = None,
        embeddings: np.ndarray | None = None,
        namer: Namer | None = None,
        show_progress: bool = False,
    ) -> "KnowledgeTree":
        """Build the tree bottom-up from concept strings.

        Concepts are canonicalized and de-duplicated (sorted, so input order does not matter),
        embedded, then clustered level by level with k-means until at most
        `config.max_root_children` nodes remain, which hang under a single root.

        Args:
            concepts (`Iterable[str]`): concept strings; repeats and case/spacing variants are merged.
            config (`KnowledgeTreeConfig`, *optional*): clustering settings.
            embedder (`Embedder`, *optional*): defaults to the bundled MiniLM.
            embeddings (`np.ndarray`, *optional*):
                Precomputed vectors, one per *input* concept (rows of repeated concepts must be
                equal-ish; the first occurrence is used). Skips the embedder.
            namer (`Namer`, *optional*): names parents from their children's names (e.g. an LLM).
            show_progress (`bool`, defaults to `False`): show a bar while embedding.

        Returns:
            `KnowledgeTree`
        """
        config = config or KnowledgeTreeConfig()
        concepts = list(concepts)
        canon_all = [canonicalize_concept(c) for c in concepts]
        if embeddings is not None:
            embeddings = np.asarray(embeddings, dtype=np.float32)
            if embeddings.ndim != 2 or len(embeddings) != len(concepts):
                raise DataError(f"embeddings must have one row per concept ({len(concepts)}), got shape {embeddings.shape}.")
        first: dict[str, int] = {}
        for i, c in enumerate(canon_all):
            if c and c not in first:
                first[c] = i
        if not first:
            raise DataError("No non-empty concepts to build a tree from. Tag the data first (the `concepts` column).")
        leaf_names = sorted(first)
        if embeddings is not None:
            leaf_emb = _normalize_rows(embeddings[[first[c] for c in leaf_names]])
            model_name = None
        else:
            embedder = embedder or Embedder()
            leaf_emb = _normalize_rows(embedder.encode(leaf_names, show_progress=show_progress))
            model_name = portable_model_name(embedder.model_name_or_path)
        if config.reassign and namer is None:
            raise ConfigError("reassign=True needs a `namer` (names are what children are reassigned to).")
        if config.reassign and embedder is None:
            raise ConfigError("reassign=True embeds parent names: pass an `embedder` (not only precomputed embeddings).")

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
            lvl = cls._name_level(cur_names, cur_emb, labels, config, namer, embedder, cur_tokens, cur_sizes)
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
            root_name = cls._call_namer(namer, [list(top_names)])[0]
        names.append(root_name)
        parents.append(np.array([-1], dtype=np.int64))
        top_emb = emb_parts[-1]
        emb_parts.append(_normalize_rows(top_emb.mean(axis=0, keepdims=True)))
        stats.append({"level": level + 1, "nodes": 1, "requested": 1})
        return cls(
            names,
            np.concatenate(parents),
            np.vstack(emb_parts),
            embedding_model=model_name,
            config=config,
            level_stats=stats,
        )

    @staticmethod
    def _call_namer(namer: Namer, children_names: list[list[str]]) -> list[str]:
        out = namer(children_names)
        if not isinstance(out, list) or len(out) != len(children_names) or not all(isinstance(s, str) and s.strip() for s in out):
            raise DataError(
                f"The namer must return a list of {len(children_names)} non-empty strings (one per parent, same order); "
                f"got {type(out).__name__} of length {len(out) if hasattr(out, '__len__') else '?'}."
            )
        return [s.strip() for s in out]

    @classmethod
    def _name_level(
        cls,
        child_names: list[str],
        child_emb: np.ndarray,
        labels: np.ndarray,
        config: KnowledgeTreeConfig,
        namer: Namer | None,
        embedder: Embedder | None,
        child_tokens: list[Counter] | None,
        child_sizes: list[int],
    ) -> _Level:
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
                return cls._call_namer(namer, groups(lab, kk))
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
            name_emb = _normalize_rows(embedder.encode(names))
            nearest = np.argmax(child_emb @ name_emb.T, axis=1)
            labels = _compact(nearest)
            kept = np.unique(nearest)
            names = [names[i] for i in kept]
            k = len(names)
            centroids = _group_means(child_emb, labels, k)
            if config.rename_after_reassign:
                names = cls._call_namer(namer, groups(labels, k)) if namer is not None else names
        tokens, sizes = aggregate(labels, k)
        return _Level(names=names, embeddings=centroids, parent_of_child=labels, requested_k=k, tokens=tokens, sizes=sizes)

    # ------------------------------------------------------------------ artifact
    def to_dict(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "parents": self.parents.tolist(),
            "embedding_model": self.embedding_model,
            "config": None if self.config is None else asdict(self.config),
            "level_stats": self.level_stats,
            "has_embeddings": self.embeddings is not None,
        }

    @classmethod
    def from_dict(cls, data: dict, tensors: dict[str, np.ndarray]) -> "KnowledgeTree":
        try:
            names, parents = data["names"], data["parents"]
        except KeyError as exc:
            raise DataError(f"A knowledge tree dict needs 'names' and 'parents'; {exc} is missing. Was it saved by KnowledgeTree?") from exc
        cfg = data.get("config")
        emb = tensors.get("embeddings") if tensors else None
        if data.get("has_embeddings") and emb is None:
            raise DataError("The saved tree had embeddings but none were loaded; the safetensors file is missing or incomplete.")
        return cls(
            names,
            parents,
            emb,
            embedding_model=data.get("embedding_model"),
            config=None if cfg is None else KnowledgeTreeConfig(**{k: v for k, v in cfg.items() if k in KnowledgeTreeConfig.__dataclass_fields__}),
            level_stats=data.get("level_stats"),
        )

    def tensors(self) -> dict[str, np.ndarray]:
        return {} if self.embeddings is None else {"embeddings": self.embeddings}

    def level_sizes(self) -> dict[int, int]:
        """Number of nodes at each depth (0 = root)."""
        d, c = np.unique(self.depths, return_counts=True)
        return {int(a): int(b) for a, b in zip(d, c)}

    def top_branches(self, n: int = 10, per_branch: int = 5) -> list[tuple[str, int, list[str]]]:
        """The root's largest children: `(name, leaves under it, names of its largest children)`."""
        counts = self.leaf_counts()
        kids = self.children(self.root)
        kids = kids[np.argsort(-counts[kids], kind="stable")][:n]
        out = []
        for c in kids.tolist():
            g = self.children(c)
            g = g[np.argsort(-counts[g], kind="stable")][:per_branch]
            out.append((self.names[c], int(counts[c]), [self.names[i] for i in g.tolist()]))
        return out

    def branch_purity(self, leaf_labels: dict[str, str], depth: int = 1) -> dict[str, float]:
        """How well the branches at `depth` match known categories of the leaves.

        Args:
            leaf_labels (`dict[str, str]`): concept → category for the leaves you know (others are ignored).
            depth (`int`, defaults to `1`): which branches (1 = the root's children).

        Returns:
            `dict` with `purity` (share of labelled leaves in their branch's majority category),
            `nmi` (normalized mutual information, arithmetic), `branches` and `leaves` counted.
        """
        from sklearn.metrics import normalized_mutual_info_score

        branch: list[int] = []
        cats: list[str] = []
        for concept, cat in leaf_labels.items():
            leaf = self.leaf_lookup.get(canonicalize_concept(concept))
            if leaf is None:
                continue
            path = self.path(leaf)  # leaf → root
            d = int(self.depths[leaf])
            branch.append(path[d - min(depth, d)])
            cats.append(cat)
        if not cats:
            raise DataError("None of the labelled concepts is a leaf of this tree; pass concept strings the tree was built from.")
        pairs = Counter(zip(branch, cats))
        best: dict[int, int] = {}
        for (b, _), c in pairs.items():
            best[b] = max(best.get(b, 0), c)
        return {
            "purity": sum(best.values()) / len(cats),
            "nmi": float(normalized_mutual_info_score(cats, branch)),
            "branches": float(len(best)),
            "leaves": float(len(cats)),
        }

    def card_body(self) -> str:
        sizes = self.level_sizes()
        lines = [
            "## Knowledge tree",
            "",
            f"A TAGS knowledge tree of **{self.n_leaves:,} concepts** (leaves) under **{self.n_nodes - self.n_leaves:,} topics**, "
            f"depth **{self.depth}** (edges from the root to the deepest leaf).",
            "",
            "| depth | nodes |",
            "|---|---|",
        ]
        lines += [f"| {d} | {c:,} |" for d, c in sorted(sizes.items())]
        if self.embedding_model:
            lines += ["", f"Embeddings: `{self.embedding_model}` (L2-normalized, in `embeddings` of the safetensors file)."]
        if self.config is not None:
            lines += ["", f"Built with ratio {self.config.ratio}, max root children {self.config.max_root_children}, "
                      f"seed {self.config.seed}, naming `{self.config.naming}`."]
        lines += ["", "### Top branches", "", "| branch | concepts | largest sub-branches |", "|---|---|---|"]
        for name, count, sub in self.top_branches():
            cell = ", ".join(s.replace("|", "\\|") for s in sub)
            lines.append(f"| {name.replace('|', chr(92) + '|')} | {count:,} | {cell} |")
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"KnowledgeTree(n_leaves={self.n_leaves}, n_nodes={self.n_nodes}, depth={self.depth})"

    # ------------------------------------------------------------------ pictures
    def _sunburst_arcs(self, max_depth: int) -> list[tuple[int, int, float, float]]:
        """(node, depth, start angle, end angle) for nodes down to `max_depth`, angles ∝ leaf counts."""
        counts = self.leaf_counts().astype(np.float64)
        arcs: list[tuple[int, int, float, float]] = []
        stack = [(self.root, 0.0, 2 * math.pi)]
        while stack:
            node, a0, a1 = stack.pop()
            d = int(self.depths[node])
            arcs.append((node, d, a0, a1))
            if d >= max_depth:
                continue
            kids = self.children(node)
            if len(kids) == 0:
                continue
            kids = kids[np.argsort(-counts[kids], kind="stable")]
            total = counts[kids].sum()
            a = a0
            for c in kids.tolist():
                span = (a1 - a0) * counts[c] / total
                stack.append((c, a, a + span))
                a += span
        return arcs

    def to_html(self, path: str | None = None, *, max_depth: int = 3, max_children: int = 30, title: str = "Knowledge tree") -> str:
        """A self-contained HTML page (no scripts, no network): an SVG sunburst plus an indented, collapsible tree.

        Args:
            path (`str`, *optional*): also write the page there.
            max_depth (`int`, defaults to `3`): sunburst rings below the root (big trees are unreadable deeper).
            max_children (`int`, defaults to `30`): children listed per node in the indented tree (largest first).
            title (`str`): page title.

        Returns:
            The HTML text.
        """
        counts = self.leaf_counts()
        depth_shown = max(1, min(max_depth, self.depth))
        ring = 360.0 / (2 * (depth_shown + 1))
        cx = cy = 380.0
        palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]
        top_color: dict[int, str] = {}
        for i, c in enumerate(self.children(self.root)[np.argsort(-counts[self.children(self.root)], kind="stable")].tolist()):
            top_color[c] = palette[i % len(palette)]
        svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="760" height="760" viewBox="0 0 760 760">']
        for node, d, a0, a1 in self._sunburst_arcs(depth_shown):
            if d == 0:
                svg.append(f'<circle cx="{cx}" cy="{cy}" r="{ring:.1f}" fill="#eee"><title>{html.escape(self.names[node])} ({counts[node]:,} concepts)</title></circle>')
                continue
            top = self.path(node)[-2]
            r0, r1 = ring * d, ring * (d + 1)
            if a1 - a0 >= 2 * math.pi - 1e-9:
                a1 = a0 + 2 * math.pi - 1e-6
            large = 1 if a1 - a0 > math.pi else 0
            p = [(cx + r * math.sin(a), cy - r * math.cos(a)) for r, a in ((r1, a0), (r1, a1), (r0, a1), (r0, a0))]
            dpath = (f"M{p[0][0]:.2f},{p[0][1]:.2f} A{r1:.1f},{r1:.1f} 0 {large} 1 {p[1][0]:.2f},{p[1][1]:.2f} "
                     f"L{p[2][0]:.2f},{p[2][1]:.2f} A{r0:.1f},{r0:.1f} 0 {large} 0 {p[3][0]:.2f},{p[3][1]:.2f} Z")
            opacity = max(0.35, 1.0 - 0.2 * (d - 1))
            label = " › ".join(reversed(self.path_names(node)[:-1]))
            svg.append(f'<path d="{dpath}" fill="{top_color.get(top, "#999")}" fill-opacity="{opacity:.2f}" stroke="#fff" stroke-width="0.6">'
                       f"<title>{html.escape(label)} ({counts[node]:,} concepts)</title></path>")
            if d == 1 and a1 - a0 > 0.25:
                am = (a0 + a1) / 2
                tx, ty = cx + (r0 + r1) / 2 * math.sin(am), cy - (r0 + r1) / 2 * math.cos(am)
                svg.append(f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="10" text-anchor="middle" pointer-events="none">'
                           f"{html.escape(self.names[node][:22])}</text>")
        svg.append("</svg>")

        def li(node: int, budget: list[int]) -> str:
            kids = self.children(node)
            label = f"{html.escape(self.names[node])} <small>({counts[node]:,})</small>"
            if len(kids) == 0 or budget[0] <= 0:
                return f"<li>{label}</li>"
            budget[0] -= 1
            kids = kids[np.argsort(-counts[kids], kind="stable")]
            inner = "".join(li(c, budget) for c in kids[:max_children].tolist())
            more = f"<li><i>… {len(kids) - max_children:,} more</i></li>" if len(kids) > max_children else ""
            open_attr = " open" if self.depths[node] < 1 else ""
            return f"<li><details{open_attr}><summary>{label}</summary><ul>{inner}{more}</ul></details></li>"

        sizes = ", ".join(f"depth {d}: {c:,}" for d, c in sorted(self.level_sizes().items()))
        body = li(self.root, [2000])  # expand at most 2000 inner nodes to keep the page light
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}ul{{list-style:none;padding-left:1.2em}}"
            "small{color:#777}summary{cursor:pointer}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{self.n_leaves:,} concepts, {self.n_nodes:,} nodes, depth {self.depth} ({sizes}). "
            "Hover a sector for its path; sector angles are proportional to the number of concepts.</p>"
            + "".join(svg)
            + f"<h2>Tree</h2><ul>{body}</ul></body></html>"
        )
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(page)
        return page

    def to_png(self, path: str, *, max_depth: int = 3, dpi: int = 120) -> None:
        """Draw the sunburst to a PNG with matplotlib (optional dependency).

        Raises:
            `DependencyError`: matplotlib is not installed (`to_html` needs nothing extra).
        """
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise DependencyError("matplotlib", "viz", "KnowledgeTree.to_png") from exc
        counts = self.leaf_counts()
        depth_shown = max(1, min(max_depth, self.depth))
        cmap = plt.get_cmap("tab10")
        kids = self.children(self.root)
        top_color = {c: cmap(i % 10) for i, c in enumerate(kids[np.argsort(-counts[kids], kind="stable")].tolist())}
        fig = plt.figure(figsize=(8, 8))
        ax = fig.add_subplot(projection="polar")
        ax.set_theta_zero_location("N")
        ax.set_theta_direction(-1)
        for node, d, a0, a1 in self._sunburst_arcs(depth_shown):
            if d == 0:
                ax.bar(0, 1, width=2 * math.pi, bottom=0, color="#eeeeee", edgecolor="white")
                continue
            color = top_color.get(self.path(node)[-2], (0.6, 0.6, 0.6, 1))
            ax.bar((a0 + a1) / 2, 1, width=a1 - a0, bottom=d, color=color, alpha=max(0.35, 1 - 0.2 * (d - 1)), edgecolor="white", linewidth=0.4)
            if d == 1 and a1 - a0 > 0.25:
                label = "\n".join(textwrap.wrap(self.names[node], 16)[:3])
                ax.text((a0 + a1) / 2, d + 0.5, label, ha="center", va="center", fontsize=7)
        ax.set_axis_off()
        ax.set_title(f"{self.n_leaves:,} concepts, depth {self.depth}")
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        plt.close(fig)
