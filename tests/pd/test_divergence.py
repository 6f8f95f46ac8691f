"""PD formula against hand-computed values on real rows, edge cases of the vectorised core, scorer plumbing."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from hf_prefsel.errors import ConfigError, DataError
from hf_prefsel.pd import (
    AspectScorer,
    PairBatch,
    PDConfig,
    RatingsScorer,
    ResponseScorer,
    compute_pd,
    conflict_rate,
    from_multi_response,
    load_multiaspect_jsonl,
    pd_quantiles,
    preference_divergence,
    reference_conflict_rate,
)


@pytest.fixture(scope="module")
def six_sf_pairs(sf_rows):
    """The first six real SFRES rows. With seed 0 the split gives (ratings inf/nat/overall, chosen vs rejected):

    sfres-000 informativeness  6/4/6 vs 1/1/1
    sfres-001 naturalness      5/5/5 vs 5/3/4
    sfres-002 naturalness      6/6/5 vs 4/4/4.5
    sfres-003 informativeness  6/6/5 vs 4.5/4.5/4.5
    sfres-004 informativeness  5/4/4 vs 3/5/3
    sfres-005 all ratings equal -> counted as a tie, no pair
    """
    ps = from_multi_response(sf_rows[:6])
    assert ps.bad_rows.counts == {"tie": 1}
    assert ps.pairs["pair_id"] == [
        "sfres-000#1>0@informativeness",
        "sfres-001#1>0@naturalness",
        "sfres-002#1>0@naturalness",
        "sfres-003#1>0@informativeness",
        "sfres-004#1>0@informativeness",
    ]
    return ps.pairs


def test_pd_hand_computed_gamma_1(six_sf_pairs):
    # Cross gaps: naturalness gaps for the informativeness pairs: 4-1=3, 6-4.5=1.5, 4-5=-1;
    # informativeness gaps for the naturalness pairs: 5-5=0, 6-4=2.
    # gamma=1: q_inf = max(|0|, |2|) = 2 ; q_nat = max(3, 1.5, 1) = 3.
    # PD = -clip(gap / q): -1, -0, -1, -0.5, +1/3
    result = compute_pd(six_sf_pairs, RatingsScorer(), PDConfig(gamma=1.0, progress=False))
    assert result.scales == {"informativeness": 2.0, "naturalness": 3.0}
    np.testing.assert_allclose(result.dataset["pd"], [-1.0, 0.0, -1.0, -0.5, 1.0 / 3.0])
    assert result.dataset["pd_num_aspects"] == [1, 1, 1, 1, 1]
    assert result.dataset[4]["reward_gaps"] == {"informativeness": 2.0, "naturalness": -1.0}
    # reward margin (RAF): own gap / own scale: 5/2, 2/3, 2/3, 1.5/2, 2/2
    np.testing.assert_allclose(result.dataset["reward_margin"], [2.5, 2 / 3, 2 / 3, 0.75, 1.0])


def test_pd_hand_computed_gamma_median_clips(six_sf_pairs):
    # gamma=0.5 (linear interpolation): q_inf = median(0, 2) = 1 ; q_nat = median(3, 1.5, 1) = 1.5
    # PD: -clip(3/1.5)=-1, -0/1=0, -clip(2/1)=-1, -1.5/1.5=-1, -(-1/1.5)=+2/3
    result = compute_pd(six_sf_pairs, RatingsScorer(), PDConfig(gamma=0.5, progress=False))
    assert result.scales == {"informativeness": 1.0, "naturalness": 1.5}
    np.testing.assert_allclose(result.dataset["pd"], [-1.0, 0.0, -1.0, -1.0, 2.0 / 3.0])
    assert conflict_rate(result.dataset) == pytest.approx(0.2)


def test_pd_weights(six_sf_pairs):
    weighted = compute_pd(
        six_sf_pairs, RatingsScorer(), PDConfig(gamma=1.0, weights={"naturalness": 2.0}, progress=False)
    )
    # naturalness-scored pairs (the informativeness ones) double; informativeness-scored ones keep weight 1
    np.testing.assert_allclose(weighted.dataset["pd"], [-2.0, 0.0, -1.0, -1.0, 2.0 / 3.0])


def test_core_handles_zero_scale_nan_and_own_aspect():
    gaps = np.array(
        [
            [5.0, 0.0, np.nan],  # own aspect 0: its own gap is ignored; NaN contributes 0
            [1.0, 0.0, -2.0],  # own aspect 1
            [0.0, 3.0, 4.0],  # own aspect 2
            [-1.0, 0.0, 1.0],  # own aspect 1
        ]
    )
    own = np.array([0, 1, 2, 1])
    pd, scaled, scales = preference_divergence(gaps, own, gamma=0.5)
    # aspect 0 external |gaps| {1, 0, 1} -> median 1; aspect 1 external {0, 3} -> 1.5; aspect 2 external {2, 1} -> 1.5
    np.testing.assert_allclose(scales, [1.0, 1.5, 1.5])
    np.testing.assert_allclose(pd, [-(0.0 / 1.5), -(1.0 + -1.0), -(0.0 + 1.0), -(-1.0 + 2 / 3)])
    assert scaled[0, 0] == 0 and scaled[0, 2] == 0
    # a zero scale gives the sign of the gap
    pd0, _, scales0 = preference_divergence(np.array([[0.0, 0.5], [0.0, -2.0], [1.0, 0.0]]), np.array([0, 0, 1]))
    assert scales0[1] == pytest.approx(0.5 + 0.9 * (2.0 - 0.5))
    pd_zero, _, s_zero = preference_divergence(np.array([[0, 0.0], [0, 0.0], [0, 3.0]]), np.array([0, 0, 0]), gamma=0.5)
    assert s_zero[1] == 0 and pd_zero.tolist() == [0.0, 0.0, -1.0]


def test_core_scales_to_a_million_pairs():
    rng = np.random.default_rng(0)
    gaps = rng.normal(size=(1_000_000, 5))
    own = rng.integers(0, 5, size=1_000_000)
    pd, _, scales = preference_divergence(gaps, own)
    assert pd.shape == (1_000_000,) and np.all(np.abs(pd) <= 4.0) and np.isfinite(scales).all()


def test_real_selection_lowers_conflict_with_overall(sf_path, topical_path):
    from hf_prefsel.pd import AspectSplitConfig, select_by_pd, select_random

    for path, mode in ((sf_path, "one_per_prompt"), (topical_path, "all_pairs")):
        ps = load_multiaspect_jsonl(path, AspectSplitConfig(pair_mode=mode))
        scored = compute_pd(ps.pairs, RatingsScorer(), PDConfig(progress=False)).dataset
        kept = select_by_pd(scored, ratio=0.3)
        pool_rate, n_pool = reference_conflict_rate(scored, "overall")
        kept_rate, n_kept = reference_conflict_rate(kept, "overall")
        rand_rate, _ = reference_conflict_rate(select_random(scored, 0.3), "overall")
        assert n_pool == len(scored) and n_kept == len(kept)
        # "overall" is not used by PD here, so this is an independent check of the selection
        assert kept_rate < pool_rate and kept_rate < rand_rate
        assert conflict_rate(kept) <= conflict_rate(scored)
    q = pd_quantiles(scored)
    assert q["q0.00"] <= q["q0.50"] <= q["q1.00"]


def test_missing_ratings_count_and_single_aspect(qa_path):
    ps = load_multiaspect_jsonl(qa_path)
    result = compute_pd(ps.pairs.select(range(60)), RatingsScorer(), PDConfig(progress=False))
    assert result.aspects == ["preference"]
    assert set(result.dataset["pd"]) == {0.0}  # a single aspect has no "other" aspects
    assert set(result.dataset["pd_num_aspects"]) == {0}


class _LengthJudge(ResponseScorer):
    """A pointwise stand-in for a judge: longer is better on 'a', shorter on 'b'."""

    aspects = ("a", "b")

    def score_responses(self, prompts, responses, aspect):
        lengths = np.array([len(r) for r in responses], dtype=float)
        return lengths if aspect == "a" else -lengths


class _BrokenScorer:
    aspects = None

    def reward_gaps(self, pairs, aspect):
        return np.zeros(len(pairs) + 1)


def _toy_pairs() -> Dataset:
    return Dataset.from_dict(
        {
            "pair_id": ["p0", "p1", "p2"],
            "prompt": ["x", "x", "y"],
            "chosen": ["long answer", "s", "mid"],
            "rejected": ["s", "long answer", "m"],
            "aspect": ["a", "b", "a"],
        }
    )


def test_custom_scorers_plug_in_and_are_checked():
    assert isinstance(_LengthJudge(), AspectScorer) and isinstance(RatingsScorer(), AspectScorer)
    result = compute_pd(_toy_pairs(), _LengthJudge(), PDConfig(gamma=1.0, progress=False))
    # b-gaps of the a-pairs: -(11-1)=-10, -(3-1)=-2; q_b over {p0,p2} = 10 -> PD = 1.0, 0.2
    # a-gap of the b-pair: 1-11=-10, q_a over {p1} = 10 -> PD = 1.0
    np.testing.assert_allclose(result.dataset["pd"], [1.0, 1.0, 0.2])
    with pytest.raises(DataError):
        compute_pd(_toy_pairs(), _BrokenScorer(), PDConfig(progress=False))
    with pytest.raises(ConfigError):
        compute_pd(_toy_pairs(), _LengthJudge(), PDConfig(aspects=["a", "c"], progress=False))
    with pytest.raises(DataError):
        RatingsScorer().reward_gaps(PairBatch.from_batch(_toy_pairs()[:]), "a")
    with pytest.raises(ConfigError):
        PDConfig(gamma=0.0)


class _RowOnlyRatings(RatingsScorer):
    """RatingsScorer without the columnar fast path: the batch-by-batch reference."""

    dataset_gaps = None


def test_columnar_ratings_path_equals_row_path(sf_path, topical_path):
    from hf_prefsel.pd import AspectSplitConfig

    for path in (sf_path, topical_path):
        pairs = load_multiaspect_jsonl(path, AspectSplitConfig(pair_mode="all_pairs")).pairs
        pairs = pairs.shuffle(seed=3).select(range(0, len(pairs), 2))  # an indices mapping, as after select/shuffle
        for own in (True, False):
            config = PDConfig(progress=False, score_own_aspect=own, batch_size=7)
            fast = compute_pd(pairs, RatingsScorer(), config)
            slow = compute_pd(pairs, _RowOnlyRatings(), config)
            np.testing.assert_array_equal(fast.gaps, slow.gaps)
            assert fast.dataset.to_list() == slow.dataset.to_list()
            assert fast.scales == slow.scales and fast.missing == slow.missing
    # the new columns' fingerprint depends on the inputs, so equal inputs give equal fingerprints
    again = compute_pd(pairs, RatingsScorer(), config)
    assert again.dataset._fingerprint == fast.dataset._fingerprint
    other = compute_pd(pairs, RatingsScorer(), PDConfig(progress=False, score_own_aspect=False, gamma=0.5))
    assert other.dataset._fingerprint != fast.dataset._fingerprint


def test_missing_struct_and_null_ratings_read_as_nan():
    ds = Dataset.from_dict(
        {
            "pair_id": ["p0", "p1", "p2"],
            "prompt": ["x", "y", "z"],
            "chosen": ["a", "b", "c"],
            "rejected": ["d", "e", "f"],
            "aspect": ["u", "v", "u"],
            "chosen_ratings": [{"u": 3.0, "v": 1.0}, None, {"u": 2.0, "v": None}],
            "rejected_ratings": [{"u": 1.0, "v": 2.0}, {"u": 1.0, "v": 1.0}, {"u": 1.0, "v": 0.0}],
        }
    )
    gaps = RatingsScorer().dataset_gaps(ds, "v")
    np.testing.assert_array_equal(gaps, [-1.0, np.nan, np.nan])
    assert np.isnan(RatingsScorer().dataset_gaps(ds, "w")).all()
    result = compute_pd(ds, RatingsScorer(), PDConfig(progress=False))
    assert result.missing == {"u": 1, "v": 1}
    assert result.dataset["reward_gaps"][1] == {"u": None, "v": None}
