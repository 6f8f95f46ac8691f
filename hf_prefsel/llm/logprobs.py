"""Token log-probabilities from a model: in process (the embedded GGUF through llama-cpp-python) or over HTTP.

Two questions are asked of a model here, both without sampling a reply:
- `continuation`: the log-probability of each token of a given text after a given context (what perplexity-based
  scores such as IFD need): exact in process; over HTTP from prompt log-probabilities, which vLLM, TGI,
  llama-cpp-python and OpenAI's legacy models return and llama.cpp's server does not;
- `choices`: how likely each of a few short answers is right after a prompt (what probability verdicts need).

In process (`LocalLogprobs`, in `logprobs_local`, re-exported here) the whole distribution is available, so both
are exact. Over HTTP, `choices` asks for a short greedy completion with the top log-probabilities of each generated
token, in the endpoint's dialect (`logprobs_http`), and reads the first position whose top list holds one of the
choices; a choice outside the top list gets probability 0.

Results go into the request cache (`LLMConfig.cache_path`, as `LLMClient`'s replies do), so a rerun pays nothing
again; `LogprobUsage` counts model calls, tokens and cache hits. `logprob_source(llm)` gives the process's one source
per configuration (one model load, or one connection pool and dialect probe, and one open cache file).
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import itertools
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, TypeVar

import httpx

from ..errors import BudgetExceededError, ConfigError, DataError, EndpointError
from .cache import CachedReply, RequestCache, request_key
from .config import LLMConfig, bearer_token
from .logprobs_http import (
    PROMPT_LOGPROBS_FIX, TOP_LOGPROBS, choice_logprobs, choice_request, continuation_request, has_top_logprobs,
    native_choice_request, refuses_logprobs, reply_tokens, text_logprobs, too_long, top_logprob_lists,
)
from .prompt import Message, render_transcript
from .redact import error_text
from .retry import HTTPStatusError, NoAnswer, Retries, is_retryable
from .runloop import run_sync
from .usage import Budget

if TYPE_CHECKING:
    from .logprobs_local import LocalLogprobs

T = TypeVar("T")


@dataclass
class LogprobUsage:
    """Model calls and tokens evaluated so far (prompt and continuation tokens alike); `cache_hits` were answered
    from the request cache for free, `retries` are attempts repeated after a transient failure."""

    calls: int = 0
    total_tokens: int = 0
    cache_hits: int = 0
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, calls: int = 0, tokens: int = 0, *, cache_hits: int = 0, retries: int = 0) -> None:
        with self.lock:
            self.calls += calls
            self.total_tokens += tokens
            self.cache_hits += cache_hits
            self.retries += retries


class ResultCache:
    """Log-probability results in the request cache file (`RequestCache`), as JSON in `CachedReply.text`.

    The key is `request_key` of what decides a result (model, dialect, kind, texts, parameters); neither keys nor
    values hold a token. `path=None` keeps nothing.
    """

    def __init__(self, path: str | None):
        self.store = RequestCache(path) if path else None

    def get(self, payload: dict[str, Any], usage: LogprobUsage) -> tuple[str, Any]:
        """The payload's key and its stored result (`None`: not stored); a hit is counted in `usage`."""
        key = request_key(payload)
        hit = self.store.get(key) if self.store is not None else None
        if hit is None:
            return key, None
        usage.add(cache_hits=1)
        return key, json.loads(hit.text)

    def put(self, key: str, result: Any, tokens: int) -> None:
        if self.store is not None:  # -inf is written as JSON's `-Infinity`, which `json.loads` reads back
            self.store.put(key, CachedReply(json.dumps(result), tokens, 0))

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


def continuation_key(context: str, text: str, model: str, server: str) -> dict[str, Any]:
    """What decides a continuation's log-probabilities, for `ResultCache` (`server`: the dialect, or in process)."""
    return {"kind": "continuation", "model": model, "server": server, "context": context, "text": text}


class LogprobSource(Protocol):
    usage: LogprobUsage

    def continuation(self, context: str, text: str) -> list[float]:
        """Natural-log probability of each token of `text` following `context` (`""`: the start of a document)."""

    def choices(self, prompt: str | Sequence[Message], options: Sequence[str]) -> dict[str, float]:
        """Log-probability of each option as the very next text after `prompt` (`-inf` when the server hid it).
        A string is completed as it is; messages go to the chat route (rendered as a transcript on the completion
        route)."""


