"""Probability verdicts: a fake server returns chosen log-probabilities; averaging the two orders cancels a pure
position preference exactly and keeps the content preference; the one-sample judge's expected digit score matches a
hand computation; servers without log-probabilities fall back to sampled verdicts."""

from __future__ import annotations

import math

import pytest
from datasets import Dataset
from logprob_fakes import FakeSource, LogprobServer

from hf_prefsel.errors import BudgetExceededError, ConfigError
from hf_prefsel.llm import LLMConfig
from hf_prefsel.llm.prob_scores import expected_value, most_likely
from hf_prefsel.tacos import ComparativeScorer, ComparativeScorerConfig, SingletonScorer
from hf_prefsel.tacos.prob_verdict import (PREFERENCE_PROMPT, SCORE_OPTIONS, SCORE_PROMPT, expected_score, first_preference,
                                           score_verdicts)


def _pairs() -> Dataset:
    return Dataset.from_dict({
        "instruction": ["Capital of France?", "Capital of France?", "2 + 2?", "2 + 2?"],
        "output": ["Paris. GOOD", "Lyon.", "5.", "4. GOOD"],
        "cluster_ids": [[0], [0], [1], [1]],
    })


def _sample_one_is_good(prompt: str) -> bool:
    query = prompt.rsplit("Input: ", 1)[1]
    return "GOOD" in query.split("[Sample 2]")[0]


@pytest.fixture
def logprob_server():
    servers = []

    def make(answer):
        servers.append(LogprobServer(answer))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _llm(server) -> LLMConfig:
    return LLMConfig(endpoints=[server.url], route="completion", server="llama_cpp", model="fake", cache=False)


def _score(server, swap: bool) -> list[float]:
    scorer = ComparativeScorer(_llm(server), ComparativeScorerConfig(verdict="probability", swap=swap, input_column=None))
    return scorer.score(_pairs(), progress=False)["score"], scorer


def test_pure_position_preference_cancels_exactly(logprob_server):
    server = logprob_server(lambda prompt: 0.83)  # always prefers whatever is shown first
    one_order, _ = _score(server, swap=False)
    assert one_order[0] > one_order[1] and one_order[2] > one_order[3]  # one order: position decides
    both, scorer = _score(server, swap=True)
    assert both[0] == both[1] and both[2] == both[3]  # exactly: a tie, not a near-tie
    assert both[0] == pytest.approx(50.5)
    assert scorer.report.position_bias_rate == 1.0  # every winner flipped with the order, and it is reported
    assert scorer.report.position_consistency == 0.0 and scorer.report.verdict == "probability"
    assert "position consistency 0.0%" in str(scorer.report)
    assert scorer.report.usage == {"calls": 4, "total_tokens": 400}
    assert all(p.endswith("\nOutput:") for p in server.prompts)


def test_content_preference_survives_and_bias_is_removed(logprob_server):
    d, bias = 0.2, 0.25  # P(first better) = 0.5 + d (first is the better one) or 0.5 - d, plus a position bias
    server = logprob_server(lambda prompt: 0.5 + (d if _sample_one_is_good(prompt) else -d) + bias)
    scores, scorer = _score(server, swap=True)
    good, bad = 1 + 99 * (0.5 + d), 1 + 99 * (0.5 - d)  # the bias is gone: only d is left
    assert scores == pytest.approx([good, bad, bad, good])
    # the bias is larger than d, so each order alone picks the first sample: every winner flips, yet the average is right
    assert scorer.report.position_bias_rate == 1.0


def test_server_without_logprobs_falls_back_to_sampled(fault_server):
    server = fault_server(responder=lambda body: '{"analysis": "x", "score_1": 70, "score_2": 30}')
    server.plan = [("status", 500, {"error": "logits_all is False"})]  # the log-probability request
    scorer = ComparativeScorer(server.config(), ComparativeScorerConfig(verdict="probability", input_column=None))
    scores = scorer.score(_pairs(), progress=False)["score"]
    assert scores == [70.0, 30.0, 70.0, 30.0]
    assert scorer.report.verdict == "sampled"


