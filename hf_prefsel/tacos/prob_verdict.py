"""Probability verdicts: the judge's preference read from token probabilities, averaged over both orders.

A sampled verdict keeps one number of the judge's reply and throws its uncertainty away; a small judge's sampled
numbers mostly follow the order the samples are shown in. Here the judge answers with the number of the better
sample (`1` or `2`) and its preference is the probability of that answer, P(1) / (P(1) + P(2)) (a
probability-weighted score as in G-Eval: Liu et al., 2023, on a two-point scale). Averaged over both orders in
probability space, a pure position preference cancels exactly: a judge giving the first sample probability q
whatever it shows gives sample a q in one order and 1 - q in the other, 0.5 on average.

The probabilities come from `hf_prefsel.llm.logprobs`: exact in process for the embedded model, from the top
log-probabilities of a short completion on servers that return them (llama.cpp / xllamacpp, vLLM, OpenAI). A server
that returns none (llama-cpp-python's server without `logits_all`: HTTP 500) gets sampled verdicts instead.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Sequence

from pydantic import BaseModel

from ..errors import DataError, EndpointError
from ..llm import FewShotPrompt, LLMConfig, Result, render_transcript
from ..llm.logprobs import HTTPLogprobs, LocalLogprobs, logprob_source

logger = logging.getLogger(__name__)

OPTIONS = (" 1", " 2")  # the answers as they follow `Output:` on the completion route


class ProbabilityJudgement(BaseModel):
    """A probability verdict in `PairJudgement`'s shape, so `ComparativeScorer` aggregates it the same way:
    `score_k` = 1 + 99 * P(sample k is better), floats on the 1-100 scale."""

    analysis: str = "probability verdict"
    score_1: float
    score_2: float


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


PREFERENCE_PROMPT = _preference_prompt()


def first_preference(logprobs: dict[str, float]) -> float:
    """P(sample 1 better) from the two answers' log-probabilities, renormalised over the two.

    Raises `DataError` when neither answer has any probability (e.g. both outside a server's top list).
    """
    one, two = logprobs[OPTIONS[0]], logprobs[OPTIONS[1]]
    if one == -math.inf and two == -math.inf:
        raise DataError("neither '1' nor '2' was among the judge's likely answers")
    top = max(one, two)
    a, b = math.exp(one - top), math.exp(two - top)
    return a / (a + b)


def judgement(p_first: float) -> ProbabilityJudgement:
    return ProbabilityJudgement(score_1=1.0 + 99.0 * p_first, score_2=1.0 + 99.0 * (1.0 - p_first))


def probability_verdicts(llm: LLMConfig, pair_texts: Sequence[str], *, prompt: FewShotPrompt = PREFERENCE_PROMPT,
                         source: LocalLogprobs | HTTPLogprobs | None = None) -> list[Result[ProbabilityJudgement]] | None:
    """One probability verdict per pair text (`pair_judge.pair_text`), in order; `None` when the server returns no
    log-probabilities at all (the caller falls back to sampled verdicts). A pair that fails alone gets `Result.error`.
    """
    source = source or logprob_source(llm)
    prompts = [render_transcript(prompt.messages(text)) for text in pair_texts]
    results: list[Result[ProbabilityJudgement]] = []
    if isinstance(source, HTTPLogprobs):
        try:
            first = source.choices(prompts[0], OPTIONS) if prompts else None
        except EndpointError as exc:
            logger.warning("No token log-probabilities from %s (%s): sampled verdicts instead", llm.endpoints[0], exc)
            return None
        answers = ([first] if prompts else []) + source.choices_many(prompts[1:], OPTIONS)
    else:
        answers = []
        for text in prompts:
            try:
                answers.append(source.choices(text, OPTIONS))
            except DataError as exc:
                answers.append(exc)
    for answer in answers:
        if isinstance(answer, Exception):
            results.append(Result(error=f"{type(answer).__name__}: {answer}", transient=not isinstance(answer, DataError)))
            continue
        try:
            results.append(Result(value=judgement(first_preference(answer))))
        except DataError as exc:
            results.append(Result(error=f"DataError: {exc}"))
    return results


__all__ = ["OPTIONS", "PREFERENCE_PROMPT", "ProbabilityJudgement", "first_preference", "probability_verdicts"]
