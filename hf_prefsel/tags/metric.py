"""The tree-aware information of a data set: quality-weighted concept mass, propagated up the tree.

For a selection S, node mass `m_S(n) = Σ_{x∈S} q(x)·|{ℓ ∈ Λ(x) : n ∈ anc(ℓ)}| / |Λ(x)|`
(a row spreads its quality evenly over its leaves, and each leaf passes it to all its
ancestors), and `I(S) = Σ_n w(n)·φ(m_S(n))` with `φ(t) = (t + a)^b`.

Which parts come from where (TAGS, arXiv 2601.13995, does not publish its formula):

* φ, a = 1e-6, b = 0.8 and the per-tag split of quality: MIG (Chen et al., ACL Findings 2025),
  whose `I(S) = Σ_labels φ(Σ_x u(x))` this is, with the tree replacing MIG's label graph.
* Propagation to *ancestors* (so that spreading mass across branches pays at every level),
  depth weights, the root's weight of 0 and the default uniform weights: ours.
* Quality is whatever the user has (a judge score, a reward, a column); 1.0 if none: ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy.sparse import csr_matrix, diags

from ..errors import ConfigError, DataError, MissingColumnError
from .tree import KnowledgeTree

LeafLists = Sequence[Sequence[int]]
Quality = str | Callable[[dict[str, list]], Sequence[float]] | Sequence[float] | np.ndarray | None


@dataclass
class TreeInformationConfig:
    """The knobs of `I(S) = Σ_n w(n)·φ(m_S(n))`.

    Args:
        a (`float`, defaults to `1e-6`): φ offset (MIG's default); keeps φ'(0) finite.
        b (`float`, defaults to `0.8`): φ exponent in (0, 1] (MIG's default). Smaller = stronger
            diminishing returns = more weight on diversity relative to quality; 1 = no diversity.
        depth_decay (`float`, defaults to `1.0`):
            [ours] `w(n) = depth_decay ** (depth(tree) - depth(n))`: 1.0 weights every level the
            same (the paper gives no depth weighting); < 1 favours fine-grained (leaf) coverage,
            > 1 favours covering the broad branches.
        depth_weights (`list[float]`, *optional*):
            [ours] Explicit weight per depth (index 0 = root); deeper nodes reuse the last
            value. Overrides `depth_decay`.
        root_weight (`float`, defaults to `0.0`):
            [ours] Every row reaches the root, so its mass is total quality and carries no
            diversity; 0 also makes a flat tree (labels under a root) exactly MIG's objective.
        split_by_tags (`bool`, defaults to `True`): divide a row's quality by its number of
            leaves (MIG's `--norm`), so rows with many tags do not count many times.
    """

    a: float = 1e-6
    b: float = 0.8
    depth_decay: float = 1.0
    depth_weights: list[float] | None = None
    root_weight: float = 0.0
    split_by_tags: bool = True

    def __post_init__(self) -> None:
        if not self.a > 0:
            raise ConfigError(f"a must be > 0 (φ(t)=(t+a)^b needs a finite slope at 0), got {self.a}.")
        if not 0 < self.b <= 1:
            raise ConfigError(f"b must be in (0, 1] for φ to be concave, got {self.b}.")
        if self.depth_decay <= 0:
            raise ConfigError(f"depth_decay must be > 0, got {self.depth_decay}.")
        if self.depth_weights is not None and (not self.depth_weights or any(w < 0 for w in self.depth_weights)):
            raise ConfigError("depth_weights must be a non-empty list of non-negative weights, one per depth from the root.")
        if self.root_weight < 0:
            raise ConfigError("root_weight must be >= 0.")


def phi(t: np.ndarray | float, a: float = 1e-6, b: float = 0.8) -> np.ndarray:
    """MIG's concave saturation `φ(t) = (t + a)^b`."""
    return np.power(np.asarray(t, dtype=np.float64) + a, b)


def node_weights(tree: KnowledgeTree, config: TreeInformationConfig | None = None) -> np.ndarray:
    """`w(n)` for every node (see `TreeInformationConfig`)."""
    config = config or TreeInformationConfig()
    depths = tree.depths
    if config.depth_weights is not None:
        table = np.asarray(config.depth_weights, dtype=np.float64)
        w = table[np.minimum(depths, len(table) - 1)]
    else:
        w = np.power(float(config.depth_decay), (tree.depth - depths).astype(np.float64))
    w = w.astype(np.float64, copy=True)
    w[tree.root] = config.root_weight
    return w


def leaf_matrix(leaf_lists: LeafLists | csr_matrix, tree: KnowledgeTree) -> csr_matrix:
    """Rows × nodes 0/1 sparse matrix of each row's leaves (node ids, as in the `concept_leaves` column)."""
    if isinstance(leaf_lists, csr_matrix):
        if leaf_lists.shape[1] != tree.n_nodes:
            raise DataError(f"The leaf matrix has {leaf_lists.shape[1]} columns for a tree of {tree.n_nodes} nodes.")
        return leaf_lists
    lengths = np.fromiter((0 if r is None else len(r) for r in leaf_lists), dtype=np.int64, count=len(leaf_lists))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    flat = [j for r in leaf_lists if r for j in r]
    cols = np.asarray(flat, dtype=np.int64)
    if len(cols) and (cols.min() < 0 or cols.max() >= tree.n_nodes):
        raise DataError("A leaf id is out of range for this tree; ground the rows on the same tree you sample with.")
    is_leaf = np.zeros(tree.n_nodes, dtype=bool)
    is_leaf[tree.leaves] = True
    if len(cols) and not is_leaf[cols].all():
        raise DataError("A `concept_leaves` id is not a leaf of this tree; ground the rows on the same tree you sample with.")
    m = csr_matrix((np.ones(len(cols), dtype=np.float64), cols, indptr), shape=(len(lengths), tree.n_nodes))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def resolve_quality(dataset: Any, quality: Quality, n: int | None = None) -> np.ndarray:
    """Quality `q(x)` per row from a column name, a batch callable, a sequence, or `None` (all 1.0).

    A callable gets batches (dict of columns, as in `Dataset.map(batched=True)`) and returns one
    score per row: plug an LLM judge or a reward model here. Scores must be finite and >= 0
    (masses feed φ(t)=(t+a)^b); map rewards through e.g. a sigmoid first.
    """
    if n is None:
        n = len(dataset) if dataset is not None else None
    if quality is None:
        if n is None:
            raise ConfigError("resolve_quality needs the number of rows when quality is None.")
        return np.ones(n, dtype=np.float64)
    if isinstance(quality, str):
        if dataset is None or quality not in dataset.column_names:
            raise MissingColumnError(quality, [] if dataset is None else dataset.column_names, option="quality")
        q = np.asarray(dataset[quality], dtype=np.float64)
    elif callable(quality):
        if dataset is None:
            raise ConfigError("A quality callable needs the dataset to score.")
        scores: list[float] = []
        for start in range(0, len(dataset), 1000):
            batch = dataset[start : start + 1000]
            out = list(quality(batch))
            if len(out) != len(next(iter(batch.values()))):
                raise DataError("The quality callable must return one score per row of the batch.")
            scores.extend(float(s) for s in out)
        q = np.asarray(scores, dtype=np.float64)
    else:
        q = np.asarray(quality, dtype=np.float64).reshape(-1)
    if n is not None and len(q) != n:
        raise DataError(f"Got {len(q)} quality scores for {n} rows; give one per row.")
    if not np.all(np.isfinite(q)):
        raise DataError("Quality scores contain NaN or inf; fill them (e.g. with 0 for failed scoring) before sampling.")
    if np.any(q < 0):
        raise DataError("Quality scores must be >= 0 for the tree metric; rescale them (e.g. a sigmoid of a reward, or min-max).")
    return q


def contribution_matrix(
    tree: KnowledgeTree,
    leaf_lists: LeafLists | csr_matrix,
    quality: Sequence[float] | np.ndarray | None = None,
    config: TreeInformationConfig | None = None,
) -> csr_matrix:
    """Rows × nodes sparse matrix `U`: row x holds its quality mass on every node (its leaves and their ancestors).

    `m_S = U[S].sum(0)`. Memory is O(rows · tags · depth), never rows × nodes.
    """
    config = config or TreeInformationConfig()
    lam = leaf_matrix(leaf_lists, tree)
    n = lam.shape[0]
    q = np.ones(n) if quality is None else np.asarray(quality, dtype=np.float64).reshape(-1)
    if len(q) != n:
        raise DataError(f"Got {len(q)} quality scores for {n} rows.")
    counts = np.diff(lam.indptr).astype(np.float64)
    scale = q / np.maximum(counts, 1.0) if config.split_by_tags else q
    u = diags(scale) @ lam @ tree.ancestor_matrix()
    return csr_matrix(u)


def node_mass(
    tree: KnowledgeTree,
    leaf_lists: LeafLists | csr_matrix,
    quality: Sequence[float] | np.ndarray | None = None,
    subset: Sequence[int] | np.ndarray | None = None,
    config: TreeInformationConfig | None = None,
) -> np.ndarray:
    """`m_S(n)` for every node (S = `subset`, default all rows)."""
    u = contribution_matrix(tree, leaf_lists, quality, config)
    if subset is not None:
        u = u[np.asarray(subset, dtype=np.int64)]
    return np.asarray(u.sum(axis=0)).reshape(-1)


def tree_information(
    tree: KnowledgeTree,
    leaf_lists: LeafLists | csr_matrix,
    quality: Sequence[float] | np.ndarray | None = None,
    subset: Sequence[int] | np.ndarray | None = None,
    config: TreeInformationConfig | None = None,
) -> float:
    """`I(S) = Σ_n w(n)·φ(m_S(n))` (the constant `Σ_n w(n)·φ(0)` of an empty set included, as in MIG).

    Example:
        >>> tree_information(tree, ds["concept_leaves"], ds["quality"], subset=[0, 5, 9])
    """
    config = config or TreeInformationConfig()
    m = node_mass(tree, leaf_lists, quality, subset, config)
    return float(np.dot(node_weights(tree, config), phi(m, config.a, config.b)))


def leaf_distribution(tree: KnowledgeTree, leaf_lists: LeafLists | csr_matrix, subset: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Unnormalized leaf counts (aligned with `tree.leaves`): each row adds 1/|Λ(x)| to each of its leaves.

    Quality-free on purpose [ours]: alignment is about *what* the data covers; quality is the
    information term's business.
    """
    lam = leaf_matrix(leaf_lists, tree)
    if subset is not None:
        lam = lam[np.asarray(subset, dtype=np.int64)]
    counts = np.diff(lam.indptr).astype(np.float64)
    per_row = diags(1.0 / np.maximum(counts, 1.0)) @ lam
    return np.asarray(per_row.sum(axis=0)).reshape(-1)[tree.leaves]


def kl_divergence(target_counts: np.ndarray, selection_counts: np.ndarray, smoothing: float = 0.01) -> float:
    """`KL(p_T ‖ p_S)` with `p_S(ℓ) = (c_S(ℓ) + ε) / (Σ c_S + ε·L)` and `p_T` unsmoothed.

    Smoothing only the selection keeps the divergence finite when a target leaf is not
    covered; ε is a pseudo-count in rows. Swap the arguments for the reverse direction
    (then the target is the smoothed side).
    """
    t = np.asarray(target_counts, dtype=np.float64)
    s = np.asarray(selection_counts, dtype=np.float64)
    if t.shape != s.shape:
        raise DataError("target and selection counts must be over the same leaves.")
    if t.sum() <= 0:
        raise DataError("The target has no grounded leaf; ground the target set on this tree first.")
    p = t / t.sum()
    qd = (s + smoothing) / (s.sum() + smoothing * len(s))
    nz = p > 0
    return float(np.sum(p[nz] * (np.log(p[nz]) - np.log(qd[nz]))))


class TreeInformationMeasurement:
    """An `evaluate`-style measurement of any subset: `add_batch(...)` then `compute()`, or `compute(...)` at once.

    `evaluate.load("<hub id>")` cannot fetch modules offline, and an `evaluate` module cannot
    take a tree object through `load`; so this mirrors the `evaluate.EvaluationModule` calling
    convention (keyword inputs, a dict of floats out) without depending on `evaluate`.

    Args:
        tree (`KnowledgeTree`): the tree the rows are grounded on.
        config (`TreeInformationConfig`, *optional*).
        target_leaves (`list[list[int]]`, *optional*): a grounded target set; adds `kl_to_target`.
        kl_smoothing (`float`, defaults to `0.01`): ε of `kl_divergence`.

    Example:
        >>> m = TreeInformationMeasurement(tree)
        >>> m.compute(concept_leaves=ds["concept_leaves"], quality=ds["quality"])
        {'information': 812.3, 'information_per_row': 0.81, 'leaf_coverage': 0.42, ...}
    """

    def __init__(
        self,
        tree: KnowledgeTree,
        config: TreeInformationConfig | None = None,
        target_leaves: LeafLists | None = None,
        kl_smoothing: float = 0.01,
    ):
        self.tree = tree
        self.config = config or TreeInformationConfig()
        self.kl_smoothing = kl_smoothing
        self._target = None if target_leaves is None else leaf_distribution(tree, target_leaves)
        self._leaves: list[list[int]] = []
        self._quality: list[float] = []

    def add_batch(self, *, concept_leaves: LeafLists, quality: Sequence[float] | None = None) -> None:
        """Accumulate rows (as `evaluate`'s `add_batch`)."""
        self._leaves.extend(list(r) for r in concept_leaves)
        self._quality.extend([1.0] * len(concept_leaves) if quality is None else [float(v) for v in quality])

    def compute(
        self,
        *,
        concept_leaves: LeafLists | None = None,
        quality: Sequence[float] | None = None,
        subset: Sequence[int] | None = None,
    ) -> dict[str, float]:
        """Score the rows given (or accumulated): information, coverage, entropy and KL to the target.

        Returns:
            `dict` with `information` (I(S)), `information_per_row`, `rows`, `mean_quality`,
            `leaf_coverage` and `node_coverage` (fraction of leaves / non-root nodes with mass),
            `leaf_entropy` (normalized Shannon entropy of the leaf distribution, 1 = uniform over
            all leaves), and `kl_to_target` when a target was given.
        """
        if concept_leaves is None:
            concept_leaves, quality = self._leaves, self._quality
            self._leaves, self._quality = [], []
        q = resolve_quality(None, None if quality is None else list(quality), len(concept_leaves))
        idx = None if subset is None else np.asarray(subset, dtype=np.int64)
        u = contribution_matrix(self.tree, concept_leaves, q, self.config)
        if idx is not None:
            u = u[idx]
        mass = np.asarray(u.sum(axis=0)).reshape(-1)
        info = float(np.dot(node_weights(self.tree, self.config), phi(mass, self.config.a, self.config.b)))
        rows = u.shape[0]
        counts = leaf_distribution(self.tree, concept_leaves, idx)
        nonroot = np.ones(self.tree.n_nodes, dtype=bool)
        nonroot[self.tree.root] = False
        p = counts / counts.sum() if counts.sum() > 0 else counts
        nz = p > 0
        entropy = float(-(p[nz] * np.log(p[nz])).sum() / np.log(len(p))) if len(p) > 1 else 0.0
        out = {
            "information": info,
            "information_per_row": info / rows if rows else 0.0,
            "rows": float(rows),
            "mean_quality": float(q[idx].mean() if idx is not None and len(idx) else (q.mean() if len(q) else 0.0)),
            "leaf_coverage": float(np.mean(counts > 0)),
            "node_coverage": float(np.mean(mass[nonroot] > 0)) if nonroot.any() else 0.0,
            "leaf_entropy": entropy,
        }
        if self._target is not None:
            out["kl_to_target"] = kl_divergence(self._target, counts, self.kl_smoothing)
        return out
