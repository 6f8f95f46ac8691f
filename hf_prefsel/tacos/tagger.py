"""Open-domain intent tagging (InsTag-style), as a `Dataset.map(batched=True)` callable."""

from __future__ import annotations

import json

from typing import Any, Sequence

from pydantic import BaseModel, Field, conlist, constr

from ..errors import DataError
from ..llm import FewShotPrompt, LLMConfig, LLMMapper, Result, text_field
from ..llm.prompt import Message


class IntentTag(BaseModel):
    """One intent tag with the reason it applies."""

    tag: str = Field(min_length=1, max_length=64)
    explanation: str = Field(max_length=200)


# The tagger's reply, InsTag's format: a JSON list of 1 to 6 {"tag", "explanation"} objects.
IntentTags = conlist(IntentTag, min_length=1, max_length=6)
# The cheaper form without explanations (about a quarter of the completion tokens).
PlainTags = conlist(constr(min_length=1, max_length=64), min_length=1, max_length=6)


_SYSTEM = (
    "You tag what a user wants from an AI assistant. For each request give 1 to 6 intent tags: short "
    "lowercase English phrases naming the task and the subject (for example 'code debugging', 'travel "
    "planning', 'poem writing'){explain}. Reply with JSON only."
)

# Written by us: varied domains and tag counts, so a small base model learns the pattern rather than
# copying one example's tags or always giving the same number of them.
_EXAMPLES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Write a Python function that checks whether a number is prime.",
     (("code generation", "asks for a new function"), ("python", "the language is python"),
      ("prime numbers", "the function tests primality"))),
    ("My landlord kept my deposit without a reason. What can I do?",
     (("legal advice", "asks about tenant rights"), ("housing dispute", "a conflict over a rental deposit"))),
    ("What is the difference between a virus and a bacterium?",
     (("biology", "about microorganisms"), ("concept comparison", "contrasts two things"))),
    ("Give me a 3-day itinerary for Kyoto in autumn, on a budget.",
     (("travel planning", "wants a trip schedule"), ("japan", "the destination is Kyoto"),
      ("budgeting", "money is limited"), ("seasonal activities", "autumn is specified"))),
    ("Why does my SQL query return duplicate rows when I join two tables?",
     (("sql", "the question is about a query"), ("debugging", "something behaves unexpectedly"),
      ("database joins", "the join causes duplicates"))),
    ("Summarize this paragraph in one sentence: The city council voted on Tuesday to expand the bike lane network ...",
     (("summarization", "asks for a one-sentence summary"), ("local politics", "the text reports a council decision"))),
)


def _tagging_prompt(explanations: bool) -> FewShotPrompt:
    def answer(tags: tuple[tuple[str, str], ...]) -> str:
        if explanations:
            return json.dumps([{"tag": t, "explanation": e} for t, e in tags])
        return json.dumps([t for t, _ in tags])

    return FewShotPrompt(
        system=_SYSTEM.format(explain=", each with a one-sentence explanation" if explanations else ""),
        examples=tuple((query, answer(tags)) for query, tags in _EXAMPLES),
    )


TAGGING_PROMPT = _tagging_prompt(explanations=True)
PLAIN_TAGGING_PROMPT = _tagging_prompt(explanations=False)


class OpenTagger(LLMMapper):
    """Tag each instruction with open-domain intent tags (TACOS stage A, after InsTag).

    Adds `tags` (`list[str]`, lowercased, de-duplicated in order), `tag_explanations`
    (`list[str]`) and `tags_error` (`""`, or why the row has no tags; an empty string rather than
    `None` because `datasets` fixes a column's type from the first batch, and an all-`None` first batch
    would make later error messages unwritable).

    Args:
        llm (`LLMConfig`, *optional*): the tagging model; defaults to the embedded Gemma.
        instruction_column (`str`, defaults to `"instruction"`).
        input_column (`str`, *optional*, defaults to `"input"`): appended to the instruction when present and non-empty.
        messages_column (`str`, *optional*): a chat column (`[{"role", "content"}, ...]`); when set, the
            user turns are tagged instead of the instruction columns.
        explanations (`bool`, defaults to `True`): ask for an explanation per tag (InsTag's format).
            `False` asks for bare tags, about a quarter of the completion tokens: worth it on slow local models.
        max_query_chars (`int`, defaults to 1500): longer queries are cut, to fit small context windows.
        prompt (`FewShotPrompt`, *optional*): replaces the built-in few-shot prompt (its answers must
            match `explanations`).

    Example:
        >>> ds = ds.map(OpenTagger(), batched=True, batch_size=16)
        >>> ds[0]["tags"]
        ['code generation', 'python', 'prime numbers']
    """

    def __init__(
        self,
        llm: LLMConfig | None = None,
        *,
        instruction_column: str = "instruction",
        input_column: str | None = "input",
        messages_column: str | None = None,
        explanations: bool = True,
        max_query_chars: int = 1500,
        prompt: FewShotPrompt | None = None,
        **kwargs: Any,
    ):
        super().__init__(llm, **kwargs)
        self.instruction_column = instruction_column
        self.input_column = input_column
        self.messages_column = messages_column
        self.explanations = explanations
        self.max_query_chars = max_query_chars
        self.prompt = prompt or (TAGGING_PROMPT if explanations else PLAIN_TAGGING_PROMPT)

    @property
    def output_type(self) -> Any:  # type: ignore[override]
        return IntentTags if self.explanations else PlainTags

    def columns_needed(self) -> Sequence[str]:
        return [self.messages_column] if self.messages_column else [self.instruction_column]

    def query_text(self, row: dict[str, Any]) -> str:
        """The text that gets tagged: the user turns, or instruction + input."""
        if self.messages_column:
            turns = row.get(self.messages_column)
            if not isinstance(turns, list):
                raise DataError(f"column {self.messages_column!r} must hold a list of messages")
            user = [t.get("content") for t in turns if isinstance(t, dict) and t.get("role") in ("user", "human")]
            user = [u for u in user if isinstance(u, str) and u.strip()]
            if not user:
                raise DataError(f"column {self.messages_column!r} has no non-empty user turn")
            text = "\n".join(user)
        else:
            text = text_field(row, self.instruction_column)
            if self.input_column and self.input_column in row:
                extra = text_field(row, self.input_column, required=False)
                if extra.strip():
                    text = f"{text}\n{extra}"
        text = " ".join(text.split())
        return text[: self.max_query_chars]

    def build_messages(self, row: dict[str, Any]) -> list[Message]:
        return self.prompt.messages(self.query_text(row))

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
