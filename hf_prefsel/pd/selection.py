"""Selectors over scored pairs: PD (most negative), and the comparisons the paper reports (random, most positive
PD, reward-margin filtering), all with the same budget rule so their subsets are directly comparable.

Budget rule: keep `round(ratio · N)` pairs. With `stratify_by_aspect=True` each D_k keeps its share
(largest-remainder rounding, so the total is still `round(ratio · N)`). Ties in the ranking are broken by a seeded
random key, never by input order (ratings give many exact ties). Selected rows come back in their original order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from datasets import Dataset

from ..errors import ConfigError
from .schema import distinct_strings, float_column, label_codes


def _budget(n: int, ratio: float) -> int:
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(
            f"ratio must be in [0, 1], got {ratio}. The paper keeps 0.3 (UltraFeedback) or 0.5 (HelpSteer)."
        )
    return int(round(ratio * n))


def _stratum_budgets(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split `total` over strata proportionally to `sizes` (largest remainder), never more than a stratum holds."""
    from ..result import largest_remainder

    return np.minimum(largest_remainder(sizes, total), sizes)


def rank_select(
    scores: np.ndarray,
    count: int,
    *,
    groups: Sequence[str] | np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Indices of the `count` smallest `scores` (NaN last), per group proportionally when `groups` is given
    (strata in sorted order of the group labels, which may be strings or integers).

    This is the one ranking rule all selectors share. Returns sorted indices.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if not 0 <= count <= n:
        raise ConfigError(f"count must be in [0, {n}], got {count}.")
    tiebreak = np.random.default_rng(seed).random(n)
    if groups is None:
        return _smallest(scores, tiebreak, count)
    labels = np.asarray(groups)
    if labels.dtype == object:
        labels = labels.astype(str)
    names, inverse = np.unique(labels, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(inverse, minlength=len(names)))[:-1])
    budgets = _stratum_budgets(np.array([len(m) for m in members]), count)
    chosen = [idx[_smallest(scores[idx], tiebreak[idx], int(b))] for idx, b in zip(members, budgets)]
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)


def _smallest(scores: np.ndarray, tiebreak: np.ndarray, count: int) -> np.ndarray:
    """Sorted indices of the `count` smallest scores, NaN after +inf, ties by `tiebreak`.

    Same result as `lexsort((tiebreak, isnan, scores))[:count]`, in O(n): a partition finds the cut value and only
    the rows tied at the cut are sorted (a full sort of a million scores costs ~1 s; this ~30 ms).
    """
    n = len(scores)
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    if count >= n:
        return np.arange(n, dtype=np.int64)
    nan = np.isnan(scores)
    keyed = np.where(nan, np.inf, scores)
    cut = np.partition(keyed, count - 1)[count - 1]
    below = np.flatnonzero(keyed < cut)
    tied = np.flatnonzero(keyed == cut)
    tied = tied[np.lexsort((tiebreak[tied], nan[tied]))[: count - len(below)]]
    return np.sort(np.concatenate([below, tied]))


def _column(ds: Dataset, name: str) -> np.ndarray:
    return float_column(ds, name)


def _groups(ds: Dataset, aspect_column: str, stratify_by_aspect: bool) -> np.ndarray | None:
    """Aspect labels as integer ranks of the sorted label names: the same strata in the same order as the strings,
    without comparing a million Python strings."""
    if not stratify_by_aspect:
        return None
    return label_codes(ds, aspect_column, distinct_strings(ds, aspect_column))


def select_indices_by_pd(
    ds: Dataset,
    ratio: float = 0.3,
    *,
    stratify_by_aspect: bool = False,
    pd_column: str = "pd",
    aspect_column: str = "aspect",
    seed: int = 0,
) -> np.ndarray:
    """Row indices `select_by_pd` keeps (sorted)."""
    groups = _groups(ds, aspect_column, stratify_by_aspect)
    return rank_select(_column(ds, pd_column), _budget(len(ds), ratio), groups=groups, seed=seed)


def select_by_pd(
    ds: Dataset,
    ratio: float = 0.3,
    stratify_by_aspect: bool = False,
    *,
    pd_column: str = "pd",
    aspect_column: str = "aspect",
    seed: int = 0,
) -> Dataset:
    """Keep the `ratio` share of pairs with the most negative PD (the most consensus across aspects).

    The paper ranks globally over the whole aggregated set (Theorem 3.5 gives a single arg-top over D);
    `stratify_by_aspect=True` instead keeps the same share of every D_k, for when one aspect's pairs would
    otherwise crowd out the rest.

    Args:
        ds (`Dataset`):
            Pairs with a PD column (`compute_pd(...).dataset`).
        ratio (`float`, *optional*, defaults to `0.3`):
            Share of pairs to keep (λ).
        stratify_by_aspect (`bool`, *optional*, defaults to `False`):
            Keep λ of each aspect separately instead of ranking globally.
        pd_column, aspect_column (`str`):
            Column names.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the tie-breaking key.

    Returns:
        `Dataset`: the kept rows, in their original order.

    Example:

    ```python
    >>> kept = select_by_pd(compute_pd(pairs, RatingsScorer()).dataset, ratio=0.3)
    ```
    """
    return ds.select(select_indices_by_pd(ds, ratio, stratify_by_aspect=stratify_by_aspect, pd_column=pd_column,
                                          aspect_column=aspect_column, seed=seed))


def select_most_positive_pd(
    ds: Dataset, ratio: float = 0.3, stratify_by_aspect: bool = False, *, pd_column: str = "pd",
    aspect_column: str = "aspect", seed: int = 0,
) -> Dataset:
    """Keep the pairs with the *most positive* PD (the paper's PD(high) control: the most conflicting pairs)."""
    groups = _groups(ds, aspect_column, stratify_by_aspect)
    idx = rank_select(-_column(ds, pd_column), _budget(len(ds), ratio), groups=groups, seed=seed)
    return ds.select(idx)


def select_random(
    ds: Dataset, ratio: float = 0.3, stratify_by_aspect: bool = False, *, aspect_column: str = "aspect", seed: int = 0
) -> Dataset:
    """Keep a uniformly random `ratio` share (the paper's RAND baseline), seeded."""
    groups = _groups(ds, aspect_column, stratify_by_aspect)
    scores = np.random.default_rng(seed + 1).random(len(ds))
    return ds.select(rank_select(scores, _budget(len(ds), ratio), groups=groups, seed=seed))


def select_by_reward_margin(
    ds: Dataset, ratio: float = 0.3, stratify_by_aspect: bool = False, *, margin_column: str = "reward_margin",
    aspect_column: str = "aspect", seed: int = 0,
) -> Dataset:
    """Keep the pairs with the largest reward margin under their own aspect's reward (the paper's RAF baseline).

    The margin is `Δr̂_k(z) / q_k` (`compute_pd` with `score_own_aspect=True`): dividing by the aspect's scale
    makes margins from different reward models comparable in one global ranking. Pairs without a margin go last.
    """
    groups = _groups(ds, aspect_column, stratify_by_aspect)
    idx = rank_select(-_column(ds, margin_column), _budget(len(ds), ratio), groups=groups, seed=seed)
    return ds.select(idx)
