"""A base for `Dataset.map(batched=True)` callables that ask the LLM one question per row.

The callable pickles to its configuration (no client, no locks, no counters) plus its result identity, so
`num_proc > 1` works (each worker process builds its own client on first use) and `datasets` reuses a cached
map only when it would hold the same results. The request cache is the source of truth: the identity names
the model each endpoint serves and the request cache's failure record, so after a failed row, or with another
model behind the URL, the map is computed again (paying only for what the request cache lacks), and after a
clean run it is reused as is.
"""

from __future__ import annotations

import abc
import logging
import uuid
import warnings
from typing import Any, ClassVar, Literal, Sequence

from ..errors import ConfigError, DataError, MissingColumnError
from .client import LLMClient, Result, get_client
from .config import LLMConfig
from .prompt import Message
from .usage import Usage

Batch = dict[str, list[Any]]
logger = logging.getLogger(__name__)


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

    def column_option(self, column: str) -> str | None:
        """The setting that named input `column` (`"instruction_column"`: mappers keep their config's column fields
        as attributes), for the missing-column message; `None` for a column fixed by `required_columns`."""
        return next((k for k, v in self.settings().items() if k.endswith("_column") and v == column), None)

    # -- machinery --------------------------------------------------------------------------
    @property
    def client(self) -> LLMClient:
        return get_client(self.llm)

    @property
    def usage(self) -> Usage:
        """Calls, tokens, cache hits and failures of this process's client for `self.llm`."""
        return self.client.usage

    def settings(self) -> dict[str, Any]:
        """The configuration: public attributes (the client, locks and counters are private)."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __getstate__(self) -> dict[str, Any]:
        # `datasets` fingerprints a map by pickling its function: the identity makes that fingerprint change
        # when the served model changes or requests failed (see `LLMClient.result_identity`)
        return {**self.settings(), "result_identity": self._result_identity()}

    def _result_identity(self) -> str:
        try:
            return self.client.result_identity()
        except Exception as exc:  # e.g. a refused probe: the map itself will raise it, with its message
            logger.debug("No result identity for %s (%s): its results will not be reused", type(self).__name__, exc)
            return f"unrepeatable:{uuid.uuid4().hex}"

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in state.items() if k != "result_identity"})

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({fields})"

    def __call__(self, batch: Batch, indices: Sequence[int] | int | None = None) -> Batch:
        if not batch:
            raise DataError(f"{type(self).__name__} got an empty batch; call it through `ds.map(..., batched=True)`.")
        if _is_single_row(batch, indices):
            return self._one_row(batch, indices)
        columns = list(batch)
        for name in self.columns_needed():
            if name not in batch:
                raise MissingColumnError(name, columns, option=self.column_option(name))
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
        # recorded before the columns exist: a map that raises now is not cached either
        self.client.note_failures(sum(r.transient for r in results))
        self.client.usage.add(rows=n, rows_failed=sum(not r.ok for r in results))
        return self.to_columns(results)

    def _one_row(self, row: dict[str, Any], index: Sequence[int] | int | None) -> dict[str, Any]:
        """`ds.map(mapper)` without `batched=True` hands over one row (a dict of values, not of lists): answer it
        as a batch of one, correctly but one request at a time."""
        if not getattr(self, "_warned_single", False):
            self._warned_single = True
            warnings.warn(
                f"{type(self).__name__} was called on single rows: `ds.map` without batched=True sends one request "
                "at a time. Pass batched=True (e.g. `ds.map(tagger, batched=True, batch_size=16)`) to send a batch's "
                "requests concurrently.",
                UserWarning,
                stacklevel=3,
            )
        out = self({k: [v] for k, v in row.items()}, None if index is None else [int(index)])  # type: ignore[arg-type]
        return {k: v[0] for k, v in out.items()}

    def answer(self, rows: Sequence[dict[str, Any]], prompts: Sequence[list[Message]]) -> list[Result[Any]]:
        """Ask the model; override to add rounds (e.g. a checker that revises the first answer)."""
        return self.client.run_structured(prompts, self.output_type, progress=self.progress, desc=type(self).__name__)


def _is_single_row(batch: Any, indices: Any) -> bool:
    """Whether `datasets` passed one row (`batched=False`) rather than a batch: its row type, an int index, or a
    scalar value where a batch has a column (a string there would be iterated character by character)."""
    kind = type(batch).__name__
    if kind in ("LazyRow", "LazyBatch"):
        return kind == "LazyRow"
    scalar = (str, bytes, dict, int, float, bool, type(None))
    return isinstance(indices, int) or any(isinstance(v, scalar) for v in batch.values())


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
