"""Selector invariants: budget, ranking, stratification, seeded tie-breaking, original order."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from datasets import Dataset

from hf_prefsel.errors import ConfigError, MissingColumnError
from hf_prefsel.pd import (
    rank_select,
    select_by_pd,
    select_by_reward_margin,
    select_indices_by_pd,
    select_most_positive_pd,
    select_random,
)


@pytest.fixture(scope="module")
def scored() -> Dataset:
    rng = np.random.default_rng(7)
    n = 101
    aspects = np.array(["a"] * 60 + ["b"] * 30 + ["c"] * 11)
    pd = np.round(rng.normal(size=n), 1)  # rounding creates ties
    margin = rng.normal(size=n)
    margin[[3, 50]] = np.nan
    return Dataset.from_dict(
        {
            "pair_id": [f"p{i:03d}" for i in range(n)],
            "aspect": aspects.tolist(),
            "pd": pd.tolist(),
            "reward_margin": [None if np.isnan(m) else float(m) for m in margin],
        }
    )


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 1.0])
def test_budget_and_order(scored, ratio):
    for select in (select_by_pd, select_most_positive_pd, select_random, select_by_reward_margin):
        kept = select(scored, ratio)
        assert len(kept) == round(ratio * len(scored))
        ids = kept["pair_id"]
        assert ids == sorted(ids)  # original row order is kept
        assert len(set(ids)) == len(ids)


def test_pd_keeps_most_negative_and_high_keeps_most_positive(scored):
    pd = np.array(scored["pd"])
    idx = select_indices_by_pd(scored, 0.3)
    rest = np.setdiff1d(np.arange(len(pd)), idx)
    assert pd[idx].max() <= pd[rest].min()
    high = select_most_positive_pd(scored, 0.3)
    high_idx = [int(i[1:]) for i in high["pair_id"]]
    assert pd[high_idx].min() >= np.delete(pd, high_idx).max()


def test_stratified_keeps_each_aspect_share(scored):
    kept = select_by_pd(scored, ratio=0.3, stratify_by_aspect=True)
    assert len(kept) == round(0.3 * 101)  # 30 in total
    counts = Counter(kept["aspect"])
    # exact shares 18, 9, 3.3 -> largest remainder gives 18, 9, 3
    assert counts == {"a": 18, "b": 9, "c": 3}
    pd = np.array(scored["pd"])
    aspects = np.array(scored["aspect"])
    kept_idx = set(int(i[1:]) for i in kept["pair_id"])
    for aspect in "abc":
        members = np.flatnonzero(aspects == aspect)
        inside = [pd[i] for i in members if i in kept_idx]
        outside = [pd[i] for i in members if i not in kept_idx]
        assert max(inside) <= min(outside)


def test_ties_are_broken_by_seed_not_by_position():
    ds = Dataset.from_dict({"pair_id": [f"p{i:02d}" for i in range(40)], "aspect": ["a"] * 40, "pd": [0.0] * 40})
    first = select_by_pd(ds, 0.25, seed=0)["pair_id"]
    assert first == select_by_pd(ds, 0.25, seed=0)["pair_id"]
    assert first != select_by_pd(ds, 0.25, seed=1)["pair_id"]
    assert first != [f"p{i:02d}" for i in range(10)]


def test_random_is_seeded(scored):
    assert select_random(scored, 0.3, seed=5)["pair_id"] == select_random(scored, 0.3, seed=5)["pair_id"]
    assert select_random(scored, 0.3, seed=5)["pair_id"] != select_random(scored, 0.3, seed=6)["pair_id"]


def test_reward_margin_keeps_largest_and_puts_missing_last(scored):
    kept = select_by_reward_margin(scored, 0.3)
    margins = {p: m for p, m in zip(scored["pair_id"], scored["reward_margin"])}
    inside = [margins[p] for p in kept["pair_id"]]
    outside = [m for p, m in margins.items() if p not in set(kept["pair_id"]) and m is not None]
    assert None not in inside and min(inside) >= max(outside)
    everything_but_missing = select_by_reward_margin(scored, 99 / 101)
    assert set(scored["pair_id"]) - set(everything_but_missing["pair_id"]) == {"p003", "p050"}


def test_errors(scored):
    with pytest.raises(ConfigError):
        select_by_pd(scored, ratio=1.5)
    with pytest.raises(MissingColumnError):
        select_by_pd(scored.remove_columns("pd"))
    with pytest.raises(ConfigError):
        rank_select(np.zeros(3), 4)


def _reference_rank_select(scores, count, groups, seed):
    """The ranking rule written as a full sort (the definition the O(n) partition must reproduce)."""
    tiebreak = np.random.default_rng(seed).random(len(scores))
    keyed = np.where(np.isnan(scores), np.inf, scores)
    if groups is None:
        return np.sort(np.lexsort((tiebreak, np.isnan(scores), keyed))[:count])
    labels = np.asarray(groups, dtype=object)
    names = sorted(set(labels.tolist()))
    members = [np.flatnonzero(labels == name) for name in names]
    from hf_prefsel.pd.selection import _stratum_budgets

    budgets = _stratum_budgets(np.array([len(m) for m in members]), count)
    chosen = [idx[np.lexsort((tiebreak[idx], np.isnan(scores[idx]), keyed[idx]))[:b]] for idx, b in zip(members, budgets)]
    return np.sort(np.concatenate(chosen))


@pytest.mark.parametrize("seed", range(6))
def test_partition_ranking_equals_full_sort(seed):
    rng = np.random.default_rng(seed)
    n = 500
    scores = np.round(rng.normal(size=n), 1)  # many ties
    scores[rng.random(n) < 0.1] = np.nan
    scores[rng.random(n) < 0.05] = np.inf  # real +inf ranks before NaN
    groups = rng.choice(["x", "y", "z"], size=n)
    for count in (0, 1, 37, 250, 480, 499, 500):
        for g in (None, groups):
            got = rank_select(scores, count, groups=g, seed=seed)
            np.testing.assert_array_equal(got, _reference_rank_select(scores, count, g, seed))
        codes = np.searchsorted(["x", "y", "z"], groups)  # integer ranks of the labels: the same strata
        np.testing.assert_array_equal(rank_select(scores, count, groups=codes, seed=seed),
                                      rank_select(scores, count, groups=groups, seed=seed))
