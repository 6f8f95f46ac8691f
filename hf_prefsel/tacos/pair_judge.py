"""TACOS' judging stage as a `datasets` callable: one planned pair per row, so any executor can run it.

`ComparativeScorer` plans the pairs in this process (they depend on the whole pool's clusters), the executor judges
them where it runs (this process, or a Ray cluster), and the scorer aggregates the verdicts here again.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..llm import FewShotPrompt, LLMConfig, LLMMapper, Result
from ..llm.prompt import Message


def pair_text(a: tuple[str, str], b: tuple[str, str]) -> str:
    """The judge's input for two (instruction, response) samples, in the order shown."""
    return f"[Sample 1]\nInstruction: {a[0]}\nResponse: {a[1]}\n\n[Sample 2]\nInstruction: {b[0]}\nResponse: {b[1]}"


class PairJudge(LLMMapper):
    """Judge the pair in each row's `pair_text` column; adds `score_1`, `score_2` (1-100, `None` on failure) and
    `judge_error` (`""` when judged).

    Args:
        llm (`LLMConfig`, *optional*): the judge; defaults to the embedded Gemma.
        prompt (`FewShotPrompt`): the pairwise prompt (`hf_prefsel.tacos.scorer.PAIRWISE_PROMPT`).
        max_tokens (`int`, defaults to 128): reply cap (see `ComparativeScorerConfig.max_tokens`).
    """

    error_column = "judge_error"
    required_columns = ("pair_text",)

    def __init__(self, llm: LLMConfig | None = None, *, prompt: FewShotPrompt, max_tokens: int = 128, **kwargs: Any):
        super().__init__(llm, on_bad_row="record", **kwargs)
        self.prompt = prompt
        self.max_tokens = max_tokens

    @property
    def output_type(self) -> Any:  # type: ignore[override]
        from .scorer import PairJudgement

        return PairJudgement

    def build_messages(self, row: dict[str, Any]) -> list[Message]:
        return self.prompt.messages(row["pair_text"])

    def answer(self, rows: Sequence[dict[str, Any]], prompts: Sequence[list[Message]]) -> list[Result[Any]]:
        return self.client.run_structured(prompts, self.output_type, progress=self.progress, desc="Comparative scoring",
                                          overrides={"max_tokens": self.max_tokens})

    def to_columns(self, results: Sequence[Result[Any]]) -> dict[str, list[Any]]:
        return {
            "score_1": [r.value.score_1 if r.ok else None for r in results],
            "score_2": [r.value.score_2 if r.ok else None for r in results],
            "judge_error": ["" if r.ok else (r.error or "judge failed") for r in results],
        }


def verdicts(judged: Any) -> list[Result[Any]]:
    """The judged pairs dataset back as `Result`s (the scorer's aggregation reads those)."""
    from .scorer import PairJudgement

    return [Result(value=PairJudgement(analysis="", score_1=s1, score_2=s2)) if not err else Result(error=err)
            for s1, s2, err in zip(judged["score_1"], judged["score_2"], judged["judge_error"])]


__all__ = ["PairJudge", "pair_text", "verdicts"]
