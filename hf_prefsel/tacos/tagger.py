"""Open-domain intent tagging (InsTag-style), as a `Dataset.map(batched=True)` callable."""

from __future__ import annotations

import json
from dataclasses import dataclass

from typing import Any, Sequence

from pydantic import BaseModel, Field, conlist, constr

from ..errors import ConfigError
from ..llm import FewShotPrompt, LLMConfig, LLMMapper, Result
from ..llm.prompt import Message
from ..llm.text import instruction_text
from ..options import split_config


class IntentTag(BaseModel):
    """One intent tag with the reason it applies."""

    tag: str = Field(min_length=1, max_length=64)
    explanation: str = Field(max_length=200)


# The tagger's reply, InsTag's format: a JSON list of 1 to 6 {"tag", "explanation"} objects.
IntentTags = conlist(IntentTag, min_length=1, max_length=6)
# The cheaper form without explanations (about a quarter of the completion tokens).
PlainTags = conlist(constr(min_length=1, max_length=64), min_length=1, max_length=6)


_SYSTEM = (
    "You tag what a user wants from an AI assistant. For each request give 3 to 6 intent tags: short "
    "lowercase English phrases naming the task and the subject (for example 'code debugging', 'travel "
    "planning', 'poem writing'){explain}. Reply with JSON only."
)

# Written by us: varied domains and tag counts (3 to 5), so a small base model learns the pattern rather than
# copying one example's tags or always giving the same number of them.
_EXAMPLES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Write a Python function that checks whether a number is prime.",
     (("code generation", "asks for a new function"), ("python", "the language is python"),
      ("prime numbers", "the function tests primality"))),
    ("My landlord kept my deposit without a reason. What can I do?",
     (("legal advice", "asks about tenant rights"), ("housing dispute", "a conflict over a rental deposit"),
      ("tenant rights", "the user rents a home"))),
    ("What is the difference between a virus and a bacterium?",
     (("biology", "about microorganisms"), ("concept comparison", "contrasts two things"),
      ("microbiology", "viruses and bacteria are microbes"), ("medicine", "both cause diseases"))),
    ("Give me a 3-day itinerary for Kyoto in autumn, on a budget.",
     (("travel planning", "wants a trip schedule"), ("japan", "the destination is Kyoto"),
      ("budgeting", "money is limited"), ("seasonal activities", "autumn is specified"))),
    ("Why does my SQL query return duplicate rows when I join two tables?",
     (("sql", "the question is about a query"), ("debugging", "something behaves unexpectedly"),
      ("database joins", "the join causes duplicates"))),
    ("Summarize this paragraph in one sentence: The city council voted on Tuesday to expand the bike lane network ...",
     (("summarization", "asks for a one-sentence summary"), ("local politics", "the text reports a council decision"),
      ("urban transport", "the decision is about bike lanes"))),
)


# The shortest prompt that kept validity (32 LIMA rows, Gemma 3 270M, free generation): 4 demonstrations gave
# 66% rows with 3-6 unique tags against 48% with all 6 and 56% with 3 (which also needed a repair), and a
# 65-token shorter prefix than 6.
DEFAULT_EXAMPLES = 4


def tagging_prompt(explanations: bool, n_examples: int | None = DEFAULT_EXAMPLES, *, system: bool = True) -> FewShotPrompt:
    """The built-in few-shot tagging prompt: the first `n_examples` demonstrations (`None`: all 6).

    Answers are compact JSON (no spaces after separators): with the Gemma tokenizer `","` is one
    token where `", "` is two, which saves one generated token per tag. `system=False` drops
    the instruction line (a base model learns the task from the demonstrations alone).
    """
    chosen = _EXAMPLES if n_examples is None else _EXAMPLES[: max(0, n_examples)]

    def answer(tags: tuple[tuple[str, str], ...]) -> str:
        value: Any = [{"tag": t, "explanation": e} for t, e in tags] if explanations else [t for t, _ in tags]
        return json.dumps(value, separators=(",", ":"))

    text = _SYSTEM.format(explain=", each with a one-sentence explanation" if explanations else "") if system else ""
    return FewShotPrompt(system=text, examples=tuple((query, answer(tags)) for query, tags in chosen))


TAGGING_PROMPT = tagging_prompt(explanations=True)
PLAIN_TAGGING_PROMPT = tagging_prompt(explanations=False)

# Longest plausible bare-tag answer (6 tags of a few tokens each) plus slack: a cap for runaway generations.
_PLAIN_MAX_TOKENS = 48


def is_embedded_model(llm: LLMConfig) -> bool:
    """True for the embedded Gemma (a small base model), in process or behind `serve_local()` servers."""
    return llm.is_embedded


