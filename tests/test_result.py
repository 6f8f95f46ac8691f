"""The shared selection vocabulary: one largest-remainder rule, one meaning of budget and ratio."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hf_prefsel.errors import ConfigError
from hf_prefsel.result import check_size, largest_remainder, rows_to_keep


def _old_pd_rule(sizes: np.ndarray, total: int) -> np.ndarray:
    """PD's per-aspect budgets as written before the shared function (kept here to prove equality)."""
    exact = sizes * (total / sizes.sum())
    base = np.floor(exact).astype(int)
    order = np.argsort(-(exact - base), kind="stable")
    base[order[: total - int(base.sum())]] += 1
    return base


@pytest.mark.parametrize("seed", range(20))
def test_largest_remainder_is_proportional_exact_and_equals_the_old_copies(seed):
    rng = np.random.default_rng(seed)
    weights = rng.integers(0, 50, size=rng.integers(1, 12)).astype(float)
    weights[0] += 1
    total = int(rng.integers(0, 200))
    parts = largest_remainder(weights, total)
    exact = weights / weights.sum() * total
    assert parts.sum() == total and (parts >= np.floor(exact - 1e-9)).all() and (parts <= np.ceil(exact + 1e-9)).all()
    assert parts.tolist() == _old_pd_rule(weights, total).tolist()


def test_largest_remainder_ties_zero_weights_and_float_error():
    assert largest_remainder([1, 1, 1], 2).tolist() == [1, 1, 0]  # ties go to the lower index
    assert largest_remainder([0, 0], 3).tolist() == [0, 0]
    assert largest_remainder([0, 0, 0], 4, even_when_zero=True).tolist() == [2, 1, 1]
    # 0.1 + 0.2 style error must not take a unit from an exact share
    assert largest_remainder([0.3, 0.3, 0.4], 10).tolist() == [3, 3, 4]


def test_one_meaning_of_budget_and_ratio():
    assert rows_to_keep(10, budget=3) == 3 and rows_to_keep(2, budget=5) == 2
    assert rows_to_keep(60, ratio=0.3) == 18 and rows_to_keep(3, ratio=0.01) == 1 and rows_to_keep(0, ratio=0.5) == 0
    for bad in ({"budget": 0}, {"budget": -1}, {"budget": 2.7}, {"budget": True}, {"ratio": 0.0}, {"ratio": 1.5},
                {"ratio": math.nan}, {"budget": 3, "ratio": 0.5}):
        with pytest.raises(ConfigError):
            check_size(bad.get("budget"), bad.get("ratio"), owner="test")
