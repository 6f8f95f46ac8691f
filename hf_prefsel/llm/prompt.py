"""Prompts written once, as chat messages, and rendered for base models as a transcript.

A few-shot demonstration is an earlier user turn followed by the assistant's answer. The
chat route sends these messages as they are; the completion route renders them as a plain
text transcript (`Input: ...` / `Output: ...`) that a base model continues.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..errors import ConfigError

Message = dict[str, str]


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


@dataclass(frozen=True)
class TranscriptFormat:
    """How messages become a few-shot transcript for a base model.

    The rendered prompt ends with `assistant_prefix` and no trailing space: with the
    bundled Gemma a trailing space after the colon broke the pattern (0/20 valid vs 20/20).
    """

    user_prefix: str = "Input:"
    assistant_prefix: str = "Output:"
    example_separator: str = "\n\n"

    def stop_sequences(self) -> list[str]:
        """Where a completion must end: before the model starts inventing the next example."""
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
