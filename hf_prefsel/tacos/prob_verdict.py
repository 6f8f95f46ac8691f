"""Probability verdicts: the judge's preference read from token probabilities, averaged over both orders.

A sampled verdict keeps one number of the judge's reply and throws its uncertainty away; a small judge's sampled
numbers mostly follow the order the samples are shown in. Here the judge answers with the number of the better
sample (`1` or `2`) and its preference is the probability of that answer, P(1) / (P(1) + P(2)) (a
probability-weighted score as in G-Eval: Liu et al., 2023, on a two-point scale). Averaged over both orders in
probability space, a pure position preference cancels exactly: a judge giving the first sample probability q
whatever it shows gives sample a q in one order and 1 - q in the other, 0.5 on average.

The one-sample baseline (`SingletonScorer`) asks for a digit score from 1 to 9 and takes its expected value under
the digits' probabilities, mapped onto 1-100. It sees one sample at a time, so no position arises there.

The probabilities come from `hf_prefsel.llm.logprobs` through `hf_prefsel.llm.prob_scores` (shared with TaP's
judge): exact in process for the embedded model, from the top log-probabilities of a short completion on servers
that return them (llama.cpp / xllamacpp, vLLM, OpenAI). A server that returns none (llama-cpp-python's server
without `logits_all`: HTTP 500) gets sampled verdicts instead.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from pydantic import BaseModel

from ..llm import FewShotPrompt, LLMConfig, Result, render_transcript
from ..llm.prob_scores import (DIGIT_SCALE, ask_choices, digit_options, expected_value, opened_source, option_probabilities,
                               read_answers, rescale)

OPTIONS = (" 1", " 2")  # the answers as they follow `Output:` on the completion route
SCORE_OPTIONS = digit_options(DIGIT_SCALE)  # the one-sample judge's digit answers and their values
SCORE_SCALE = (1, 100)  # what both verdicts are reported on, like the sampled judges' scores


class ProbabilityJudgement(BaseModel):
    """A probability verdict in `PairJudgement`'s shape, so `ComparativeScorer` aggregates it the same way:
    `score_k` = 1 + 99 * P(sample k is better), floats on the 1-100 scale."""

    analysis: str = "probability verdict"
    score_1: float
    score_2: float


class ProbabilityScore(BaseModel):
    """A one-sample probability verdict in `SingleJudgement`'s shape: the expected digit score mapped onto 1-100."""

    analysis: str = "probability verdict"
    score: float


def _preference_prompt() -> FewShotPrompt:
    """The pairwise prompt's rubric and demonstrations, answered with the better sample's number; one more
    demonstration makes the answers two `1` and two `2`, so the examples teach no position."""
    from .scorer import _RUBRIC, PAIRWISE_PROMPT

    examples = [(query, "1" if json.loads(reply)["score_1"] > json.loads(reply)["score_2"] else "2")
                for query, reply in PAIRWISE_PROMPT.examples]
    examples.append((
        "[Sample 1]\nInstruction: Name the largest planet.\nResponse: Saturn is the largest planet.\n\n[Sample 2]\n"
        "Instruction: Name the smallest planet.\nResponse: Mercury is the smallest planet in the Solar System.", "2"))
    return FewShotPrompt(
        system="You screen training data for a chat assistant. You see two samples on related topics. " + _RUBRIC
        + "Reply with the number of the sample whose response is better: 1 or 2.",
        examples=tuple(examples),
    )


def _score_prompt() -> FewShotPrompt:
    """The one-sample prompt's rubric and demonstrations, their 1-100 scores written as the nearest digit 1-9."""
    from .scorer import _RUBRIC, SINGLE_PROMPT

    lo, hi = DIGIT_SCALE
    examples = tuple((query, str(round(rescale(json.loads(reply)["score"], SCORE_SCALE, DIGIT_SCALE))))
                     for query, reply in SINGLE_PROMPT.examples)
    return FewShotPrompt(
        system="You screen training data for a chat assistant. " + _RUBRIC
        + f"Reply with one digit from {lo} (useless) to {hi} (excellent).",
        examples=examples,
    )


PREFERENCE_PROMPT = _preference_prompt()
SCORE_PROMPT = _score_prompt()


def first_preference(logprobs: dict[str, float]) -> float:
    """P(sample 1 better) from the two answers' log-probabilities, renormalised over the two.

    Raises `DataError` when neither answer has any probability (e.g. both outside a server's top list).
    """
    return option_probabilities({o: logprobs[o] for o in OPTIONS})[OPTIONS[0]]


def judgement(p_first: float) -> ProbabilityJudgement:
    return ProbabilityJudgement(score_1=rescale(p_first, (0, 1), SCORE_SCALE),
                                score_2=rescale(1.0 - p_first, (0, 1), SCORE_SCALE))


def expected_score(logprobs: dict[str, float]) -> ProbabilityScore:
    """The expected digit under the digits' renormalised probabilities, mapped onto 1-100."""
    return ProbabilityScore(score=rescale(expected_value(logprobs, SCORE_OPTIONS), DIGIT_SCALE, SCORE_SCALE))


def _verdicts(llm: LLMConfig, queries: Sequence[str], prompt: FewShotPrompt, options: Sequence[str], read: Any,
              source: Any) -> list[Result[Any]] | None:
    """`read(log-probabilities)` per query, or `None` when the judge returns no log-probabilities."""
    with opened_source(llm, source) as asked:
        answers = ask_choices(asked, [render_transcript(prompt.messages(q)) for q in queries], options)
    return None if answers is None else read_answers(answers, read)


def probability_verdicts(llm: LLMConfig, pair_texts: Sequence[str], *, prompt: FewShotPrompt = PREFERENCE_PROMPT,
                         source: Any = None) -> list[Result[ProbabilityJudgement]] | None:
    """One probability verdict per pair text (`pair_judge.pair_text`), in order; `None` when the server returns no
    log-probabilities at all (the caller falls back to sampled verdicts). A pair that fails alone gets `Result.error`.
    `source` is any log-probability source (`hf_prefsel.llm.logprobs`); by default the one for `llm`.
    """
    return _verdicts(llm, pair_texts, prompt, OPTIONS, lambda lp: judgement(first_preference(lp)), source)


def score_verdicts(llm: LLMConfig, sample_texts: Sequence[str], *, prompt: FewShotPrompt = SCORE_PROMPT,
                   source: Any = None) -> list[Result[ProbabilityScore]] | None:
    """One probability-weighted 1-100 score per sample text (`Instruction: ...\\nResponse: ...`), in order; `None`
    when the server returns no log-probabilities (the caller samples instead)."""
    return _verdicts(llm, sample_texts, prompt, tuple(SCORE_OPTIONS), expected_score, source)


__all__ = ["OPTIONS", "PREFERENCE_PROMPT", "SCORE_OPTIONS", "SCORE_PROMPT", "ProbabilityJudgement", "ProbabilityScore",
           "expected_score", "first_preference", "probability_verdicts", "score_verdicts"]
