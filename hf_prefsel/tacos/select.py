"""TACOS selection: per-cluster quotas (released code) or global top-k (paper figure), with spill-over.

The released code visits clusters from the smallest to the largest and takes the best-scored members not taken
yet, up to 20 per cluster (= 1,000 / 50). Small clusters go first so rare intentions get their share before big
clusters exhaust the budget. When a cluster has fewer scored members than its quota, the released code simply ends
up short; we spill the unused budget to the best remaining samples overall (switchable).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np

from ..errors import ConfigError, DataError, MissingColumnError
from .cluster import column_values

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset


@dataclass
class SelectionConfig:
    """Settings of [`select_dataset`] / [`select_indices`].

    Args:
        budget (`int`):
            Maximum number of rows to select (TACOS: 1,000).
        strategy (`"quota"` or `"global"`, defaults to `"quota"`):
            `"quota"`: per-cluster quota, clusters visited smallest first (released code). `"global"`: the
            `budget` best scores overall (the paper's overview figure), ignoring clusters.
        quota (`int`, *optional*):
            Rows per cluster for `"quota"`. Defaults to `budget // K`, K = number of clusters with a scored member
            (the code's 20 = 1,000 / 50), and at least 1: with a budget below K, the smallest clusters get one row
            each, in keeping with the smallest-first order.
        spill (`bool`, defaults to `True`):
            After the quota pass, fill the rest of the budget with the best remaining rows overall. `False`
            reproduces the released code, which may select fewer than `budget` rows.
        score_column (`str`, defaults to `"score"`):
            Float column of scores; `None`/NaN means unscored, and unscored rows are never selected.
        cluster_column (`str`, defaults to `"cluster_ids"`):
            Column of each row's cluster ids (overlapping membership).
        reason_column (`str`, *optional*):
            If set, [`select_dataset`] adds this column saying why each row was selected (`"quota:<cluster>"`,
            `"spill"` or `"global"`).
    """

    budget: int
    strategy: Literal["quota", "global"] = "quota"
    quota: int | None = None
    spill: bool = True
    score_column: str = "score"
    cluster_column: str = "cluster_ids"
    reason_column: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.budget, int) or isinstance(self.budget, bool) or self.budget < 0:
            raise ConfigError(f"SelectionConfig.budget must be an integer >= 0, got {self.budget!r}.")
        if self.strategy not in ("quota", "global"):
            raise ConfigError(f"SelectionConfig.strategy must be 'quota' or 'global', got {self.strategy!r}.")
        if self.quota is not None and (not isinstance(self.quota, int) or self.quota < 0):
            raise ConfigError(f"SelectionConfig.quota must be an integer >= 0 or None, got {self.quota!r}.")


@dataclass
class SelectionPlan:
    """What the selection did, for reports and dataset cards.

    Attributes:
        indices (`list[int]`): selected row indices, in the order they were picked.
        reasons (`list[str]`): why each was picked (`"quota:<cluster id>"`, `"spill"`, `"global"`).
        quota (`int` or `None`): per-cluster quota used (`None` for `"global"`).
        n_clusters (`int`): non-empty clusters with at least one scored member.
        n_scored (`int`): rows with a score.
        cluster_order (`list[int]`): clusters in visiting order (smallest first).
    """

    indices: list[int]
    reasons: list[str]
    quota: int | None
    n_clusters: int
    n_scored: int
    cluster_order: list[int] = field(default_factory=list)

    @property
    def n_quota(self) -> int:
        return sum(r.startswith("quota") for r in self.reasons)

    @property
    def n_spill(self) -> int:
        return sum(r == "spill" for r in self.reasons)


def _as_scores(scores: Sequence[float | None] | np.ndarray) -> np.ndarray:
    out = np.array([np.nan if s is None else s for s in scores], dtype=np.float64)
    if out.ndim != 1:
        raise DataError(f"Scores must be one number per row, got an array of shape {out.shape}.")
    if np.isinf(out).any():
        raise DataError("Scores contain infinity; use NaN or None for unscored rows.")
    return out


def plan_selection(
    scores: Sequence[float | None] | np.ndarray,
    cluster_ids: Sequence[Sequence[int] | None] | None,
    budget: int,
    *,
    strategy: Literal["quota", "global"] = "quota",
    quota: int | None = None,
    spill: bool = True,
) -> SelectionPlan:
    """Choose at most `budget` distinct rows by score, per cluster or globally. See [`SelectionConfig`].

    Ranking is by score, descending; equal scores are broken by row index (earlier first), so the result is
    deterministic. Rows without a score are never selected.

    Args:
        scores: one float per row (`None`/NaN = unscored).
        cluster_ids: one list of cluster ids per row (may be `None` for `"global"`).
        budget (`int`): maximum number of rows.
        strategy, quota, spill: see [`SelectionConfig`].

    Returns:
        [`SelectionPlan`].
    """
    SelectionConfig(budget=budget, strategy=strategy, quota=quota, spill=spill)  # validates
    s = _as_scores(scores)
    n = len(s)
    scored = np.flatnonzero(~np.isnan(s))
    ranking = scored[np.lexsort((scored, -s[scored]))]  # best first, ties by index
    rank_of = np.full(n, n, dtype=np.int64)
    rank_of[ranking] = np.arange(len(ranking))

    chosen: list[int] = []
    reasons: list[str] = []
    taken = np.zeros(n, dtype=bool)

    if strategy == "global":
        picked = ranking[:budget].tolist()
        return SelectionPlan(picked, ["global"] * len(picked), None, 0, len(ranking))

    if cluster_ids is None:
        raise DataError("The 'quota' strategy needs cluster ids per row; pass them, or use strategy='global'.")
    cluster_ids = list(cluster_ids)
    if len(cluster_ids) != n:
        raise DataError(f"Got {n} scores but {len(cluster_ids)} cluster-id lists; pass one of each per row.")
    members: dict[int, list[int]] = {}
    for i in scored.tolist():
        for c in set(cluster_ids[i] or ()):
            members.setdefault(int(c), []).append(i)
    for c in members:
        members[c].sort(key=rank_of.__getitem__)
    order = sorted(members, key=lambda c: (len(members[c]), c))  # smallest clusters first
    k = len(order)
    q = quota if quota is not None else (max(1, budget // k) if k and budget else 0)

    for c in order:
        if len(chosen) >= budget:
            break
        got = 0
        for i in members[c]:
            if got >= q or len(chosen) >= budget:
                break
            if not taken[i]:
                taken[i] = True
                chosen.append(i)
                reasons.append(f"quota:{c}")
                got += 1
    if spill and len(chosen) < budget:
        for i in ranking.tolist():
            if len(chosen) >= budget:
                break
            if not taken[i]:
                taken[i] = True
                chosen.append(i)
                reasons.append("spill")
    return SelectionPlan(chosen, reasons, q, k, len(ranking), order)


def select_indices(
    scores: Sequence[float | None] | np.ndarray,
    cluster_ids: Sequence[Sequence[int] | None] | None,
    budget: int,
    *,
    strategy: Literal["quota", "global"] = "quota",
    quota: int | None = None,
    spill: bool = True,
) -> list[int]:
    """Indices of the selected rows, in the order they were picked. See [`plan_selection`].

    Example:
        >>> select_indices([90, 80, 70, None], [[0], [0], [1], [1]], budget=2)
        [2, 0]
    """
    return plan_selection(scores, cluster_ids, budget, strategy=strategy, quota=quota, spill=spill).indices


def select_dataset(ds: Dataset, config: SelectionConfig | None = None, **kwargs: Any) -> Dataset:
    """Select rows of a scored, clustered `Dataset`; every column (scores included) is kept.

    Rows keep their original relative order (`ds.select(sorted(indices))`), so the result reads like the input.

    Args:
        ds (`Dataset`): rows with `config.score_column` (and `config.cluster_column` for `"quota"`).
        config ([`SelectionConfig`], *optional*): or pass its fields as keyword arguments (`budget=100`).

    Example:
        >>> selected = select_dataset(ds, budget=1000)                      # per-cluster quota + spill
        >>> top = select_dataset(ds, budget=1000, strategy="global")        # plain top-k
    """
    if config is None:
        config = SelectionConfig(**kwargs)
    elif kwargs:
        raise ConfigError("Pass either a SelectionConfig or keyword arguments, not both.")
    if config.score_column not in ds.column_names:
        raise MissingColumnError(config.score_column, ds.column_names, option="score_column")
    clusters = None
    if config.strategy == "quota":
        if config.cluster_column not in ds.column_names:
            raise MissingColumnError(config.cluster_column, ds.column_names, option="cluster_column")
        clusters = column_values(ds, config.cluster_column)
    plan = plan_selection(
        column_values(ds, config.score_column), clusters, config.budget, strategy=config.strategy, quota=config.quota, spill=config.spill
    )
    order = sorted(range(len(plan.indices)), key=plan.indices.__getitem__)
    out = ds.select([plan.indices[j] for j in order])
    if config.reason_column:
        if config.reason_column in out.column_names:
            out = out.remove_columns(config.reason_column)
        out = out.add_column(config.reason_column, [plan.reasons[j] for j in order])
    return out


__all__ = ["SelectionConfig", "SelectionPlan", "plan_selection", "select_dataset", "select_indices"]
