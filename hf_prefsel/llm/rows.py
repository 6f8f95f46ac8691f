"""Several rows per request (`rows_per_call`): one prompt of numbered queries, one JSON object of answers, and
the rows missing or invalid in it asked again on their own (a mixin of `LLMClient`)."""

from __future__ import annotations

import asyncio
from typing import Any, Sequence, TypeVar

from ..errors import BudgetExceededError, ConfigError, EndpointError, StructuredOutputError
from .outcome import RUN_FATAL, Result
from .prompt import FewShotPrompt, answers_single_line
from .redact import error_text
from .runloop import run_sync
from .structured import extract_json, rows_schema, schema_of, validate_value

T = TypeVar("T")


class SeveralRows:
    """`structured_rows` and its blocking face; relies on the client's `structured`, `generate` and counters."""

    async def structured_rows(
        self,
        prompt: FewShotPrompt,
        queries: Sequence[str],
        output_type: type[T],
        *,
        rows_per_call: int,
        overrides: dict[str, Any] | None = None,
    ) -> list[Result[T]]:
        """Answer `queries` with `prompt`, `rows_per_call` queries per request (a JSON object keyed by row number).

        A row whose answer is missing or invalid in the combined reply is asked again on its own
        (`structured`, with its repairs), so each result is as valid as one-row-per-call; those
        rows are counted in `usage.rows_fallback`. `overrides["max_tokens"]` is per row.
        """
        if rows_per_call < 1:
            raise ConfigError(f"rows_per_call must be >= 1, got {rows_per_call}.")
        chunks = [list(queries[i : i + rows_per_call]) for i in range(0, len(queries), rows_per_call)]
        answered = await self._gather([self._rows_call(prompt, c, output_type, overrides) for c in chunks],
                                      progress=False, desc="LLM")
        return [result for chunk in answered for result in chunk]

    async def _rows_call(
        self, prompt: FewShotPrompt, queries: list[str], output_type: type[T], overrides: dict[str, Any] | None
    ) -> list[Result[T]]:
        if len(queries) == 1:
            return [await self.structured(prompt.messages(queries[0]), output_type, overrides=overrides)]
        messages = prompt.rows_messages(queries)
        mode = await self.constrain_mode()
        schema = rows_schema(schema_of(output_type), len(queries)) if mode == "always" else None
        sampling = dict(overrides or {})
        per_row = sampling.get("max_tokens") or self.config.max_tokens
        sampling["max_tokens"] = per_row * len(queries) + 8
        results: list[Result[T] | None] = [None] * len(queries)
        try:
            reply = await self.generate(messages, schema=schema, overrides=sampling, single_line=answers_single_line(messages))
        except RUN_FATAL:
            self.usage.add(failures=1)
            raise
        except (EndpointError, BudgetExceededError) as exc:
            self.usage.add(failures=len(queries))
            return [Result(error=error_text(exc, secrets=self._secrets), transient=True) for _ in queries]
        try:
            obj = extract_json(reply.text)
        except StructuredOutputError:
            obj = None
        if isinstance(obj, dict):
            for i in range(len(queries)):
                item = obj.get(str(i + 1))
                if item is None:
                    continue
                try:
                    results[i] = Result(value=validate_value(item, output_type), raw=reply.text)
                except StructuredOutputError:
                    pass
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            self.usage.add(rows_fallback=len(missing))
            again = await asyncio.gather(
                *(self.structured(prompt.messages(queries[i]), output_type, overrides=overrides) for i in missing)
            )
            for i, result in zip(missing, again):
                results[i] = result
        return [r for r in results if r is not None]

    def run_structured_rows(
        self,
        prompt: FewShotPrompt,
        queries: Sequence[str],
        output_type: type[T],
        *,
        rows_per_call: int,
        overrides: dict[str, Any] | None = None,
    ) -> list[Result[T]]:
        """Blocking `structured_rows`: several queries per request, invalid rows re-asked one by one."""
        return run_sync(self.structured_rows(prompt, queries, output_type, rows_per_call=rows_per_call, overrides=overrides))


__all__ = ["SeveralRows"]
