"""Prompts written once, as chat messages, and rendered for base models as a transcript.

A few-shot demonstration is an earlier user turn followed by the assistant's answer. The
chat route sends these messages as they are; the completion route renders them as a plain
text transcript (`Input: ...` / `Output: ...`) that a base model continues.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Sequence

from ..errors import ConfigError

Message = dict[str, str]

ROWS_NOTE = (
    "Several requests may come at once, numbered one per line; then answer with one JSON object that maps "
    "each number to its answer."
)


@dataclass(frozen=True)
class FewShotPrompt:
    """A system instruction plus worked examples.

    Args:
        system (`str`): what the task is, in plain words.
        examples (`tuple[tuple[str, str], ...]`): `(user, assistant)` demonstrations; each
            assistant answer is exactly the output wanted (e.g. one line of JSON).
    """

    system: str
    examples: tuple[tuple[str, str], ...] = ()

    def messages(self, query: str) -> list[Message]:
        """The chat messages for one query: system, demonstrations, then the query."""
        out: list[Message] = [{"role": "system", "content": self.system}]
        for user, assistant in self.examples:
            out.append({"role": "user", "content": user})
            out.append({"role": "assistant", "content": assistant})
        out.append({"role": "user", "content": query})
        return out

    @property
    def single_line_answers(self) -> bool:
        """True when every demonstrated answer is one line, so a reply can stop at the first newline."""
        return bool(self.examples) and all("\n" not in answer.strip() for _, answer in self.examples)

    def rows_messages(self, queries: Sequence[str]) -> list[Message]:
        """One prompt for several queries: numbered lines in, one JSON object keyed by number out.

        The demonstrations are regrouped into turns of exactly `len(queries)` rows (cycling through
        the examples, each shown at least once), so a base model sees the very shape it must
        continue. Every answer must be JSON; newlines inside a query are flattened because each
        query must stay on its numbered line.
        """
        if not queries:
            raise ConfigError("rows_messages needs at least one query.")
        size = len(queries)
        out: list[Message] = [{"role": "system", "content": f"{self.system} {ROWS_NOTE}".strip()}]
        examples = list(self.examples)
        turns = -(-len(examples) // size) if examples else 0
        for turn in range(turns):
            group = [examples[(turn * size + i) % len(examples)] for i in range(size)]
            answers = {str(i): json.loads(answer) for i, (_, answer) in enumerate(group, 1)}
            out.append({"role": "user", "content": numbered([q for q, _ in group])})
            out.append({"role": "assistant", "content": json.dumps(answers, ensure_ascii=False, separators=(",", ":"))})
        out.append({"role": "user", "content": numbered(queries)})
        return out


def numbered(queries: Sequence[str]) -> str:
    """`1. first query` / `2. second query` ..., one line each."""
    return "\n".join(f"{i}. {' '.join(str(q).split())}" for i, q in enumerate(queries, 1))


def answers_single_line(messages: Sequence[Message]) -> bool:
    """True when the prompt demonstrates answers and each is one line (so the reply may stop at a newline)."""
    answers = [m.get("content", "") for m in messages if m.get("role") == "assistant"]
    return bool(answers) and all("\n" not in a.strip() for a in answers)


_JSON_BOUNDARY = '"[{:,'


def _demonstrated_answers(messages: Sequence[Message]) -> list[str]:
    """The demonstrations' answers; empty unless there are two distinct ones (one shows no shared shape, only itself)."""
    answers = [m.get("content", "").strip() for m in messages if m.get("role") == "assistant"]
    return answers if len(set(answers)) >= 2 else []


def answer_prefix(messages: Sequence[Message]) -> str:
    """The opening that every demonstrated answer shares, cut back to a JSON boundary (e.g. `["` or `[{"tag":"`).

    On the completion route it can be written into the prompt instead of generated: the model
    continues right after it, which saves those tokens on every reply and keeps a base model
    from starting anything but the demonstrated shape. Empty with fewer than two distinct demonstrations.
    """
    answers = _demonstrated_answers(messages)
    if not answers:
        return ""
    shared = os.path.commonprefix(answers)
    while shared and shared[-1] not in _JSON_BOUNDARY:
        shared = shared[:-1]
    return shared if shared[:1] in ("[", "{") else ""


_JSON_CLOSERS = '"]}'


def answer_suffix(messages: Sequence[Message]) -> str:
    """The closing that every demonstrated answer ends with, made of JSON closers only (e.g. `"]` or `"}]`).

    Used as a stop sequence on the completion route, it ends the reply as soon as the answer
    closes instead of one token later at the newline (on TGI only, which keeps the matched stop in
    the reply). Empty with fewer than two distinct demonstrations, answers that do not end alike, or a
    closing that also occurs inside a demonstrated answer (nested objects).
    """
    answers = _demonstrated_answers(messages)
    if not answers:
        return ""
    shared = os.path.commonprefix([a[::-1] for a in answers])[::-1]
    closing = shared[len(shared.rstrip(_JSON_CLOSERS)) :]
    if not closing.strip('"') or any(a.count(closing) > 1 for a in answers):
        return ""  # a lone quote closes a string, not the answer; a closing seen earlier in a demo would stop too soon
    return closing


def prefix_key(messages: Sequence[Message]) -> str:
    """A short hash of everything before the last message: the part that requests of one prompt family share."""
    blob = json.dumps(list(messages[:-1]), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class TranscriptFormat:
    """How messages become a few-shot transcript for a base model.

    The rendered prompt ends with `assistant_prefix` and no trailing space: with the
    bundled Gemma a trailing space after the colon broke the pattern (0/20 valid vs 20/20).
    """

    user_prefix: str = "Input:"
    assistant_prefix: str = "Output:"
    example_separator: str = "\n\n"

    def stop_sequences(self, single_line: bool = False) -> list[str]:
        """Where a completion must end: before the model starts inventing the next example.

        With `single_line` (every demonstrated answer is one line) the answer ends at its newline,
        which saves the separator token and whatever the model would add on the next line.
        """
        if single_line:
            return ["\n"]
        return [self.example_separator, "\n" + self.user_prefix]


def render_transcript(messages: Sequence[Message], fmt: TranscriptFormat = TranscriptFormat()) -> str:
    """Render chat messages as a plain few-shot transcript ending with the assistant prefix."""
    if not messages or messages[-1].get("role") != "user":
        raise ConfigError("A prompt must end with a user message to be completed.")
    parts: list[str] = []
    pending_user: str | None = None
    for message in messages:
        role, content = message.get("role"), message.get("content", "")
        if role == "system":
            parts.append(content.strip())
        elif role == "user":
            if pending_user is not None:
                raise ConfigError("Two user messages in a row cannot be rendered as a transcript.")
            pending_user = content.strip()
        elif role == "assistant":
            if pending_user is None:
                raise ConfigError("An assistant message must follow a user message.")
            parts.append(f"{fmt.user_prefix} {pending_user}\n{fmt.assistant_prefix} {content.strip()}")
            pending_user = None
        else:
            raise ConfigError(f"Unknown message role {role!r}; use system, user or assistant.")
    parts.append(f"{fmt.user_prefix} {pending_user}\n{fmt.assistant_prefix}")
    return fmt.example_separator.join(parts)
