"""The text a model reads from a row: instruction (+ input) or a chat's user turns, and a response; one rule for
every tagger and judge, so they all see the same text of the same row."""

from __future__ import annotations

from typing import Any

from ..errors import DataError


def _user_turns(row: dict[str, Any], column: str, roles: tuple[str, ...]) -> list[str]:
    turns = row.get(column)
    if not isinstance(turns, list):
        raise DataError(f"column {column!r} must hold a list of messages")
    texts = [t.get("content") for t in turns if isinstance(t, dict) and t.get("role") in roles]
    return [t for t in texts if isinstance(t, str) and t.strip()]


def instruction_text(row: dict[str, Any], *, instruction_column: str = "instruction", input_column: str | None = "input",
                     messages_column: str | None = None, max_chars: int | None = None, required: bool = True) -> str:
    """A row's instruction as one line: the user turns of `messages_column`, or `instruction_column` followed by a
    non-empty `input_column`; whitespace collapsed, cut to `max_chars`.

    Raises `DataError` naming the column when `required` and the text is missing, empty or not a string (taggers);
    judges pass `required=False` and read an empty instruction as empty.
    """
    if messages_column:
        user = _user_turns(row, messages_column, ("user", "human"))
        if not user and required:
            raise DataError(f"column {messages_column!r} has no non-empty user turn")
        text = "\n".join(user)
    else:
        value = row.get(instruction_column)
        if required and (not isinstance(value, str) or not value.strip()):
            what = "is None" if value is None else "is empty" if isinstance(value, str) else \
                f"holds {type(value).__name__}, expected a string"
            raise DataError(f"column {instruction_column!r} {what}")
        text = value if isinstance(value, str) else ("" if value is None else str(value))
        extra = row.get(input_column) if input_column else None
        if extra is not None and not isinstance(extra, str) and required:
            raise DataError(f"column {input_column!r} holds {type(extra).__name__}, expected a string")
        if isinstance(extra, str) and extra.strip():
            text = f"{text}\n{extra}"
    text = " ".join(text.split())
    return text[:max_chars] if max_chars else text


def response_text(row: dict[str, Any], column: str, *, max_chars: int | None = None) -> str:
    """A row's response as one line: a string column, or the assistant turns of a messages column."""
    value = row.get(column)
    if isinstance(value, list):
        value = "\n".join(str(t.get("content", "")) for t in value if isinstance(t, dict) and t.get("role") == "assistant")
    text = " ".join(str(value or "").split())
    return text[:max_chars] if max_chars else text


__all__ = ["instruction_text", "response_text"]
