"""Atomic knowledge-concept tagging (TAGS stage 1), with an optional checker loop.

A concept is the specific piece of knowledge a sample exercises ("binary search on sorted
arrays", not "programming"): the knowledge tree is built from these, so vague concepts make
a shallow, useless tree. The checker re-reads the instruction with the proposed concepts and
returns a corrected list, for up to `check_rounds` rounds (stopping early once it agrees).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from pydantic import conlist, constr

from ..errors import ConfigError
from ..llm import FewShotPrompt, LLMConfig, LLMMapper, Result
from ..llm.prompt import Message
from ..llm.text import instruction_text
from ..options import split_config

# The tagger's and the checker's reply: 1 to 8 concept names.
Concepts = conlist(constr(min_length=2, max_length=80), min_length=1, max_length=8)

_EXAMPLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Write a function that finds an element in a sorted list in O(log n) time.",
     ("binary search", "sorted arrays", "logarithmic time complexity")),
    ("Why do leaves change colour in autumn?",
     ("chlorophyll breakdown", "carotenoid pigments", "plant response to shorter days")),
    ("Translate 'good morning' into Spanish and French.",
     ("spanish greetings", "french greetings", "translation of set phrases")),
    ("How should I invest $10,000 if I want low risk?",
     ("risk tolerance", "bond funds", "portfolio diversification", "index funds")),
    ("Prove that the square root of 2 is irrational.",
     ("proof by contradiction", "irrational numbers", "parity of integers")),
)

# Written by us.
CONCEPT_PROMPT = FewShotPrompt(
    system=(
        "List the atomic knowledge concepts a good answer to the request needs: specific, self-contained "
        "pieces of knowledge or skill (for example 'binary search on sorted arrays', not 'programming'). "
        "Give 1 to 8 short lowercase English phrases as a JSON list."
    ),
    examples=tuple((query, json.dumps(list(concepts))) for query, concepts in _EXAMPLES),
)

CHECKER_PROMPT = FewShotPrompt(
    system=(
        "You check knowledge-concept tags. Given a request and proposed concepts, return the corrected list: "
        "drop vague or wrong concepts, make broad ones specific, split compound ones, add what is missing. "
        "Return the list unchanged if it is already right. Reply with a JSON list."
    ),
    examples=(
        ("Request: Write a function that finds an element in a sorted list in O(log n) time.\n"
         'Proposed: ["programming", "binary search", "lists"]',
         '["binary search", "sorted arrays", "logarithmic time complexity"]'),
        ("Request: Why do leaves change colour in autumn?\n"
         'Proposed: ["chlorophyll breakdown", "carotenoid pigments", "plant response to shorter days"]',
         '["chlorophyll breakdown", "carotenoid pigments", "plant response to shorter days"]'),
        ("Request: Prove that the square root of 2 is irrational.\n"
         'Proposed: ["math", "square roots and proofs"]',
         '["proof by contradiction", "irrational numbers", "parity of integers"]'),
    ),
)


@dataclass
class ConceptTaggerConfig:
    """What `ConceptTagger` reads and asks.

    Args:
        instruction_column (`str`, defaults to `"instruction"`), input_column (`str`, *optional*, defaults to `"input"`).
        messages_column (`str`, *optional*): a chat column (`[{"role", "content"}, ...]`); when set, concepts are
            extracted from the user turns instead of the instruction columns.
        rows_per_call (`int`, defaults to 1): instructions per request. Above 1 the model answers a JSON object
            keyed by row number; rows missing or invalid in it are asked again one by one (as `OpenTagger`).
        check_rounds (`int`, defaults to 0): checker rounds after the first extraction (the paper's
            tagger/checker loop); each round costs one call per row still changing.
        max_query_chars (`int`, defaults to 1500).
    """

    instruction_column: str = "instruction"
    input_column: str | None = "input"
    messages_column: str | None = None
    rows_per_call: int = 1
    check_rounds: int = 0
    max_query_chars: int = 1500

    def __post_init__(self) -> None:
        if self.check_rounds < 0:
            raise ConfigError(f"check_rounds must be >= 0, got {self.check_rounds}.")
        if self.rows_per_call < 1:
            raise ConfigError(f"rows_per_call must be >= 1, got {self.rows_per_call}.")


class ConceptTagger(LLMMapper):
    """Extract atomic knowledge concepts per sample, as a `Dataset.map(batched=True)` callable.

    Adds `concepts` (`list[str]`, lowercased, de-duplicated), `concepts_error` (`""` or why the
    row has none; a string even when empty, see `OpenTagger`) and `concept_rounds` (checker rounds that changed the list).

    Args:
        llm (`LLMConfig`, *optional*): the model; defaults to the embedded Gemma.
        config (`ConceptTaggerConfig`, *optional*): columns, rows per call, checker rounds; its fields may also be
            given as keyword arguments (`ConceptTagger(llm, check_rounds=1)`).
        prompt (`FewShotPrompt`), checker_prompt (`FewShotPrompt`): replace the built-in prompts.

    Example:
        >>> ds = ds.map(ConceptTagger(check_rounds=1), batched=True)
    """

    output_type = Concepts

    def __init__(self, llm: LLMConfig | None = None, config: ConceptTaggerConfig | None = None, *,
                 prompt: FewShotPrompt = CONCEPT_PROMPT, checker_prompt: FewShotPrompt = CHECKER_PROMPT, **kwargs: Any):
        config, kwargs = split_config(ConceptTaggerConfig, config, kwargs)
        super().__init__(llm, **kwargs)
        self.instruction_column = config.instruction_column
        self.input_column = config.input_column
        self.messages_column = config.messages_column
        self.rows_per_call = config.rows_per_call
        self.check_rounds = config.check_rounds
        self.max_query_chars = config.max_query_chars
        self.prompt = prompt
        self.checker_prompt = checker_prompt

    def columns_needed(self) -> Sequence[str]:
        return [self.messages_column] if self.messages_column else [self.instruction_column]

    def query_text(self, row: dict[str, Any]) -> str:
        """The text concepts are extracted from: the user turns, or instruction + input (as `OpenTagger` reads it)."""
        return instruction_text(row, instruction_column=self.instruction_column, input_column=self.input_column,
                                messages_column=self.messages_column, max_chars=self.max_query_chars)

    def build_messages(self, row: dict[str, Any]) -> list[Message]:
        return self.prompt.messages(self.query_text(row))

    def answer(self, rows: Sequence[dict[str, Any]], prompts: Sequence[list[Message]]) -> list[Result[Any]]:
        if self.rows_per_call > 1:
            results = list(self.client.run_structured_rows(self.prompt, [self.query_text(r) for r in rows], Concepts,
                                                           rows_per_call=self.rows_per_call))
        else:
            results = list(super().answer(rows, prompts))
        rounds = [0] * len(results)
        todo = [i for i, r in enumerate(results) if r.ok]
        for _ in range(self.check_rounds):
            if not todo:
                break
            checks = self.client.run_structured(
                [self.checker_prompt.messages(f"Request: {self.query_text(rows[i])}\nProposed: {json.dumps(_clean(results[i].value))}")
                 for i in todo],
                Concepts, progress=self.progress, desc="Checking concepts",
            )
            changed = []
            for i, check in zip(todo, checks):
                if check.ok and _clean(check.value) != _clean(results[i].value):
                    results[i] = check
                    rounds[i] += 1
                    changed.append(i)
            todo = changed  # a list the checker accepted as it is needs no further round
        # remembered per result object, so rows skipped as bad input cannot shift the alignment
        self._rounds = {id(result): n for result, n in zip(results, rounds)}
        return results

    def to_columns(self, results: Sequence[Result[Any]]) -> dict[str, list[Any]]:
        by_result = getattr(self, "_rounds", {})
        rounds = [by_result.get(id(r), 0) for r in results]
        concepts = [_clean(r.value) if r.ok else [] for r in results]
        errors = ["" if c else (r.error or "the model returned no usable concept") for r, c in zip(results, concepts)]
        return {"concepts": concepts, "concepts_error": errors, "concept_rounds": rounds}


def _clean(values: Sequence[str] | None) -> list[str]:
    seen: dict[str, None] = {}
    for value in values or ():
        name = " ".join(value.lower().split())
        if name:
            seen.setdefault(name)
    return list(seen)
