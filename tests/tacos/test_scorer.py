"""Comparative scoring: pairing plan, parse/validation of judge replies, aggregation, position bias."""

from __future__ import annotations

import json
import logging
import math
import re

import datasets
import numpy as np
import pytest

from hf_prefsel.errors import MissingColumnError
from hf_prefsel.llm import LLMConfig
from hf_prefsel.tacos.scorer import (
    ComparativeScorer,
    ComparativeScorerConfig,
    SingletonScorer,
    bradley_terry,
    plan_pairs,
)


def test_plan_pairs_neighbours_in_stored_order_smallest_cluster_first():
    # cluster 7 has rows 0, 2 (small); cluster 1 has rows 0..5
    labels = [[1, 7], [1], [1, 7], [1], [1], [1]]
    assert plan_pairs(labels) == [(0, 2), (1, 3), (4, 5)]


def test_plan_pairs_at_most_one_pair_per_sample_per_pass():
    rng = np.random.default_rng(0)
    labels = [sorted(set(rng.integers(0, 6, size=rng.integers(1, 4)).tolist())) for _ in range(101)]
    for passes in (1, 2, 3):
        pairs = plan_pairs(labels, passes, seed=1)
        assert len(pairs) <= passes * 101 // 2
        assert len(set(map(frozenset, pairs))) == len(pairs)  # no pair twice
        for a, b in pairs[: len(plan_pairs(labels, 1))]:
            assert a != b
        first_pass = plan_pairs(labels, 1)
        counts = np.bincount(np.array(first_pass).ravel(), minlength=101)
        assert counts.max() == 1


def test_plan_pairs_leftovers():
    labels = [[0], [0], [0], [1], [], [2]]
    assert plan_pairs(labels, pair_leftovers=False) == [(0, 1)]
    # leftovers 2 (odd one out of cluster 0), 3 and 5 (alone) pair in index order: (2, 3); 5 stays alone.
    # Row 4 has no tags and is never paired.
    assert plan_pairs(labels) == [(0, 1), (2, 3)]


def test_bradley_terry_orders_by_wins():
    # 0 beats 1 and 2, 1 beats 2; 3 never played
    logs = bradley_terry(4, [(0, 1, 1.0), (0, 2, 1.0), (1, 2, 1.0), (1, 0, 0.0)])
    assert logs[0] > logs[1] > logs[2]
    assert math.isnan(logs[3])
    tie = bradley_terry(2, [(0, 1, 0.5)])
    assert abs(tie[0] - tie[1]) < 1e-9


def _judge_by_length(body):
    """A deterministic fake judge: the longer response scores higher, position ignored."""
    text = body["prompt"].rsplit("Input: ", 1)[-1]
    responses = re.findall(r"Response: (.*)", text)
    s1, s2 = (min(100, 10 + len(r)) for r in responses[:2])
    return json.dumps({"analysis": "longer is better here", "score_1": s1, "score_2": s2})


@pytest.fixture
def clustered():
    return datasets.Dataset.from_dict({
        "instruction": [f"Question {i}" for i in range(6)],
        "input": [""] * 6,
        "output": ["a" * 5, "b" * 40, "c" * 20, "d" * 30, "e" * 10, "f" * 1],
        "cluster_ids": [[0], [0], [0, 1], [1], [1], [2]],
    })


def test_scores_pairs_and_aggregates(fault_server, cache_path, clustered):
    server = fault_server(responder=_judge_by_length)
    scorer = ComparativeScorer(LLMConfig(endpoints=[server.url], route="completion", cache_path=cache_path))
    out = scorer.score(clustered, progress=False)
    assert out.column_names[-3:] == ["score", "n_comparisons", "score_error"]
    pairs = scorer.plan(clustered)
    assert server.generation_requests == len(pairs) == scorer.report.calls_planned
    for a, b in pairs:
        assert (out["score"][a] > out["score"][b]) == (len(clustered["output"][a]) > len(clustered["output"][b]))
    assert scorer.report.position_bias_rate is None
    assert all(c >= 1 for c in out["n_comparisons"])
    # a verdict is short: the judge's cap, not the endpoint default (256), bounds what a rambling reply costs
    assert {body["max_tokens"] for body in server.requests} == {128}
    assert all(body["stop"] == ["\n"] for body in server.requests)  # one-line verdicts end at their newline