def test_expected_digit_score_by_hand():
    probs = {" 3": 0.1, " 7": 0.3, " 9": 0.1}  # unnormalised: 0.2, 0.6, 0.2 over the digits shown
    logprobs = {o: math.log(probs[o]) if o in probs else -math.inf for o in SCORE_OPTIONS}
    expected = 0.2 * 3 + 0.6 * 7 + 0.2 * 9  # 6.6 on 1-9
    assert expected_score(logprobs).score == pytest.approx(1 + (expected - 1) * 99 / 8)  # 70.3 on 1-100
    assert expected_value(logprobs, SCORE_OPTIONS) == pytest.approx(6.6)
    assert most_likely(logprobs) == " 7"
    assert [a for _, a in SCORE_PROMPT.examples] == ["3", "8"]  # SINGLE_PROMPT's 22 and 86 as digits
    source = FakeSource(lambda prompt, options: logprobs)
    results = score_verdicts(LLMConfig(), ["Instruction: a\nResponse: b"], source=source)
    assert results[0].value.score == pytest.approx(70.3) and source.prompts[0].endswith("Response: b\nOutput:")
    assert score_verdicts(LLMConfig(), ["x"], source=FakeSource(lambda p, o: logprobs, refuse=True)) is None
    nothing = score_verdicts(LLMConfig(), ["x"], source=FakeSource(lambda p, o: dict.fromkeys(o, -math.inf)))
    assert not nothing[0].ok and "DataError" in nothing[0].error and not nothing[0].transient


def test_singleton_probability_scores_and_fallback(logprob_server, fault_server):
    good = {"8": 0.5, "9": 0.25, "7": 0.25}  # E = 8 on 1-9
    server = logprob_server(lambda prompt: good if "GOOD" in prompt.rsplit("Input: ", 1)[1] else {"2": 0.75, "1": 0.25})
    scorer = SingletonScorer(_llm(server), ComparativeScorerConfig(verdict="probability", input_column=None))
    scores = scorer.score(_pairs(), progress=False)["score"]
    high, low = 1 + 7 * 99 / 8, 1 + 0.75 * 99 / 8
    assert scores == pytest.approx([high, low, low, high])
    report = scorer.report
    assert (report.judged, report.verdict, report.usage) == (4, "probability", {"calls": 4, "total_tokens": 400})
    assert report.position_bias_rate is None and report.position_consistency is None  # one sample: no position
    # a server without log-probabilities: sampled scores, the same columns and report fields
    plain = fault_server(responder=lambda body: '{"analysis": "x", "score": 70}')
    plain.plan = [("status", 500, {"error": "logits_all is False"})]
    fallback = SingletonScorer(plain.config(), ComparativeScorerConfig(verdict="probability", input_column=None))
    out = fallback.score(_pairs(), progress=False)
    assert out["score"] == [70.0] * 4 and out["n_comparisons"] == [1] * 4 and fallback.report.verdict == "sampled"


def test_first_preference_and_prompt():
    assert first_preference({" 1": math.log(0.3), " 2": math.log(0.1)}) == pytest.approx(0.75)
    assert first_preference({" 1": -math.inf, " 2": -1.0}) == 0.0
    answers = [a for _, a in PREFERENCE_PROMPT.examples]
    assert sorted(answers) == ["1", "1", "2", "2"]  # the demonstrations teach no position
    with pytest.raises(ConfigError):
        ComparativeScorerConfig(verdict="likely")


def test_spent_budget_is_a_transient_row_error():
    logprobs = {o: (0.0 if o == " 7" else -math.inf) for o in SCORE_OPTIONS}

    def answer(prompt, options):
        if len(source.prompts) > 2:
            raise BudgetExceededError("max_calls=2 reached")
        return logprobs

    source = FakeSource(answer)
    results = score_verdicts(LLMConfig(), ["a", "b", "c"], source=source)
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].transient and "BudgetExceededError" in results[2].error
