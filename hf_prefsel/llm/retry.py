"""Which endpoint failures are worth another attempt, and the errors a request ends with when they are not.

The policy, with `LLMConfig`'s defaults:

- 408, 429, 5xx, dropped connections and timeouts are retried, `max_retries` times (4), with backoff;
- 401, 403 and 404 are not: the token, the URL or the model name is wrong, every request would fail the same
  way, so `EndpointAccessError` is raised at once;
- other 4xx (400: prompt too long, 422: invalid parameters) concern one request and become that row's error;
- a server that accepts the connection and answers nothing fails the identity probe after `connect_timeout`
  (10 s) per attempt, so it is reported after about a minute, not after `timeout` (120 s) per attempt;
- `deadline` (600 s) bounds one request over all its attempts, however slow each one fails.
"""

from __future__ import annotations

import asyncio
import random
from typing import Iterable

import httpx

from ..errors import EndpointAccessError, EndpointError, EndpointUnavailableError
from .redact import error_text, redact

_ACCESS_HINTS = {
    401: "the endpoint wants a valid token: check the one you pass (`token=`, or the variable `--token-env` names)",
    403: "the token was accepted but has no access to this endpoint or model: check its permissions, "
    "or request access to the model",
    404: "nothing answers at that route: check the URL (a base URL such as http://host:8000, no route) "
    "and the model name (`model=`, `--model`); the server lists its models at <URL>/v1/models",
}


class HTTPStatusError(EndpointError):
    """An endpoint answered with an HTTP error status. The message keeps a short, redacted part of the body."""

    def __init__(self, status: int, url: str, body: str, *, secrets: Iterable[str | None] = ()):
        self.status = status
        self.url = url
        super().__init__(f"{url} answered HTTP {status}: {redact(body, secrets=secrets)}")


class NoAnswer(TimeoutError):
    """A server accepted the connection but sent nothing back in time."""

    def __init__(self, url: str, seconds: float, what: str):
        super().__init__(f"{url} sent no answer to the {what} within {seconds:g} s")


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (ours, httpx's or `huggingface_hub`'s), or None."""
    if isinstance(exc, HTTPStatusError):
        return exc.status
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def is_retryable(exc: BaseException) -> bool:
    """429, 5xx, 408, timeouts and connection-level failures are worth retrying; other errors are not."""
    status = status_of(exc)
    if status is not None:
        return status in (408, 429) or status >= 500
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError, httpx.TransportError)):
        return True
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    return name == "InferenceTimeoutError" or (module.startswith("httpx") and name.endswith(("Error", "Timeout")))


def is_connection_failure(exc: BaseException) -> bool:
    """The endpoint could not be reached, or reached but silent (as opposed to answering with an error)."""
    if status_of(exc) is not None:
        return False
    return is_retryable(exc)


def is_access_refusal(exc: BaseException) -> bool:
    """401, 403 or 404: wrong token, URL or model; retrying cannot help and no other request will do better."""
    return status_of(exc) in _ACCESS_HINTS


def access_error(url: str, exc: BaseException, secrets: Iterable[str | None] = ()) -> EndpointAccessError:
    """The error for a refusal: what the server said (redacted) and what to check."""
    status = status_of(exc)
    hint = _ACCESS_HINTS.get(status or 0, "check the URL, the token and the model name").replace("<URL>", url)
    return EndpointAccessError(f"{url} refused the request (HTTP {status}, not retried): {hint}. Server said: "
                               f"{error_text(exc, secrets=secrets)}")


def backoff_delay(backoff: float, attempt: int) -> float:
    """Seconds to wait before retry number `attempt + 1`: doubling from `backoff`, capped at 20 s, with jitter."""
    return min(20.0, backoff * 2**attempt) * random.uniform(0.75, 1.25)


def final_error(
    where: str, attempts: int, elapsed: float, last: BaseException | None, *, deadline_hit: bool,
    secrets: Iterable[str | None] = (),
) -> EndpointError:
    """The error a request ends with after its last attempt: unreachable or silent endpoints get
    `EndpointUnavailableError` (which stops the whole run), servers that kept answering errors `EndpointError`."""
    reason = error_text(last, secrets=secrets) if last is not None else "no attempt made"
    spent = f"{attempts} attempt{'s' if attempts != 1 else ''} in {elapsed:.1f} s"
    if deadline_hit:
        spent += " (the request's deadline)"
    if last is not None and is_connection_failure(last):
        silent = isinstance(last, (TimeoutError, asyncio.TimeoutError, httpx.TimeoutException))
        what = "gave no answer" if silent else "could not be reached"
        return EndpointUnavailableError(
            f"{where} {what} after {spent}: {reason}. Check that the server is running and not stuck (e.g. `curl "
            f"{where.split(',')[0]}/v1/models`) and that the URL is right; raise `timeout`/`connect_timeout` for a slow "
            "server, or use the embedded model (no endpoint)."
        )
    return EndpointError(f"{where} kept failing after {spent}: {reason}")


__all__ = [
    "HTTPStatusError", "NoAnswer", "access_error", "backoff_delay", "final_error", "is_access_refusal",
    "is_connection_failure", "is_retryable", "status_of",
]
