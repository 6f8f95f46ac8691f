"""Samplers that maximize the tree information `I(S)` to a budget, globally or aligned to a target.

Both are greedy on a monotone submodular objective (sums of concave functions of additive
masses), run *lazily* by `greedy.py`: the pick is exactly the one plain greedy would make, at a
small fraction of the cost. This module turns the tree, the rows' leaves and a target into that
objective's terms, and reports what the selection achieved.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
from scipy.sparse import csr_matrix, diags

from ..errors import ConfigError, DataError
from .greedy import Term, greedy
from .metric import (
    LeafLists,
    Quality,
    TreeInformationConfig,
    contribution_matrix,
    kl_divergence,
    leaf_distribution,
    leaf_matrix,
    node_weights,
    phi,
    resolve_quality,
)
from .tree import KnowledgeTree


@dataclass
class GlobalSamplerConfig:
    """Settings of `sample_global` (greedy maximization of `I(S)`).

    Args:
        budget (`int`, *optional*): rows to select. Give this or `ratio`. (A float in (0, 1) is the older
            spelling of `ratio` and warns.)
        information (`TreeInformationConfig`): the objective's φ, depth weights, etc.
        gain (`"marginal"` or `"first_order"`, defaults to `"marginal"`):
            `"marginal"` picks the row with the largest exact gain `I(S+x) − I(S)` (plain greedy,
            with its (1−1/e) guarantee). `"first_order"` picks the largest `u(x)·∇I(S)`, MIG's
            rule; it is an upper bound of the exact gain, loosest for rows whose mass is large
            against the node's current mass.
        batch_size (`int`, defaults to `1`):
            1 = exact (lazy) greedy. >1 = MIG-style rounds: score every remaining row, take
            the best `batch_size`, update, repeat. Faster on huge budgets, but picks within a
            round ignore each other.
        stop_at_zero_gain (`bool`, defaults to `True`): stop before the budget when no remaining
            row adds anything (rows without grounded leaves, or quality 0); reported in the result.
        show_progress (`bool`, defaults to `False`): tqdm bar over picks.
        ratio (`float`, *optional*): share of the pool to select, in (0, 1] (TAGS reports 5%: `ratio=0.05`).
            Used when `budget` is not given; 0.05 when neither is.
    """

    budget: int | float | None = None
    information: TreeInformationConfig = field(default_factory=TreeInformationConfig)
    gain: Literal["marginal", "first_order"] = "marginal"
    batch_size: int = 1
    stop_at_zero_gain: bool = True
    show_progress: bool = False
    ratio: float | None = None

    def __post_init__(self) -> None:
        from ..result import check_size

        if isinstance(self.budget, float) and 0 < self.budget < 1 and self.ratio is None:
            warnings.warn("A fractional budget is deprecated: pass ratio=0.05 for a share of the pool, budget for rows.",
                          FutureWarning, stacklevel=3)
            self.budget, self.ratio = None, self.budget
        if isinstance(self.budget, float) and self.budget.is_integer():
            self.budget = int(self.budget)
        if self.budget is None and self.ratio is None:
            self.ratio = 0.05
        check_size(self.budget, self.ratio, owner=type(self).__name__)
        if isinstance(self.information, dict):
            self.information = TreeInformationConfig(**self.information)
        if self.gain not in ("marginal", "first_order"):
            raise ConfigError(f"gain must be 'marginal' or 'first_order', got {self.gain!r}.")
        if self.batch_size < 1:
            raise ConfigError("batch_size must be >= 1 (1 = exact lazy greedy).")

    def resolve_budget(self, n: int) -> int:
        """Rows to pick from a pool of `n` (`hf_prefsel.result.rows_to_keep`: the same rule in every method)."""
        from ..result import rows_to_keep

        return rows_to_keep(n, budget=self.budget, ratio=self.ratio)


@dataclass
class AlignedSamplerConfig(GlobalSamplerConfig):
    """Settings of `sample_aligned`: `GlobalSamplerConfig` plus how to follow the target's leaf distribution.

    Args:
        alignment (`"kl"` or `"quota"`, defaults to `"kl"`):
            [ours] `"kl"` maximizes `I(S) − μ·|B|·KL(p_T ‖ p_S)` greedily. `"quota"` splits the
            budget over the tree nodes at `quota_depth` in proportion to the target's mass,
            runs information-gain greedy inside each quota, and fills what the pool cannot
            supply with unconstrained greedy.
        mu (`float`, defaults to `1.0`):
            [ours] Weight of the KL term. The penalty is scaled by the budget |B| because I(S)
            grows with |S| while KL does not; so μ is "per selected row" and comparable to a
            row's information gain (~1 for unit quality). 0 = the global sampler.
        kl_smoothing (`float`, defaults to `0.01`): ε pseudo-count per leaf in `p_S` (see `kl_divergence`).
        quota_depth (`int`, *optional*): depth of the quota groups (1 = the root's children);
            `None` = the leaves.

    Why KL(p_T ‖ p_S) [ours]: with the selection's total mass fixed by the budget, this
    direction equals a constant minus `Σ_ℓ p_T(ℓ)·log(c_S(ℓ) + ε)`, a concave function of the
    selection's leaf counts, so the aligned objective stays submodular and lazy greedy stays
    exact. It also punishes *missing* target leaves most, which is what alignment is for. The
    result reports both directions.
    """

    alignment: Literal["kl", "quota"] = "kl"
    mu: float = 1.0
    kl_smoothing: float = 0.01
    quota_depth: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alignment not in ("kl", "quota"):
            raise ConfigError(f"alignment must be 'kl' or 'quota', got {self.alignment!r}.")
        if self.mu < 0:
            raise ConfigError("mu must be >= 0.")
        if self.kl_smoothing <= 0:
            raise ConfigError("kl_smoothing must be > 0 (it keeps the KL finite).")
        if self.alignment == "quota" and self.batch_size > 1:
            raise ConfigError("Quota alignment needs batch_size=1 (batch rounds cannot respect per-group quotas).")
        if self.quota_depth is not None and self.quota_depth < 1:
            raise ConfigError("quota_depth must be >= 1 (1 = the root's children) or None for leaves.")


@dataclass
class SelectionResult:
    """What a sampler picked and what it achieved.

    Attributes:
        indices (`np.ndarray`): selected row indices in pick order.
        gains (`np.ndarray`): objective gain of each pick when it was made (non-increasing for
            exact greedy: the check that returns diminish).
        information (`float`): `I(S)` of the selection.
        kl_to_target / kl_from_target (`float`, *optional*): `KL(p_T ‖ p_S)` and `KL(p_S ‖ p_T)`
            when a target was given (ε-smoothed as in `kl_divergence`).
        evaluations (`int`): rows re-scored one at a time (lazy greedy's work).
        seconds (`float`): wall time of the selection (matrix building included).
        stopped_early (`bool`): fewer than the budget were picked because no row added anything.
    """

    indices: np.ndarray
    gains: np.ndarray
    information: float
    kl_to_target: float | None = None
    kl_from_target: float | None = None
    evaluations: int = 0
    seconds: float = 0.0
    stopped_early: bool = False

    def select(self, dataset: Any) -> Any:
        """`dataset.select(indices)` in pick order."""
        return dataset.select(self.indices.tolist())

    def summary(self) -> dict[str, float]:
        out = {"selected": float(len(self.indices)), "information": self.information, "seconds": self.seconds}
        if self.kl_to_target is not None:
            out["kl_to_target"] = self.kl_to_target
            out["kl_from_target"] = float(self.kl_from_target or 0.0)
        return out


def _information_term(tree: KnowledgeTree, leaves: LeafLists | csr_matrix, quality: np.ndarray | None, cfg: TreeInformationConfig) -> Term:
    u = contribution_matrix(tree, leaves, quality, cfg)
    return Term(u, node_weights(tree, cfg), "pow", cfg.a, cfg.b)


def _final_information(tree: KnowledgeTree, term: Term, cfg: TreeInformationConfig) -> float:
    """I(S) from the sampler's own running masses (zero-weight nodes add w·φ = 0)."""
    return float(np.dot(term.w, phi(term.x, cfg.a, cfg.b)))


def sample_global(
    tree: KnowledgeTree,
    concept_leaves: LeafLists | csr_matrix,
    quality: Sequence[float] | np.ndarray | None = None,
    config: GlobalSamplerConfig | None = None,
) -> SelectionResult:
    """Select rows that maximize the tree information `I(S)` (quality and diversity at every level) up to the budget.

    Args:
        tree (`KnowledgeTree`): the tree the rows are grounded on.
        concept_leaves (`list[list[int]]` or `csr_matrix`): each row's leaf node ids (the
            `concept_leaves` column of `TreeGrounder`).
        quality (`Sequence[float]`, *optional*): `q(x) >= 0` per row; 1.0 if not given.
        config (`GlobalSamplerConfig`, *optional*).

    Returns:
        `SelectionResult`

    Example:
        >>> res = sample_global(tree, ds["concept_leaves"], ds["quality"], GlobalSamplerConfig(budget=0.05))
        >>> curated = res.select(ds)
    """
    config = config or GlobalSamplerConfig()
    t0 = time.perf_counter()
    lam = leaf_matrix(concept_leaves, tree)
    n = lam.shape[0]
    q = None if quality is None else resolve_quality(None, quality, n)
    budget = config.resolve_budget(n)
    term = _information_term(tree, lam, q, config.information)
    picks, gains, evals, early = greedy([term], n, budget, config)
    idx = np.asarray(picks, dtype=np.int64)
    # I(S) including the constant of zero-weight-free nodes, as `tree_information` computes it.
    info = _final_information(tree, term, config.information)
    return SelectionResult(idx, np.asarray(gains), info, evaluations=evals, seconds=time.perf_counter() - t0, stopped_early=early)


def _quota_groups(tree: KnowledgeTree, lam: csr_matrix, target: np.ndarray, depth: int | None, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Group of every row (-1: none) and the quota of every group, from the target's leaf distribution."""
    leaf_pos = np.full(tree.n_nodes, -1, dtype=np.int64)
    leaf_pos[tree.leaves] = np.arange(tree.n_leaves)
    if depth is None:
        group_nodes = tree.leaves
    else:
        group_nodes = np.flatnonzero((tree.depths == depth) | ((tree.depths < depth) & (leaf_pos >= 0)))
    gid = np.full(tree.n_nodes, -1, dtype=np.int64)
    gid[group_nodes] = np.arange(len(group_nodes))
    # target mass per group
    anc = tree.ancestor_matrix()[tree.leaves][:, group_nodes]  # leaves × groups
    p_group = np.asarray(anc.T @ (target / target.sum())).reshape(-1)
    # each row's share per group, + a tiny tie-break towards groups the target needs more
    counts = np.diff(lam.indptr).astype(np.float64)
    share = diags(1.0 / np.maximum(counts, 1.0)) @ lam @ tree.ancestor_matrix()[:, group_nodes]
    share = share.tocoo()
    score = share.data + 1e-9 * p_group[share.col]
    order = np.lexsort((-score, share.row))
    first = np.ones(len(order), dtype=bool)
    first[1:] = share.row[order][1:] != share.row[order][:-1]
    group = np.full(lam.shape[0], -1, dtype=np.int64)
    group[share.row[order][first]] = share.col[order][first]
    from ..result import largest_remainder

    return group, largest_remainder(p_group, budget)


def sample_aligned(
    tree: KnowledgeTree,
    concept_leaves: LeafLists | csr_matrix,
    target_leaves: LeafLists | csr_matrix,
    quality: Sequence[float] | np.ndarray | None = None,
    config: AlignedSamplerConfig | None = None,
) -> SelectionResult:
    """Select rows maximizing `I(S)` while keeping the leaf distribution close to a target set's.

    Args:
        tree (`KnowledgeTree`): the tree both sets are grounded on.
        concept_leaves (`list[list[int]]` or `csr_matrix`): the pool's leaf node ids per row.
        target_leaves (`list[list[int]]` or `csr_matrix`): the target set's (e.g. a sample of
            the domain you fine-tune for), grounded on the same tree.
        quality (`Sequence[float]`, *optional*): `q(x) >= 0` per pool row.
        config (`AlignedSamplerConfig`, *optional*).

    Returns:
        `SelectionResult` with `kl_to_target` (the achieved `KL(p_T ‖ p_S)`) and `kl_from_target`.
    """
    config = config or AlignedSamplerConfig()
    t0 = time.perf_counter()
    lam = leaf_matrix(concept_leaves, tree)
    n = lam.shape[0]
    q = None if quality is None else resolve_quality(None, quality, n)
    budget = config.resolve_budget(n)
    target = leaf_distribution(tree, target_leaves)
    if target.sum() <= 0:
        raise DataError("No target row has a grounded leaf; ground the target set on this tree (TreeGrounder) before aligning.")
    info_term = _information_term(tree, lam, q, config.information)
    terms = [info_term]
    group = quota = None
    if config.alignment == "kl" and config.mu > 0:
        counts = np.diff(lam.indptr).astype(np.float64)
        per_leaf = (diags(1.0 / np.maximum(counts, 1.0)) @ lam)[:, tree.leaves]  # rows × leaves, tag-split unit mass
        w = config.mu * budget * target / target.sum()
        terms.append(Term(csr_matrix(per_leaf), w, "log", config.kl_smoothing, 1.0))
    elif config.alignment == "quota":
        group, quota = _quota_groups(tree, lam, target, config.quota_depth, budget)
    picks, gains, evals, early = greedy(terms, n, budget, config, group, quota)
    idx = np.asarray(picks, dtype=np.int64)
    sel = leaf_distribution(tree, lam, idx)
    return SelectionResult(
        idx,
        np.asarray(gains),
        _final_information(tree, info_term, config.information),
        kl_to_target=kl_divergence(target, sel, config.kl_smoothing),
        kl_from_target=_reverse_kl(target, sel, config.kl_smoothing),
        evaluations=evals,
        seconds=time.perf_counter() - t0,
        stopped_early=early,
    )


def _reverse_kl(target: np.ndarray, selection: np.ndarray, smoothing: float) -> float:
    """`KL(p_S ‖ p_T)` with the *target* smoothed (it is the denominator now)."""
    if selection.sum() <= 0:
        return float("nan")
    return kl_divergence(selection, target, smoothing)


def select_from_dataset(
    dataset: Any,
    tree: KnowledgeTree,
    config: GlobalSamplerConfig | AlignedSamplerConfig | None = None,
    *,
    quality: Quality = None,
    target: Any = None,
    leaves_column: str = "concept_leaves",
) -> tuple[Any, SelectionResult]:
    """Run the global sampler (or the aligned one when `target` is given) on grounded datasets.

    Args:
        dataset (`datasets.Dataset`): grounded pool (has `leaves_column`).
        tree (`KnowledgeTree`)
        config: `GlobalSamplerConfig` or `AlignedSamplerConfig` (the latter when `target` is set).
        quality: a column name, a batch callable, scores, or `None` (see `resolve_quality`).
        target (`datasets.Dataset`, *optional*): grounded target set.
        leaves_column (`str`, defaults to `"concept_leaves"`).

    Returns:
        `(selected dataset in pick order, SelectionResult)`
    """
    from ..errors import MissingColumnError

    for ds in (dataset, target):
        if ds is not None and leaves_column not in ds.column_names:
            raise MissingColumnError(leaves_column, ds.column_names, option="leaves_column")
    q = resolve_quality(dataset, quality, len(dataset))
    if target is None:
        res = sample_global(tree, dataset[leaves_column], q, config)
    else:
        if config is not None and not isinstance(config, AlignedSamplerConfig):
            config = AlignedSamplerConfig(**{k: getattr(config, k) for k in GlobalSamplerConfig.__dataclass_fields__})
        res = sample_aligned(tree, dataset[leaves_column], target[leaves_column], q, config)
    return res.select(dataset), res
