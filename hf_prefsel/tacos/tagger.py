"""Open-domain intent tagging (InsTag-style), as a `Dataset.map(batched=True)` callable."""

from __future__ import annotations

from typing import Any, Sequence

from pydantic import BaseModel, Field, conlist

from ..errors import DataError
from ..llm import FewShotPrompt, LLMConfig, LLMMapper, Result, text_field
from ..llm.prompt import Message


class IntentTag(BaseModel):
    """One intent tag with the reason it applies."""

    tag: str = Field(min_length=1, max_length=64)
    explanation: str = Field(max_length=200)


# The tagger's reply, InsTag's format: a JSON list of 1 to 6 {"tag", "explanation"} objects.
IntentTags = conlist(IntentTag, min_length=1, max_length=6)


# Written by us. Single-line JSON answers keep the few-shot transcript regular for base models.
TAGGING_PROMPT = FewShotPrompt(
    system=(
        "You tag what a user wants from an AI assistant. For each request give 1 to 6 intent tags: short "
        "lowercase English phrases naming the task and the subject (for example 'code debugging', 'travel "
        "planning', 'poem writing'), each with a one-sentence explanation. Reply with JSON only."
    ),
    examples=(
        (
            "Write a Python function that checks whether a number is prime.",
            '[{"tag": "code generation", "explanation": "asks for a new function"}, '
            '{"tag": "python", "explanation": "the language is python"}, '
            '{"tag": "prime numbers", "explanation": "the function tests primality"}]',
        ),
        (
            "My landlord kept my deposit without a reason. What can I do?",
            '[{"tag": "legal advice", "explanation": "asks about tenant rights"}, '
            '{"tag": "housing", "explanation": "the problem is about renting"}, '
            '{"tag": "dispute resolution", "explanation": "wants steps to get the money back"}]',
        ),
        (
            "Summarize this paragraph in one sentence: The city council voted on Tuesday to expand the bike lane network ...",
            '[{"tag": "summarization", "explanation": "asks for a one-sentence summary"}, '
            '{"tag": "local news", "explanation": "the text reports a council decision"}, '
            '{"tag": "urban transport", "explanation": "the topic is bike lanes"}]',
        ),
    ),
)


class OpenTagger(LLMMapper):
    """Tag each instruction with open-domain intent tags (TACOS stage A, after InsTag).

    Adds `tags` (`list[str]`, lowercased, de-duplicated in order), `tag_explanations`
    (`list[str]`) and `tags_error` (`None`, or why the row has no tags).

    Args:
        llm (`LLMConfig`, *optional*): the tagging model; defaults to the embedded Gemma.
        instruction_column (`str`, defaults to `"instruction"`).
        input_column (`str`, *optional*, defaults to `"input"`): appended to the instruction when present and non-empty.
        messages_column (`str`, *optional*): a chat column (`[{"role", "content"}, ...]`); when set, the
            user turns are tagged instead of the instruction columns.
        max_query_chars (`int`, defaults to 1500): longer queries are cut, to fit small context windows.
        prompt (`FewShotPrompt`, *optional*): replaces the built-in few-shot prompt.

    Example:
        >>> ds = ds.map(OpenTagger(), batched=True, batch_size=16)
        >>> ds[0]["tags"]
        ['code generation', 'python', 'prime numbers']
    """

    output_type = IntentTags

    def __init__(
        self,
        llm: LLMConfig | None = None,
        *,
        instruction_column: str = "instruction",
        input_column: str | None = "input",
        messages_column: str | None = None,
        max_query_chars: int = 1500,
        prompt: FewShotPrompt = TAGGING_PROMPT,
        **kwargs: Any,
    ):
        super().__init__(llm, **kwargs)
        self.instruction_column = instruction_column
        self.input_column = input_column
        self.messages_column = messages_column
        self.max_query_chars = max_query_chars
        self.prompt = prompt

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

    def to_columns(self, results: Sequence[Result[list[IntentTag]]]) -> dict[str, list[Any]]:
        tags, explanations, errors = [], [], []
        for result in results:
            seen: dict[str, str] = {}
            if result.ok and result.value is not None:
                for item in result.value:
                    name = " ".join(item.tag.lower().split())
                    if name and name not in seen:
                        seen[name] = item.explanation.strip()
            tags.append(list(seen))
            explanations.append(list(seen.values()))
            errors.append(None if seen else (result.error or "the model returned no usable tag"))
        return {"tags": tags, "tag_explanations": explanations, "tags_error": errors}
