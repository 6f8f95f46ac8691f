"""Probability-weighted scores: a judge's answer read from the probabilities of its possible answers.

A sampled score keeps one number of the judge's reply and drops its uncertainty. Here the few possible answers
(digits of a scale, or the number of the better sample) are scored as the next text after the prompt, renormalised
over themselves, and the score is their expected value (G-Eval: Liu et al., 2023). The answers should be single
tokens: in process every option's probability is exact, but a server only shows the top alternatives of the first
generated positions (`hf_prefsel.llm.logprobs`). Digits are single tokens in Gemma's tokenizer (and in most others),
the space before them a token of its own, so options are written `" 7"` as they follow `Output:` or `"key":`.

Shared by the TACOS scorers (`hf_prefsel.tacos.prob_verdict`) and TaP's judge (`hf_prefsel.tap.judge`), which also
share the fallback: a server that returns no log-probabilities makes `ask_choices` return `None`, and the caller
samples its scores instead.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

from ..errors import BudgetExceededError, DataError, EndpointError
from .config import LLMConfig
from .logprobs import LocalLogprobs, logprob_source
from .outcome import Result

logger = logging.getLogger(__name__)

T = TypeVar("T")

DIGIT_SCALE = (1, 9)  # asked instead of a scale whose values are not all single digits


def option_probabilities(logprobs: Mapping[str, float]) -> dict[str, float]:
    """The options' probabilities renormalised over the options themselves.

    Raises `DataError` when none has any probability (e.g. all outside a server's top list).
    """
    top = max(logprobs.values(), default=-math.inf)
    if top == -math.inf:
        raise DataError(f"none of {sorted(logprobs)} was among the judge's likely answers")
    weights = {o: math.exp(lp - top) for o, lp in logprobs.items()}
    total = sum(weights.values())
    return {o: w / total for o, w in weights.items()}


def expected_value(logprobs: Mapping[str, float], values: Mapping[str, float]) -> float:
    """The options' values weighted by their renormalised probabilities (`values` names every option)."""
    return sum(p * values[o] for o, p in option_probabilities(logprobs).items())


def most_likely(logprobs: Mapping[str, float]) -> str:
    """The option greedy decoding would pick among the options."""
    return max(logprobs, key=lambda o: logprobs[o])


def digit_scale(scale: tuple[int, int]) -> tuple[int, int]:
    """The scale a probability judge is asked on: `scale` when every value is one digit, else `DIGIT_SCALE`."""
    lo, hi = scale
    return (lo, hi) if 0 <= lo < hi <= 9 else DIGIT_SCALE


def digit_options(scale: tuple[int, int]) -> dict[str, int]:
    """The answers of a one-digit scale as they follow a colon (`" 1"` ... `" 9"`), with their values."""
    lo, hi = scale
    if not 0 <= lo < hi <= 9:
        raise ValueError(f"{scale} is not a one-digit scale")
    return {f" {v}": v for v in range(lo, hi + 1)}


def rescale(value: float, source: tuple[int, int], target: tuple[float, float]) -> float:
    """`value` on the `source` scale mapped linearly onto the `target` scale (ends onto ends)."""
    return target[0] + (value - source[0]) * (target[1] - target[0]) / (source[1] - source[0])


def ask_choices(source: Any, prompts: Sequence[str], options: Sequence[str], *,
                probe: bool = True) -> list[dict[str, float] | Exception] | None:
    """The options' log-probabilities after each prompt, in order; a prompt that fails alone is returned as its
    exception (`DataError`: no answer can be read, e.g. the prompt does not fit; others, a spent budget too, are
    transient: as with `LLMClient`, the row is retried by the next run).

    In process (`LocalLogprobs`) prompts are asked one at a time, so a prompt extending the previous one reuses its
    cache. Elsewhere, with `probe`, the first prompt is asked alone: an `EndpointError` there means the server
    returns no log-probabilities, and the answer is `None` (the caller samples instead); the rest go
    `choices_many` (requests in flight at once) when the source has it.
    """
    if isinstance(source, LocalLogprobs):
        return [_one(source, p, options, (DataError, BudgetExceededError)) for p in prompts]
    answers: list[dict[str, float] | Exception] = []
    rest = list(prompts)
    if probe and rest:
        try:
            answers.append(source.choices(rest.pop(0), options))
        except EndpointError as exc:
            logger.warning("No token log-probabilities from the judge (%s): sampled scores instead", exc)
            return None
        except (DataError, BudgetExceededError) as exc:
            answers.append(exc)
    if hasattr(source, "choices_many"):
        return answers + list(source.choices_many(rest, options))
    return answers + [_one(source, p, options, (EndpointError, DataError, BudgetExceededError, ValueError))
                      for p in rest]


def _one(source: Any, prompt: str, options: Sequence[str], caught: tuple[type[Exception], ...]) -> dict[str, float] | Exception:
    try:
        return source.choices(prompt, options)
    except caught as exc:
        return exc


def read_answers(answers: Sequence[Mapping[str, float] | Exception], read: Callable[[Mapping[str, float]], T]) -> list[Result[T]]:
    """`read(log-probabilities)` per answer of `ask_choices`, or the error: a failed question's exception (transient
    unless a `DataError`), or the `DataError` `read` raises (e.g. no option had any probability)."""
    out: list[Result[T]] = []
    for answer in answers:
        if not isinstance(answer, Exception):
            try:
                out.append(Result(value=read(answer)))
                continue
            except DataError as exc:
                answer = exc
        out.append(Result(error=f"{type(answer).__name__}: {answer}", transient=not isinstance(answer, DataError)))
    return out


@contextmanager
def opened_source(llm: LLMConfig, source: Any = None) -> Iterator[Any]:
    """`source`, or the log-probability source for `llm` (`logprob_source`); one opened here for a server (its
    connections and cache file) is closed at the end, the shared in-process model is kept."""
    if source is not None:
        yield source
        return
    source = logprob_source(llm)
    try:
        yield source
    finally:
        if not isinstance(source, LocalLogprobs):
            source.close()


class LogprobMeter:
    """The calls and tokens a log-probability source spends from construction to `delta()`."""

    def __init__(self, source: Any):
        self.source = source
        self._calls, self._tokens = source.usage.calls, source.usage.total_tokens

    def delta(self) -> dict[str, int]:
        usage = self.source.usage
        return {"calls": usage.calls - self._calls, "total_tokens": usage.total_tokens - self._tokens}


__all__ = ["DIGIT_SCALE", "LogprobMeter", "ask_choices", "digit_options", "digit_scale", "expected_value",
           "most_likely", "opened_source", "option_probabilities", "read_answers", "rescale"]
