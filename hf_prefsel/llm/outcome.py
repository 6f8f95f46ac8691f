"""The outcome of one structured request, and which errors end a whole run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import EndpointAccessError, EndpointUnavailableError

T = TypeVar("T")

# Errors that end the whole run rather than one row: every other request would fail the same way.
RUN_FATAL = (EndpointUnavailableError, EndpointAccessError)


@dataclass
class Result(Generic[T]):
    """The outcome of one structured request: a validated `value`, or an `error` saying why not.

    `transient` marks errors of the request rather than of the answer (an endpoint error, a spent budget): a rerun
    may succeed, so such a result must not be kept as final (`LLMMapper` records it in the request cache).
    """

    value: T | None = None
    error: str | None = None
    raw: str | None = None
    transient: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


__all__ = ["RUN_FATAL", "Result"]
