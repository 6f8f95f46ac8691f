"""Selection: invariants (budget, no duplicates, only scored rows) and the quota / spill logic, worked by hand."""

from __future__ import annotations

import math
import random

import pytest

from hf_prefsel.errors import ConfigError, DataError, MissingColumnError
from hf_prefsel.tacos.select import SelectionConfig, plan_selection, select_dataset, select_indices

NAN = float("nan")


def test_quota_visits_clusters_smallest_first_and_spills_to_the_best_remaining():
    # Worked by hand. Cluster sizes (scored members): c7 = {5}, c1 = {0, 1, 2, 3}, c2 = {1, 3, 4, 6, 7}.
    scores = [90, 80, 70, 60, 95, 10, 50, 40, None]
    clusters = [[1], [1, 2], [1], [1, 2], [2], [7], [2], [2], [2]]
    plan = plan_selection(scores, clusters, budget=5, quota=1)
    # Visit c7 (1 member): row 5 (score 10, the only one). c1 (4): best is row 0 (90). c2 (5): best row 4 (95).
    # Quota pass gives 3 rows; spill adds the best remaining overall: row 1 (80), row 2 (70).
    assert plan.cluster_order == [7, 1, 2]
    assert plan.indices == [5, 0, 4, 1, 2]
    assert plan.reasons == ["quota:7", "quota:1", "quota:2", "spill", "spill"]
    assert (plan.n_quota, plan.n_spill, plan.n_scored) == (3, 2, 8)
    # Without spill (released code) the selection may stay under budget.
    assert select_indices(scores, clusters, budget=5, quota=1, spill=False) == [5, 0, 4]


def test_overlapping_members_are_not_taken_twice():
    # Row 0 is the best of both clusters. c0 = {0, 1} and c1 = {0, 2} have the same size, so c0 goes first
    # (ties by id) and takes row 0; c1 must then take its next best, row 2.
    scores = [99, 50, 40]
    clusters = [[0, 1], [0], [1]]
    assert select_indices(scores, clusters, budget=2, quota=1, spill=False) == [0, 2]


def test_default_quota_is_budget_over_number_of_clusters():
    scores = list(range(100, 0, -1))
    clusters = [[i % 4] for i in range(100)]
    plan = plan_selection(scores, clusters, budget=10)
    assert plan.quota == 2 and plan.n_clusters == 4
    assert plan.n_quota == 8 and plan.n_spill == 2
    for c in range(4):
        assert sum(r == f"quota:{c}" for r in plan.reasons) == 2


def test_budget_below_the_number_of_clusters_gives_one_row_to_each_of_the_smallest():
    # Sizes: c0 = 3 rows, c1 = 2, c2 = 1. Budget 2 < 3 clusters: quota 1, so c2 then c1 get one row each.
    scores = [90, 80, 70, 60, 50, 10]
    clusters = [[0], [0], [0], [1], [1], [2]]
    plan = plan_selection(scores, clusters, budget=2)
    assert plan.quota == 1
    assert plan.indices == [5, 3]


def test_global_strategy_is_plain_top_k_with_index_tie_break():
    scores = [5, 9, None, 9, 1]
    assert select_indices(scores, None, budget=3, strategy="global") == [1, 3, 0]


@pytest.mark.parametrize("seed", range(25))
def test_invariants_on_random_inputs(seed):
    rng = random.Random(seed)
    n = rng.randint(0, 120)
    scores = [None if rng.random() < 0.15 else (NAN if rng.random() < 0.05 else rng.randint(0, 100)) for _ in range(n)]
    clusters = [sorted(rng.sample(range(12), rng.randint(0, 3))) for _ in range(n)]
    budget = rng.randint(0, 80)
    quota = rng.choice([None, 0, 1, 3])
    for strategy in ("quota", "global"):
        for spill in (True, False):
            plan = plan_selection(scores, clusters, budget, strategy=strategy, quota=quota, spill=spill)
            idx = plan.indices
            scored = [i for i, s in enumerate(scores) if s is not None and not math.isnan(s)]
            assert len(idx) <= budget
            assert len(idx) == len(set(idx))
            assert set(idx) <= set(scored)
            if strategy == "global" or spill:
                assert len(idx) == min(budget, len(scored))  # spill fills the budget whenever rows remain
            if strategy == "quota":
                per_cluster: dict[int, int] = {}
                for r in plan.reasons:
                    if r.startswith("quota:"):
                        c = int(r.split(":")[1])
                        per_cluster[c] = per_cluster.get(c, 0) + 1
                assert all(v <= plan.quota for v in per_cluster.values())
                # Spilled rows are the best of what the quota pass left.
                spilled = [i for i, r in zip(idx, plan.reasons) if r == "spill"]
                rest = sorted(set(scored) - set(idx[: len(idx) - len(spilled)]), key=lambda i: (-scores[i], i))
                assert spilled == rest[: len(spilled)]


def test_select_dataset_keeps_columns_and_order():
    import datasets

    ds = datasets.Dataset.from_dict(
        {
            "id": ["a", "b", "c", "d", "e"],
            "score": [10.0, None, 30.0, 20.0, 5.0],
            "score_swapped": [11.0, None, 29.0, 21.0, 6.0],
            "cluster_ids": [[0], [0], [1], [1], [2]],
        }
    )
    out = select_dataset(ds, budget=3, reason_column="selected_by")
    assert out["id"] == ["a", "c", "e"]  # input order, not pick order
    assert out.column_names == ["id", "score", "score_swapped", "cluster_ids", "selected_by"]
    assert out["selected_by"] == ["quota:0", "quota:1", "quota:2"]
    assert select_dataset(ds, SelectionConfig(budget=2, strategy="global"))["id"] == ["c", "d"]
    assert len(select_dataset(ds.rename_column("score", "judge"), budget=2, score_column="judge")) == 2


def test_errors():
    import datasets

    with pytest.raises(ConfigError, match="budget"):
        SelectionConfig(budget=-1)
    with pytest.raises(ConfigError, match="strategy"):
        SelectionConfig(budget=1, strategy="random")
    with pytest.raises(DataError, match="cluster"):
        select_indices([1.0], None, budget=1)
    with pytest.raises(DataError, match="one of each"):
        select_indices([1.0, 2.0], [[0]], budget=1)
    with pytest.raises(MissingColumnError, match="score"):
        select_dataset(datasets.Dataset.from_dict({"x": [1]}), budget=1)
