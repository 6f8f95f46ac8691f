"""Which endpoint failures are worth another attempt, and the errors a request ends with when they are not.

The policy, with `LLMConfig`'s defaults:

- 408, 429, 5xx, dropped connections and timeouts are retried, `max_retries` times (4), with backoff;
- 401, 403 and 404 are not: the token, the URL or the model name is wrong, every request would fail the same
  way, so `EndpointAccessError` is raised at once;
- other 4xx (400: prompt too long, 422: invalid parameters) concern one request and become that row's error;
- a server that accepts the connection and answers nothing fails the identity probe after `connect_timeout`
  (10 s) per attempt, so it is reported after about a minute, not after `timeout` (120 s) per attempt;
- `deadline` (600 s) bounds one request over all its attempts, however slow each one fails.

`Retries` holds that policy for one request, so the asynchronous loop of `LLMClient.generate` and the synchronous
one of `HTTPLogprobs` keep only their own plumbing (how they send, wait and count).
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Callable, Iterable, NoReturn

import httpx

from ..errors import EndpointAccessError, EndpointError, EndpointUnavailableError
from .redact import error_text, redact

if TYPE_CHECKING:
    from .config import LLMConfig

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


class Retries:
    """One request's attempts under `LLMConfig`'s policy (`max_retries`, `backoff`, `deadline`), for a loop that
    sends and waits in its own way.

    The loop calls `start` when its first attempt begins (the deadline counts from then), tells `failed` each
    failure (which raises at once what retrying cannot help), asks `next_delay` how long to wait before the next
    attempt (None: no attempt left, retries spent or the deadline would pass while waiting), and ends with
    `error()`.

    Args:
        config (`LLMConfig`): its `max_retries`, `backoff` and `deadline`.
        clock (`Callable[[], float]`): monotonic seconds (`time.monotonic`, or the event loop's `time`).
        secrets: values to cut from error texts (the token).
    """

    def __init__(self, config: LLMConfig, clock: Callable[[], float], secrets: Iterable[str | None] = ()):
        self.max_retries, self.backoff, self.deadline = config.max_retries, config.backoff, config.deadline
        self.clock = clock
        self.secrets = list(secrets)
        self.started: float | None = None
        self.attempts = 0  # failed so far: the number of the attempt under way
        self.last: BaseException | None = None
        self.deadline_hit = False

    def start(self) -> float:
        """The first attempt begins (later calls change nothing); returns when it began."""
        if self.started is None:
            self.started = self.clock()
        return self.started

    def failed(self, exc: BaseException, where: str, reject: Callable[[BaseException], BaseException], *,
               retryable: Callable[[BaseException], bool] = is_retryable) -> None:
        """Count a failed attempt at `where` (a replica's name). Raises `EndpointAccessError` for 401/403/404 and
        `reject(exc)` (the caller's error for a request refused for itself) when `retryable(exc)` is false;
        returns for a failure worth another attempt."""
        self.attempts += 1
        self.last = exc
        if is_access_refusal(exc):
            raise access_error(where, exc, self.secrets) from exc
        if not retryable(exc):
            self._raise(reject(exc), exc)

    @staticmethod
    def _raise(error: BaseException, cause: BaseException) -> NoReturn:
        if error is cause:  # the failure itself, as it came
            raise error
        raise error from cause

    def next_delay(self) -> float | None:
        """Seconds to wait before the next attempt, or None when there is none: the retries are spent, or waiting
        would reach the deadline (then `deadline_hit`)."""
        if self.attempts > self.max_retries:
            return None
        delay = backoff_delay(self.backoff, self.attempts - 1)
        if self.deadline is not None and self.elapsed() + delay >= self.deadline:
            self.deadline_hit = True
            return None
        return delay

    def elapsed(self) -> float:
        return self.clock() - (self.started if self.started is not None else self.clock())

    def error(self, where: str) -> EndpointError:
        """What the request ends with after its last attempt (`final_error`); raise it `from self.last`."""
        return final_error(where, self.attempts, self.elapsed(), self.last, deadline_hit=self.deadline_hit,
                           secrets=self.secrets)


__all__ = [
    "HTTPStatusError", "NoAnswer", "Retries", "access_error", "backoff_delay", "final_error", "is_access_refusal",
    "is_connection_failure", "is_retryable", "status_of",
]