@dataclass
class OpenTaggerConfig:
    """What `OpenTagger` reads and asks.

    Args:
        instruction_column (`str`, defaults to `"instruction"`).
        input_column (`str`, *optional*, defaults to `"input"`): appended to the instruction when present and non-empty.
        messages_column (`str`, *optional*): a chat column (`[{"role", "content"}, ...]`); when set, the
            user turns are tagged instead of the instruction columns.
        explanations (`bool`, *optional*): ask for an explanation per tag (InsTag's format). `False` asks for
            bare tags, about a quarter of the completion tokens. Default: `False` on the embedded Gemma (a
            small base model whose explanations cost most of the time) and `True` on any other endpoint.
        max_query_chars (`int`, defaults to 1500): longer queries are cut, to fit small context windows.
        n_examples (`int`, defaults to 4): how many of the 6 built-in demonstrations to use.
        rows_per_call (`int`, defaults to 1): instructions per request. Above 1 the model answers a JSON
            object keyed by row number; rows missing or invalid in it are asked again one by one.
        max_tokens (`int`, *optional*): completion-token cap per row. Default: 48 for bare tags (a valid
            answer needs about 20; the cap only bounds a runaway), the config's `max_tokens` with explanations.

    """

    instruction_column: str = "instruction"
    input_column: str | None = "input"
    messages_column: str | None = None
    explanations: bool | None = None
    max_query_chars: int = 1500
    n_examples: int = DEFAULT_EXAMPLES
    rows_per_call: int = 1
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.rows_per_call < 1:
            raise ConfigError(f"rows_per_call must be >= 1, got {self.rows_per_call}.")


class OpenTagger(LLMMapper):
    """Tag each instruction with open-domain intent tags (TACOS stage A, after InsTag).

    Adds `tags` (`list[str]`, lowercased, de-duplicated in order), `tag_explanations`
    (`list[str]`) and `tags_error` (`""`, or why the row has no tags; an empty string rather than
    `None` because `datasets` fixes a column's type from the first batch, and an all-`None` first batch
    would make later error messages unwritable).

    Args:
        llm (`LLMConfig`, *optional*): the tagging model; defaults to the embedded Gemma.
        config (`OpenTaggerConfig`, *optional*): columns, explanations, demonstrations, rows per call, token cap.
            Its fields may also be given as keyword arguments (`OpenTagger(llm, instruction_column="q")`).
        prompt (`FewShotPrompt`, *optional*): replaces the built-in few-shot prompt (its answers must
            match `explanations`).

    Example:
        >>> ds = ds.map(OpenTagger(), batched=True, batch_size=16)
        >>> ds[0]["tags"]
        ['code generation', 'python', 'prime numbers']
    """

    def __init__(self, llm: LLMConfig | None = None, config: OpenTaggerConfig | None = None, *,
                 prompt: FewShotPrompt | None = None, **kwargs: Any):
        config, kwargs = split_config(OpenTaggerConfig, config, kwargs)
        super().__init__(llm, **kwargs)
        self.instruction_column = config.instruction_column
        self.input_column = config.input_column
        self.messages_column = config.messages_column
        self.explanations = (not is_embedded_model(self.llm)) if config.explanations is None else bool(config.explanations)
        self.max_query_chars = config.max_query_chars
        self.prompt = prompt or tagging_prompt(self.explanations, config.n_examples)
        self.rows_per_call = config.rows_per_call
        self.max_tokens = config.max_tokens

    @property
    def output_type(self) -> Any:  # type: ignore[override]
        return IntentTags if self.explanations else PlainTags

    def columns_needed(self) -> Sequence[str]:
        return [self.messages_column] if self.messages_column else [self.instruction_column]

    def query_text(self, row: dict[str, Any]) -> str:
        """The text that gets tagged: the user turns, or instruction + input."""
        return instruction_text(row, instruction_column=self.instruction_column, input_column=self.input_column,
                                messages_column=self.messages_column, max_chars=self.max_query_chars)

    def build_messages(self, row: dict[str, Any]) -> list[Message]:
        return self.prompt.messages(self.query_text(row))

    def _overrides(self) -> dict[str, Any] | None:
        cap = self.max_tokens or (None if self.explanations else min(self.llm.max_tokens, _PLAIN_MAX_TOKENS))
        return {"max_tokens": cap} if cap else None

    def answer(self, rows: Sequence[dict[str, Any]], prompts: Sequence[list[Message]]) -> list[Result[Any]]:
        """One request per row, or `rows_per_call` rows per request."""
        if self.rows_per_call > 1:
            queries = [self.query_text(row) for row in rows]
            return self.client.run_structured_rows(
                self.prompt, queries, self.output_type, rows_per_call=self.rows_per_call, overrides=self._overrides()
            )
        return self.client.run_structured(
            prompts, self.output_type, progress=self.progress, desc=type(self).__name__, overrides=self._overrides()
        )

    def to_columns(self, results: Sequence[Result[Any]]) -> dict[str, list[Any]]:
        tags, explanations, errors = [], [], []
        for result in results:
            seen: dict[str, str] = {}
            for item in result.value or ():
                tag, why = (item.tag, item.explanation) if isinstance(item, IntentTag) else (item, "")
                name = " ".join(tag.lower().split())
                if name and name not in seen:
                    seen[name] = why.strip()
            tags.append(list(seen))
            explanations.append(list(seen.values()))
            errors.append("" if seen else (result.error or "the model returned no usable tag"))
        return {"tags": tags, "tag_explanations": explanations, "tags_error": errors}
