"""What one request says: the completion-route prompt, its prefilled answer opening, stop sequences and sampling
parameters (a mixin of `LLMClient`)."""

from __future__ import annotations

from typing import Any, Sequence

from .backends import Backend
from .config import LLMConfig
from .prompt import Message, TranscriptFormat, answer_prefix, answer_suffix, render_transcript


class RequestShape:
    """Prompt and parameters of a request, from the config and the messages."""

    config: LLMConfig
    transcript: TranscriptFormat
    backends: list[Backend]

    def _payload(
        self, backend: Backend, messages: Sequence[Message], params: dict[str, Any], schema: dict | None, prefill: str
    ) -> dict:
        route = self.config.resolved_route
        payload: dict[str, Any] = {"model": backend.model_id, "route": route, "params": params, "schema": schema}
        if route == "completion":
            payload["prompt"] = self._prompt(messages, prefill)
        else:
            payload["messages"] = list(messages)
        return payload

    def _prompt(self, messages: Sequence[Message], prefill: str) -> str:
        """The completion-route prompt; a prefilled answer opening follows `Output:` after one space, like the demos."""
        prompt = render_transcript(messages, self.transcript)
        return f"{prompt} {prefill}" if prefill else prompt

    def _prefill(self, messages: Sequence[Message], schema: dict | None, single_line: bool) -> str:
        """The shared answer opening to write into the prompt: free structured generation on the completion route only
        (a grammar must see the JSON from its first character)."""
        return answer_prefix(messages) if self.config.prefill and self._free_single_line(schema, single_line) else ""

    def _closing(self, messages: Sequence[Message], schema: dict | None, single_line: bool) -> str:
        """The shared answer closing to stop at as well (`end_at_answer`, free generation on the completion route),
        which ends the reply on its last bracket rather than one token later on the newline.

        Only on TGI, which keeps the matched stop sequence in the reply. llama.cpp, vLLM and OpenAI servers drop
        it, and then a reply stopped at its closing cannot be told from one stopped at the newline mid-answer:
        putting the closing back turned garbage such as `no idea` into a valid-looking `["no idea"]`.
        """
        if not (self.config.end_at_answer and self._free_single_line(schema, single_line)):
            return ""
        return answer_suffix(messages) if self.backends[0].server == "tgi" else ""

    def _free_single_line(self, schema: dict | None, single_line: bool) -> bool:
        """A one-line answer generated without a grammar, as a continued transcript (what prefill and closing fit)."""
        return single_line and schema is None and self.config.resolved_route == "completion"

    def _params(self, overrides: dict[str, Any] | None, *, single_line: bool = False) -> dict[str, Any]:
        params = self.config.generation_params()
        if self.config.resolved_route == "completion" and self.config.end_at_answer:
            params["stop"] = list(dict.fromkeys((params["stop"] or []) + self.transcript.stop_sequences(single_line)))
        if overrides:
            params.update(overrides)
        return params


__all__ = ["RequestShape"]
