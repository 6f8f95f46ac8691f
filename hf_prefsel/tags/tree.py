"""The TAGS knowledge tree: atomic concepts as leaves, clustered bottom-up into a single root.

The tree is built without an LLM by default (k-means on embeddings, parents named after a
representative child), so it works offline and fast at 100k concepts. An optional `namer`
callable is the hook for the Clio-style LLM steps (summarize, deduplicate, reassign, rename):
it gets the children names of every parent of a level and returns one name per parent.
How levels are clustered and named is in `tree_build`; pictures are drawn by `hf_prefsel.viz`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np
from scipy.sparse import csr_matrix

from .. import viz
from ..embed import BUNDLED_MODEL_ID, Embedder, embedder_for, faiss_threads_for, portable_model_name
from ..errors import ConfigError, DataError
from ..hub import Artifact
from .canonical import canonicalize_concept
from .tree_build import KnowledgeTreeConfig, Namer, build_levels, normalize_rows

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
            leaf = normalize_rows(np.asarray(embeddings, dtype=np.float32))
            emb = np.vstack([leaf, normalize_rows(leaf.mean(axis=0, keepdims=True))])
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
            leaf_emb = normalize_rows(embeddings[[first[c] for c in leaf_names]])
            model_name = None
        else:
            embedder = embedder or Embedder()
            leaf_emb = normalize_rows(embedder.encode(leaf_names, show_progress=show_progress))
            model_name = portable_model_name(embedder.model_name_or_path)
        if config.reassign and namer is None:
            raise ConfigError("reassign=True needs a `namer` (names are what children are reassigned to).")
        if config.reassign and embedder is None:
            raise ConfigError("reassign=True embeds parent names: pass an `embedder` (not only precomputed embeddings).")
        names, parents, embeddings, stats = build_levels(leaf_names, leaf_emb, config, namer, embedder)
        return cls(names, parents, embeddings, embedding_model=model_name, config=config, level_stats=stats)

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
        return viz.knowledge_tree_html(self, path, max_depth=max_depth, max_children=max_children, title=title)

    def to_png(self, path: str, *, max_depth: int = 3, dpi: int = 120) -> None:
        """Draw the sunburst to a PNG with matplotlib (optional dependency).

        Raises:
            `DependencyError`: matplotlib is not installed (`to_html` needs nothing extra).
        """
        viz.knowledge_tree_png(self, path, max_depth=max_depth, dpi=dpi)


__all__ = [
    "BUNDLED_MODEL_ID",
    "KnowledgeTree",
    "KnowledgeTreeConfig",
    "Namer",
    "canonicalize_concept",
    "embedder_for",
    "faiss_threads_for",
    "portable_model_name",
]