class SharedSource:
    """What `close()` means for a log-probability source: release its connections and cache file, except for the
    process's shared sources (`logprob_source`), which every run reuses and only `close_logprob_sources()` closes."""

    shared = False

    def close(self) -> None:
        if not self.shared:
            self._release()

    def _release(self) -> None:
        raise NotImplementedError


class HTTPLogprobs(SharedSource):
    """Token log-probabilities from a TGI, vLLM, llama.cpp or OpenAI-compatible server, in its own dialect.

    The dialect and the model id are learnt once, by the probe `LLMClient` uses (`HTTPBackend.prepare`); requests
    go round the replicas, are retried after transient failures (`retry`: 408/429/5xx, dropped connections,
    timeouts; 401/403/404 raise `EndpointAccessError` at once) within `LLMConfig`'s timeouts and deadline, and
    their results are kept in the request cache (`LLMConfig.cache`/`cache_path`). Requests are held to
    `LLMConfig.max_calls` and `max_total_tokens` (every attempt is a call; cache hits are free) as `LLMClient`'s
    are, per source: the shared source of a configuration (`logprob_source`) spends one budget for the process.

    Args:
        llm (`LLMConfig`): its endpoints, model, token, route, timeouts, retries and cache are used.
        max_tokens (`int`, defaults to 3): tokens generated to reach the answer (Gemma writes `Output: 1` as
            `:`, ` `, `1`, so the digit is the second generated token).
        workers (`int`, defaults to 4): requests in flight at once in `choices_many`.
    """

    def __init__(self, llm: LLMConfig, *, max_tokens: int = 3, workers: int = 4):
        if not llm.endpoints:
            raise ConfigError("HTTPLogprobs needs an endpoint; use LocalLogprobs for the embedded model.")
        self.llm = llm
        self.max_tokens = max_tokens
        self.workers = workers
        self.usage = LogprobUsage()
        self.budget = Budget(llm.max_calls, llm.max_total_tokens, self.usage)
        self.cache = ResultCache(llm.cache_file)
        token = bearer_token(llm)
        self._secrets = [token]
        self._http = httpx.Client(headers={"Authorization": f"Bearer {token}"} if token else {},
                                  timeout=httpx.Timeout(llm.timeout, connect=llm.connect_timeout))
        self._turn = itertools.count()
        self._dialect: tuple[str, str] | None = None
        self._native = False  # a llama.cpp server whose `/v1/completions` gave no log-probabilities
        self._lock = threading.Lock()

    @property
    def dialect(self) -> tuple[str, str]:
        """(server kind, model id): `LLMConfig.server` and `model`, or what the first endpoint says (asked once)."""
        with self._lock:
            if self._dialect is None:
                self._dialect = self._retrying("probe", lambda _: self._probe())
            return self._dialect

    def _probe(self) -> tuple[str, str]:
        from .backends import HTTPBackend

        backend = HTTPBackend(self.llm.endpoints[0], self.llm)

        async def probe() -> None:
            try:
                await asyncio.wait_for(backend.prepare(), self.llm.connect_timeout)
            except TimeoutError:
                raise NoAnswer(backend.name, self.llm.connect_timeout, "server probe") from None
            finally:
                await backend.aclose()

        run_sync(probe())
        return backend.server, backend.model_id

    def _retrying(self, what: str, attempt: Callable[[str], T], *, paid: bool = False) -> T:
        """`attempt(base URL)` on the replicas in turn, under `LLMConfig`'s retry policy (see `retry`); a `paid`
        attempt is first reserved from the budget (`BudgetExceededError` when it is spent)."""
        retries = Retries(self.llm, time.monotonic, self._secrets)
        retries.start()
        bases = self.llm.endpoints
        while True:
            base = bases[next(self._turn) % len(bases)]
            if paid:
                self.budget.reserve()
            try:
                return attempt(base)
            except Exception as exc:  # classified by `retries`, as `LLMClient.generate` classifies them
                retries.failed(exc, base, lambda e: self._rejected(base, what, e),
                               retryable=lambda e: is_retryable(e) and not refuses_logprobs(e))
            finally:
                if paid:
                    self.budget.release()
            delay = retries.next_delay()
            if delay is None:
                raise retries.error(", ".join(bases)) from retries.last
            self.usage.add(retries=1)
            time.sleep(delay)

    def _rejected(self, base: str, what: str, exc: BaseException) -> BaseException:
        """A failure retrying cannot help: our own errors as they are, others wrapped with the endpoint's name."""
        if isinstance(exc, EndpointError):
            return exc
        return EndpointError(f"{base} failed the {what}: {error_text(exc, secrets=self._secrets)}")

    def _post(self, base: str, route: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{base}{route}"
        response = self._http.post(url, json=body)
        self.usage.add(calls=1)
        if response.status_code >= 400:
            raise HTTPStatusError(response.status_code, url, response.text, secrets=self._secrets)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise EndpointError(f"{url} answered with something other than a JSON object.")
        return data

    def _ask(self, route: str, body: dict[str, Any], server: str) -> dict[str, Any]:
        """POST `body` to `route` with retries; the model and llama.cpp's prompt reuse are added as `llm/` adds them."""
        body = dict(body)
        if self.llm.model and route.startswith("/v1/"):
            body["model"] = self.llm.model
        if server == "llama_cpp":
            body["cache_prompt"] = self.llm.prefix_reuse
        try:
            data = self._retrying("log-probability request", lambda base: self._post(base, route, body), paid=True)
        except HTTPStatusError as exc:
            if too_long(exc):  # this row's problem, not the server's: the run goes on without it
                raise DataError(f"the text does not fit the model's context ({exc})") from exc
            raise
        self.usage.add(tokens=reply_tokens(data))
        return data

    def continuation(self, context: str, text: str) -> list[float]:
        """From the prompt log-probabilities of `context + text` (`echo` on `/v1/completions`, TGI's
        `decoder_input_details`).

        Raises:
            `EndpointError`: the server has none (llama.cpp's server; a server that ignores `echo`), naming the fix.
            `DataError`: the text does not fit the server's context (HTTP 400/413/422 saying so).
        """
        server, model = self.dialect
        route, body = continuation_request(server, context + text)
        key, stored = self.cache.get(continuation_key(context, text, model, server), self.usage)
        if stored is not None:
            return stored
        try:
            data = self._ask(route, body, server)
        except HTTPStatusError as exc:  # refused (400/422), or a model without logits: say what would work
            raise EndpointError(f"{exc}. If the server cannot return prompt log-probabilities, "
                                f"{PROMPT_LOGPROBS_FIX}.") from exc
        logprobs = text_logprobs(data, context, text)
        self.cache.put(key, logprobs, reply_tokens(data))
        return logprobs

    def choices(self, prompt: str | Sequence[Message], options: Sequence[str]) -> dict[str, float]:
        """A string prompt is completed as it is; messages go to the chat route when `LLMConfig` resolves to it
        (the default for endpoints), else they are rendered as a transcript and completed.

        Raises:
            `EndpointError`: the server returns no token log-probabilities (callers fall back to sampled verdicts).
            `DataError`: the prompt does not fit the server's context.
        """
        server, model = self.dialect
        route = "completion" if isinstance(prompt, str) else self.llm.resolved_route
        if route == "completion" and not isinstance(prompt, str):
            prompt = render_transcript(prompt)
        key, stored = self.cache.get({"kind": "choices", "model": model, "server": server, "route": route,
                                      "prompt": prompt if isinstance(prompt, str) else list(prompt),
                                      "options": list(options), "max_tokens": self.max_tokens}, self.usage)
        if stored is not None:
            return stored
        data = self._choice_reply(server, route, prompt)
        result = choice_logprobs(top_logprob_lists(data), options)
        self.cache.put(key, result, reply_tokens(data))
        return result

    def _choice_reply(self, server: str, route: str, prompt: str | Sequence[Message]) -> dict[str, Any]:
        """The reply holding the top log-probabilities; a llama.cpp build whose `/v1/completions` ignores `logprobs`
        is asked on its own `/completion` with `n_probs` (and directly from then on)."""
        native = server == "llama_cpp" and route == "completion"
        if not (native and self._native):
            data = self._ask(*choice_request(server, route, prompt, self.max_tokens), server)
            if not native or has_top_logprobs(data):
                return data
            self._native = True
        return self._ask(*native_choice_request(str(prompt), self.max_tokens), server)

    def choices_many(self, prompts: Sequence[str | Sequence[Message]],
                     options: Sequence[str]) -> list[dict[str, float] | Exception]:
        """`choices` for many prompts, `workers` at a time; a failed request is returned as its exception (a spent
        budget too, as `LLMClient` makes it that row's error)."""

        def one(prompt: str | Sequence[Message]) -> dict[str, float] | Exception:
            try:
                return self.choices(prompt, options)
            except (EndpointError, BudgetExceededError, httpx.HTTPError, ValueError) as exc:
                return exc

        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(one, prompts))

    def _release(self) -> None:
        self._http.close()
        self.cache.close()


