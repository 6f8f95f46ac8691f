"""A base for `Dataset.map(batched=True)` callables that ask the LLM one question per row.

The callable pickles to its configuration only (no client, no locks, no counters), so
`datasets` computes the same fingerprint for the same configuration and reuses its cache,
and `num_proc > 1` works: each worker process builds its own client on first use.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Literal, Sequence

from ..errors import ConfigError, DataError, MissingColumnError
from .client import LLMClient, Result, get_client
from .config import LLMConfig
from .prompt import Message
from .usage import Usage

Batch = dict[str, list[Any]]


class LLMMapper(abc.ABC):
    """Subclass and implement `build_messages` and `to_columns`.

    Args:
        llm (`LLMConfig`, *optional*): the model to call; defaults to the embedded local model.
        on_bad_row (`"raise" | "record"`, defaults to `"raise"`): what to do with a row whose
            input is empty or not text. `raise` stops with an error naming the row and column;
            `record` skips the LLM call and writes the reason in the error column.
        progress (`bool`, defaults to `False`): a progress bar per batch (datasets shows one per map).
    """

    output_type: ClassVar[type]
    error_column: ClassVar[str] = "error"

    def __init__(self, llm: LLMConfig | None = None, *, on_bad_row: Literal["raise", "record"] = "raise", progress: bool = False):
        if on_bad_row not in ("raise", "record"):
            raise ConfigError(f"on_bad_row must be 'raise' or 'record', got {on_bad_row!r}.")
        self.llm = llm or LLMConfig()
        self.on_bad_row = on_bad_row
        self.progress = progress

    # -- to implement -----------------------------------------------------------------------
    @abc.abstractmethod
    def build_messages(self, row: dict[str, Any]) -> list[Message]:
        """The prompt for one row. Raise `DataError` for unusable input (use `text_field`)."""

    @abc.abstractmethod
    def to_columns(self, results: Sequence[Result[Any]]) -> Batch:
        """New columns from the results; failed rows (`result.ok` is False) must still get a value."""

    required_columns: ClassVar[tuple[str, ...]] = ()

    def columns_needed(self) -> Sequence[str]:
        """Input columns this mapper reads (checked before any call is made)."""
        return self.required_columns

    # -- machinery --------------------------------------------------------------------------
    @property
    def client(self) -> LLMClient:
        return get_client(self.llm)

    @property
    def usage(self) -> Usage:
        """Calls, tokens, cache hits and failures of this process's client for `self.llm`."""
        return self.client.usage

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.__getstate__().items())
        return f"{type(self).__name__}({fields})"

    def __call__(self, batch: Batch, indices: Sequence[int] | None = None) -> Batch:
        if not batch:
            raise DataError(f"{type(self).__name__} got an empty batch; call it through `ds.map(..., batched=True)`.")
        columns = list(batch)
        for name in self.columns_needed():
            if name not in batch:
                raise MissingColumnError(name, columns)
        n = len(batch[columns[0]])
        rows = [{k: batch[k][i] for k in columns} for i in range(n)]
        prompts: list[list[Message]] = []
        positions: list[int] = []
        results: list[Result[Any]] = [Result(error="not run") for _ in range(n)]
        for i, row in enumerate(rows):
            try:
                prompts.append(self.build_messages(row))
                positions.append(i)
            except DataError as exc:
                where = f"row {indices[i]}" if indices is not None else f"row {i} of this batch"
                message = f"{where}: {exc}"
                if self.on_bad_row == "raise":
                    raise DataError(
                        f"{type(self).__name__}: {message}. Fix or filter the row, or pass on_bad_row='record' "
                        "to record such rows as failures and go on."
                    ) from exc
                results[i] = Result(error=f"DataError: {message}")
        if prompts:
            answered = self.answer([rows[i] for i in positions], prompts)
            for i, result in zip(positions, answered):
                results[i] = result
        return self.to_columns(results)

    def answer(self, rows: Sequence[dict[str, Any]], prompts: Sequence[list[Message]]) -> list[Result[Any]]:
        """Ask the model; override to add rounds (e.g. a checker that revises the first answer)."""
        return self.client.run_structured(prompts, self.output_type, progress=self.progress, desc=type(self).__name__)


def text_field(row: dict[str, Any], column: str, *, required: bool = True) -> str:
    """A row's text value, or a `DataError` naming the column when it is missing, empty or not a string."""
    value = row.get(column)
    if value is None:
        if required:
            raise DataError(f"column {column!r} is None")
        return ""
    if not isinstance(value, str):
        raise DataError(f"column {column!r} holds {type(value).__name__}, expected a string")
    if required and not value.strip():
        raise DataError(f"column {column!r} is empty")
    return value
