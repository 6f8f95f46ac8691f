"""A likelihood quality signal that needs no instruction-tuned judge: the instruction-following difficulty (IFD).

IFD (Cherry LLM, Li et al., NAACL 2024; its small-model use: Superfiltering, Li et al., ACL 2024) is

    IFD(Q, A) = PPL(A | Q) / PPL(A),

the perplexity of the response A after its instruction Q over the perplexity of A alone, from the model's token
log-probabilities of A (`exp` of the mean negative log-probability per token). It measures how much the instruction
helps the model predict the response: below 1 the instruction makes the response more predictable (lower = it
helps more: the response fits its instruction), near or above 1 the response could as well follow no instruction.
Cherry and Superfiltering *select the highest* IFD among samples with IFD < 1 (hard to follow, yet aligned) and
drop IFD >= 1 as misaligned; `cherry_quality` is that rule as a quality value. Comparing two responses to the same
instruction, the lower IFD is the one the instruction explains better.

It costs one model pass over (instruction + response) and one over the response, no generation, and works with a
270M base model (Superfiltering used GPT-2): a cheap per-sample signal, e.g. as `quality_column` for TAGS. It does
not read correctness or safety. Measured against people's choice between two responses (README, judge agreement;
120 pairs, embedded model) neither the lower nor Cherry's higher IFD agreed clearly beyond a coin (0.43 and 0.56;
"the longer wins" 0.62). In TACOS it can replace the pairwise judge (`TacosConfig(scorer="ifd")`).

The log-probabilities are exact in process (the embedded model) and come from the server's prompt log-probabilities
over HTTP, which vLLM and OpenAI's legacy models (`echo`), TGI (`decoder_input_details`) and a llama-cpp-python
server started with `logits_all=True` return; llama.cpp's server returns none.

Lives in `tacos` next to the judges it can replace (`ComparativeScorer`); the log-probability plumbing it shares
with probability verdicts is `hf_prefsel.llm.logprobs`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from ..errors import ConfigError, DataError, MissingColumnError
from ..llm import LLMConfig
from ..llm.logprobs import LogprobSource, logprob_source
from ..llm.text import instruction_text, response_text

Batch = dict[str, list[Any]]

# The same cue before the response in both passes, so the ratio isolates what the instruction adds.
CONDITIONED_TEMPLATE = "Instruction: {instruction}\nResponse:"
ALONE_TEMPLATE = "Response:"


def perplexity(logprobs: Sequence[float]) -> float:
    """exp of the mean negative log-probability per token (NaN for no tokens)."""
    return math.exp(-sum(logprobs) / len(logprobs)) if logprobs else math.nan


def ifd_ratio(conditioned: Sequence[float], alone: Sequence[float]) -> float:
    """PPL(A | Q) / PPL(A) from the response tokens' log-probabilities with and without the instruction."""
    if not conditioned or not alone:
        return math.nan
    return math.exp(sum(alone) / len(alone) - sum(conditioned) / len(conditioned))


def cherry_quality(ifd: float, threshold: float = 1.0) -> float:
    """Cherry LLM's selection preference as a quality >= 0: the IFD itself below `threshold`, 0 at or above it
    (misaligned) and for a missing IFD."""
    return ifd if ifd == ifd and ifd < threshold else 0.0


def pmi_quality(pmi: float) -> float:
    """The instruction's total information about the response (nats) as a quality >= 0 (0 when it explains nothing)."""
    return max(0.0, pmi) if pmi == pmi else 0.0


def fit_quality(ifd: float) -> float:
    """How much the instruction helps, as a quality in [0, 1]: `1 - IFD`, 0 for IFD >= 1 or a missing IFD."""
    return max(0.0, 1.0 - ifd) if ifd == ifd else 0.0


QUALITIES = {"cherry": cherry_quality, "fit": fit_quality, "pmi": pmi_quality}