_SOURCES: dict[tuple[Any, ...], LocalLogprobs | HTTPLogprobs] = {}
_SOURCES_LOCK = threading.Lock()
_CLOSE_AT_EXIT = False  # `close_logprob_sources` is registered with `atexit`


def logprob_source(llm: LLMConfig) -> LocalLogprobs | HTTPLogprobs:
    """The process's source for `llm`, made once per equivalent configuration and shared, as `get_client` shares
    clients: in process for the embedded model (`LLMConfig()` without endpoints, and `serve_local()`'s servers too,
    which are started without the prompt logits that log-probabilities need: the same model file, read exactly here;
    one model per file, context size, cache file and budget), else HTTP (one connection pool, dialect probe, cache file and budget per endpoints, token and settings). Both keep results in
    the request cache when `llm.cache` is on. A shared source stays open for the process (its `close()` keeps it
    open, so every run can reuse it); `close_logprob_sources()` closes them, and runs at interpreter exit."""
    if llm.is_embedded:
        cache_path = llm.cache_file
        n_ctx = min(llm.local_n_ctx, 2048)
        key: tuple[Any, ...] = ("local", os.getpid(), llm.local_model_path, n_ctx, cache_path, llm.max_calls,
                                llm.max_total_tokens)

        def make() -> LocalLogprobs | HTTPLogprobs:
            from .logprobs_local import LocalLogprobs

            return LocalLogprobs(llm.local_model_path, n_ctx=n_ctx, n_threads=llm.local_n_threads, cache_path=cache_path,
                                 max_calls=llm.max_calls, max_total_tokens=llm.max_total_tokens)
    else:
        token = hashlib.sha256((bearer_token(llm) or "").encode()).hexdigest()
        key = ("http", os.getpid(), json.dumps(llm.fingerprint_state(), sort_keys=True, default=str), token)

        def make() -> LocalLogprobs | HTTPLogprobs:
            return HTTPLogprobs(llm)
    global _CLOSE_AT_EXIT
    with _SOURCES_LOCK:
        if key not in _SOURCES:
            _SOURCES[key] = make()
            _SOURCES[key].shared = True
            if not _CLOSE_AT_EXIT:  # before the interpreter tears down the libraries the sources use
                atexit.register(close_logprob_sources)
                _CLOSE_AT_EXIT = True
        return _SOURCES[key]


def close_logprob_sources() -> None:
    """Close this process's shared sources (their connections, cache files and in-process models); `logprob_source`
    makes new ones. Registered with `atexit` by the first `logprob_source`, so models are freed while llama-cpp-python
    can still free them."""
    with _SOURCES_LOCK:
        sources = list(_SOURCES.values())
        _SOURCES.clear()
    for source in sources:
        source._release()


def __getattr__(name: str) -> Any:
    """`LocalLogprobs` lives in `logprobs_local` (which builds on this module) and is still importable from here."""
    if name == "LocalLogprobs":
        from .logprobs_local import LocalLogprobs

        return LocalLogprobs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["HTTPLogprobs", "LocalLogprobs", "LogprobSource", "LogprobUsage", "ResultCache", "SharedSource",
           "TOP_LOGPROBS", "choice_logprobs", "close_logprob_sources", "logprob_source", "top_logprob_lists"]