def test_swap_measures_position_bias(fault_server, cache_path, clustered):
    server = fault_server(responder=_judge_by_length)
    cfg = ComparativeScorerConfig(swap=True)
    scorer = ComparativeScorer(LLMConfig(endpoints=[server.url], route="completion", cache_path=cache_path), cfg)
    scorer.score(clustered, progress=False)
    assert scorer.report.position_bias_rate == 0.0
    assert server.generation_requests == 2 * scorer.report.pairs

    biased = fault_server(responder=lambda body: '{"analysis": "first is best", "score_1": 90, "score_2": 10}')
    scorer = ComparativeScorer(LLMConfig(endpoints=[biased.url], route="completion", cache_path=cache_path + "2"), cfg)
    out = scorer.score(clustered, progress=False)
    assert scorer.report.position_bias_rate == 1.0
    scored = [s for s in out["score"] if not math.isnan(s)]
    assert scored and all(s == 50.0 for s in scored)  # averaging both orders cancels the bias


def test_malformed_judge_replies_are_recorded(fault_server, cache_path, clustered):
    replies = iter(["not json at all", '{"analysis": "x", "score_1": 250, "score_2": 3}', '{"analysis": "x", "score_1": 7}'])
    server = fault_server(responder=lambda body: next(replies, None) or '{"analysis": "ok", "score_1": 60, "score_2": 40}')
    config = LLMConfig(endpoints=[server.url], route="completion", cache_path=cache_path, repair_attempts=2, max_concurrency=1)
    scorer = ComparativeScorer(config)
    out = scorer.score(clustered.select(range(2)), progress=False)
    # one pair; the first reply and both repairs are invalid (non-JSON, out of range, missing field)
    assert scorer.report.failed == 1
    assert all(math.isnan(s) for s in out["score"])
    assert "StructuredOutputError" in out["score_error"][0]
    out = ComparativeScorer(config.replace(cache_path=cache_path + "b")).score(clustered.select(range(2)), progress=False)
    assert out["score"] == [60.0, 40.0] and out["score_error"] == [None, None]


def test_bradley_terry_aggregation_and_passes(fault_server, cache_path, clustered):
    server = fault_server(responder=_judge_by_length)
    cfg = ComparativeScorerConfig(passes=2, aggregate="bradley_terry", seed=3)
    out = ComparativeScorer(LLMConfig(endpoints=[server.url], route="completion", cache_path=cache_path), cfg).score(clustered, progress=False)
    scores = np.array(out["score"])
    assert np.all((scores[~np.isnan(scores)] >= 1) & (scores[~np.isnan(scores)] <= 100))
    assert max(out["n_comparisons"]) == 2
    assert scores[1] > scores[0]  # the longest response beats the shortest in its cluster


def test_budget_is_respected(fault_server, cache_path, clustered, capsys, caplog):
    server = fault_server(responder=_judge_by_length)
    scorer = ComparativeScorer(LLMConfig(endpoints=[server.url], route="completion", cache_path=cache_path, max_calls=1))
    with caplog.at_level(logging.WARNING, logger="hf_prefsel.tacos.scorer"):
        out = scorer.score(clustered, progress=False)
    assert server.generation_requests == 1
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "hf_prefsel.tacos.scorer"]
    assert len(warned) == 1 and "judge calls planned (budget: 1 calls" in warned[0].getMessage()
    assert capsys.readouterr().out == ""  # the library logs, it does not print
    assert sum(not math.isnan(s) for s in out["score"]) == 2


def test_singleton_baseline(fault_server, cache_path, clustered):
    server = fault_server(responder=lambda body: '{"analysis": "fine", "score": 77}')
    out = SingletonScorer(LLMConfig(endpoints=[server.url], route="completion", cache_path=cache_path)).score(clustered, progress=False)
    assert out["score"] == [77.0] * 6 and server.generation_requests == 6


def test_missing_columns(clustered):
    with pytest.raises(MissingColumnError, match="cluster_ids"):
        ComparativeScorer().plan(clustered.remove_columns("cluster_ids"))
    with pytest.raises(MissingColumnError, match="'output'"):
        ComparativeScorer().score(clustered.remove_columns("output"))


def test_planned_pairs_judged_by_an_executor_give_the_same_scores(fault_server, cache_path, clustered, tmp_path):
    """The judging stage as a batched mapper over planned pairs (what a Ray executor runs) changes nothing."""
    from hf_prefsel.llm.executor import LocalExecutor

    server = fault_server(responder=_judge_by_length)
    cfg = ComparativeScorerConfig(swap=True)
    direct = ComparativeScorer(LLMConfig(endpoints=[server.url], route="completion", cache_path=cache_path), cfg)
    expected = direct.score(clustered, progress=False)
    paid = server.generation_requests
    # a fresh cache, so the executor path really asks the judge
    via = ComparativeScorer(LLMConfig(endpoints=[server.url], route="completion", cache_path=str(tmp_path / "other.sqlite")), cfg)
    out = via.score(clustered, progress=False, executor=LocalExecutor())
    assert out["score"] == expected["score"] and out["n_comparisons"] == expected["n_comparisons"]
    assert via.report.position_bias_rate == direct.report.position_bias_rate
    assert server.generation_requests == 2 * paid and via.report.usage["calls"] == paid