class IFDScorer:
    """`ds.map(IFDScorer(), batched=True)` adds `ppl_conditioned`, `ppl_alone`, `ifd`, `pmi` (NaN when they could not
    be computed, with the reason in `ifd_error`) and a quality column >= 0 for TAGS' `quality_column`. `pmi` is the
    same two passes summed instead of averaged: log P(A | Q) - log P(A) over A's tokens, the nats of the response the
    instruction explains (it grows with a response's length where the instruction keeps helping).

    Args:
        llm (`LLMConfig`, *optional*): the model; defaults to the embedded Gemma 3 270M in process (exact token
            log-probabilities). Endpoints work where the server returns prompt log-probabilities: vLLM or an
            OpenAI-legacy `/v1/completions` (`echo`), TGI (`decoder_input_details`), a llama-cpp-python server with
            `logits_all=True`. On one that does not (llama.cpp's server) the first row raises a one-line
            `EndpointError` naming what would work. A row too long for the server's context is recorded in
            `ifd_error` and the run goes on.
        instruction_column (`str`, defaults to `"instruction"`), input_column (`str`, *optional*, defaults to
            `"input"`), response_column (`str`, defaults to `"output"`): the sample's text.
        quality_column (`str`, defaults to `"ifd_quality"`): where the quality goes.
        quality (`"cherry" | "fit" | "pmi"`, defaults to `"cherry"`): `cherry` = Cherry LLM's selection rule (the
            highest IFD below 1: difficult, yet aligned), the use the papers validated by training on the selection;
            `fit` = `1 - IFD` (the instruction explains the response best); `pmi` = the total pointwise mutual
            information, floored at 0. Their agreement with people's choices between two responses is in the README
            (judge agreement); the default stays the papers' rule.
        max_chars (`int`, defaults to 1200): each instruction and response is cut to this many characters.
        source (`LogprobSource`, *optional*): where log-probabilities come from (another model, or a fake in tests);
            defaults to `hf_prefsel.llm.logprobs.logprob_source(llm)`.

    Example:
        >>> scored = ds.map(IFDScorer(), batched=True, batch_size=16)
        >>> result = TagsPipeline(config=TagsConfig(ratio=0.05, quality_column="ifd_quality")).run(scored)
    """

    def __init__(self, llm: LLMConfig | None = None, *, instruction_column: str = "instruction",
                 input_column: str | None = "input", response_column: str = "output",
                 quality_column: str = "ifd_quality", quality: str = "cherry", max_chars: int = 1200,
                 source: LogprobSource | None = None):
        if quality not in QUALITIES:
            raise ConfigError(f"IFDScorer: quality must be one of {', '.join(QUALITIES)}, got {quality!r}.")
        self.llm = llm or LLMConfig()
        self.instruction_column = instruction_column
        self.input_column = input_column
        self.response_column = response_column
        self.quality_column = quality_column
        self.quality = quality
        self.max_chars = max_chars
        self._source = source

    @property
    def source(self) -> LogprobSource:
        if self._source is None:
            self._source = logprob_source(self.llm)
        return self._source

    @property
    def usage(self) -> Any:
        """Model passes (`calls`) and tokens evaluated (`total_tokens`) so far, for the shared source."""
        return self.source.usage

    def __getstate__(self) -> dict[str, Any]:
        # `datasets` fingerprints the map by pickling this: the configuration, not the loaded model
        return {k: v for k, v in self.__dict__.items() if k != "_source"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._source = None

    def score_one(self, instruction: str, response: str) -> tuple[float, float, float]:
        """(PPL(A | Q), PPL(A), IFD) for one sample."""
        return self.measure(instruction, response)[:3]

    def measure(self, instruction: str, response: str) -> tuple[float, float, float, float]:
        """(PPL(A | Q), PPL(A), IFD, PMI) for one sample: PMI = log P(A | Q) - log P(A), summed over A's tokens."""
        if not response.strip():
            raise DataError("the response is empty")
        text = " " + response
        conditioned = self.source.continuation(CONDITIONED_TEMPLATE.format(instruction=instruction), text)
        alone = self.source.continuation(ALONE_TEMPLATE, text)
        return (perplexity(conditioned), perplexity(alone), ifd_ratio(conditioned, alone),
                float(sum(conditioned) - sum(alone)))

    def __call__(self, batch: Batch) -> Batch:
        for option, name in (("instruction_column", self.instruction_column), ("response_column", self.response_column)):
            if name not in batch:
                raise MissingColumnError(name, list(batch), option=option)
        n = len(batch[self.response_column])
        out: Batch = {"ppl_conditioned": [], "ppl_alone": [], "ifd": [], "pmi": [], "ifd_error": [],
                      self.quality_column: []}
        for i in range(n):
            row = {k: batch[k][i] for k in batch}
            instruction = instruction_text(row, instruction_column=self.instruction_column, input_column=self.input_column,
                                           max_chars=self.max_chars, required=False)
            response = response_text(row, self.response_column, max_chars=self.max_chars)
            try:
                cond, alone, ifd, pmi = self.measure(instruction, response)
                error = ""
            except DataError as exc:
                cond = alone = ifd = pmi = math.nan
                error = f"DataError: {exc}"
            out["ppl_conditioned"].append(cond)
            out["ppl_alone"].append(alone)
            out["ifd"].append(ifd)
            out["pmi"].append(pmi)
            out["ifd_error"].append(error)
            out[self.quality_column].append(QUALITIES[self.quality](pmi if self.quality == "pmi" else ifd))
        return out


__all__ = ["IFDScorer", "cherry_quality", "fit_quality", "pmi_quality", "ifd_ratio", "perplexity"]
