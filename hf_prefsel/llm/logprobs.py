"""Token log-probabilities from a model: in process (the embedded GGUF through llama-cpp-python) or over HTTP.

Two questions are asked of a model here, both without sampling a reply:
- `continuation`: the log-probability of each token of a given text after a given context (what perplexity-based
  scores such as IFD need): exact in process; over HTTP from prompt log-probabilities, which vLLM, TGI,
  llama-cpp-python and OpenAI's legacy models return and llama.cpp's server does not;
- `choices`: how likely each of a few short answers is right after a prompt (what probability verdicts need).

In process the whole distribution is available, so both are exact. Over HTTP, `choices` asks for a short greedy
completion with the top log-probabilities of each generated token, in the endpoint's dialect
(`logprobs_http`), and reads the first position whose top list holds one of the choices; a choice outside the top
list gets probability 0.

Results go into the request cache (`LLMConfig.cache_path`, as `LLMClient`'s replies do), so a rerun pays nothing
again; `LogprobUsage` counts model calls, tokens and cache hits. `logprob_source(llm)` gives the process's one source
per configuration (one model load, or one connection pool and dialect probe, and one open cache file).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, TypeVar

import httpx
import numpy as np

from ..errors import ConfigError, DataError, DependencyError, EndpointError
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


class LocalLogprobs(SharedSource):
    """The embedded model in this process, one call at a time.

    Logits are computed only where they are read (the positions that predict the scored text) and only those rows
    leave llama.cpp; with `logits_all=True` every prompt token would pay for the 262k-entry output layer and a copy of
    it. A shared prefix with the previous call (a few-shot prompt, the options after one prompt) is not evaluated again.

    Args:
        model_path (`str`, *optional*): a GGUF file; defaults to the bundled Gemma 3 270M.
        n_ctx (`int`, defaults to 2048): context tokens; a longer context + text raises `DataError`.
        n_threads (`int`, *optional*): defaults to the machine's cores (at most 4).
        cache_path (`str`, *optional*): a request cache file to keep results in (keyed by the model file's name);
            a result found there loads no model.
    """

    CONTEXT_BATCH = 512  # tokens decoded at once where no logits are read
    LOGITS_BATCH = 64  # ... and where they are (each row is 262k floats)

    def __init__(self, model_path: str | None = None, *, n_ctx: int = 2048, n_threads: int | None = None,
                 cache_path: str | None = None):
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, min(os.cpu_count() or 1, 4))
        self.usage = LogprobUsage()
        self.cache = ResultCache(cache_path)
        self._llm: Any = None
        self._cached: list[int] = []  # tokens whose keys and values sit in the model's cache
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """The GGUF file's name: what identifies the model in cache keys."""
        if self.model_path is None:
            from .local import local_model_path

            self.model_path = local_model_path()
        return os.path.basename(self.model_path)

    @property
    def llm(self) -> Any:
        if self._llm is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise DependencyError("llama-cpp-python", "local", "In-process log-probabilities") from exc
            from .local import local_model_path

            self._llm = Llama(model_path=self.model_path or local_model_path(), n_ctx=self.n_ctx,
                              n_batch=self.CONTEXT_BATCH, n_threads=self.n_threads, verbose=False)
        return self._llm

    def _tokens(self, context: str, text: str, head: Sequence[int] | None = None) -> tuple[list[int], int]:
        """Tokens of `context + text` (with BOS) and where `text`'s tokens start: the end of the longest prefix
        shared with `context`'s own tokens (`head`, when already known; a token spanning the boundary is counted
        with `text`)."""
        llm = self.llm
        full = llm.tokenize((context + text).encode("utf-8"), add_bos=True, special=False)
        if head is None:
            head = llm.tokenize(context.encode("utf-8"), add_bos=True, special=False)
        start = 0
        while start < min(len(full), len(head)) and full[start] == head[start]:
            start += 1
        if len(full) > self.n_ctx:
            raise DataError(f"{len(full)} tokens do not fit the {self.n_ctx}-token context; cut the texts or raise n_ctx.")
        if start >= len(full):
            raise DataError("the text to score adds no token to its context")
        return full, max(start, 1)

    def _reuse(self, tokens: Sequence[int], start: int) -> int:
        """How many leading `tokens` the model's cache holds already (never the rows to read, from `start - 1`);
        the cache keeps those and drops the rest."""
        kept = 0
        while kept < min(len(self._cached), start - 1) and self._cached[kept] == tokens[kept]:
            kept += 1
        self._cached = self._cached[:kept]
        self.llm._ctx.kv_cache_seq_rm(-1, kept, -1)
        return kept

    def _decode(self, tokens: Sequence[int], n_past: int,
                targets: Sequence[Sequence[int]] | None = None) -> list[list[float]]:
        """Decode `tokens` after `n_past` cached ones; with `targets`, the log-probabilities of the tokens
        `targets[i]` at each position i (what may follow `tokens[i]`).

        Uses llama-cpp-python's batch and context objects (`Llama._batch`, `Llama._ctx`, as `Llama.eval` does), the
        only way to ask llama.cpp for the logits of chosen positions. Rows are read in place (float32, no copy)."""
        llm = self.llm
        size = self.LOGITS_BATCH if targets is not None else self.CONTEXT_BATCH
        out: list[list[float]] = []
        for i in range(0, len(tokens), size):
            chunk = list(tokens[i : i + size])
            llm._batch.set_batch(chunk, n_past=n_past + i, logits_all=targets is not None)
            llm._ctx.decode(llm._batch)
            if targets is not None:
                logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(chunk), llm.n_vocab()))
                top = logits.max(axis=1)
                norm = top.astype(np.float64) + np.log(np.exp(logits - top[:, None]).sum(axis=1, dtype=np.float64))
                for row, wanted in enumerate(targets[i : i + size]):
                    out.append((logits[row, list(wanted)].astype(np.float64) - norm[row]).tolist())
        return out

    def continuation(self, context: str, text: str) -> list[float]:
        key, stored = self.cache.get(continuation_key(context, text, self.model_name, "in_process"), self.usage)
        if stored is not None:
            return stored
        logprobs = self._continuation(context, text)
        self.cache.put(key, logprobs, len(logprobs))
        return logprobs

    def _continuation(self, context: str, text: str) -> list[float]:
        with self._lock:
            tokens, start = self._tokens(context, text)
            rows = self._pass(tokens, start, [[t] for t in tokens[start:]])
            return [row[0] for row in rows]

    def _pass(self, tokens: Sequence[int], start: int, targets: Sequence[Sequence[int]]) -> list[list[float]]:
        """One model pass over `tokens`, reusing the model's cache: `targets[i]`'s log-probabilities at position
        `start - 1 + i` (positions start-1 .. len-2 predict the scored tokens; the last token need not be decoded)."""
        kept = self._reuse(tokens, start)
        self._decode(tokens[kept : start - 1], kept)
        rows = self._decode(tokens[start - 1 : -1], start - 1, targets=targets)
        self._cached = list(tokens[:-1])
        self.usage.add(1, len(tokens) - 1 - kept)
        return rows

    def choices(self, prompt: str | Sequence[Message], options: Sequence[str]) -> dict[str, float]:
        """Exact: each option's log-probability as a continuation of the prompt (messages are rendered as a
        transcript: a base model), cached as `continuation` caches it.

        Options whose tokens after the prompt differ only in their last one (` 1` ... ` 9` is a space token, then a
        digit) are all read from one pass: the rows predicting their shared tokens and the one predicting the last
        token. Other option sets are scored one option at a time."""
        text = prompt if isinstance(prompt, str) else render_transcript(prompt)
        keys: dict[str, str] = {}
        found: dict[str, list[float]] = {}
        for option in dict.fromkeys(options):
            keys[option], stored = self.cache.get(continuation_key(text, option, self.model_name, "in_process"), self.usage)
            if stored is not None:
                found[option] = stored
        missing = [o for o in keys if o not in found]
        read = self._one_pass(text, missing) if len(missing) > 1 else None
        for option in missing:
            logprobs = read[option] if read is not None else self._continuation(text, option)
            self.cache.put(keys[option], logprobs, len(logprobs))
            found[option] = logprobs
        return {option: float(sum(found[option])) for option in options}

    def _one_pass(self, text: str, options: Sequence[str]) -> dict[str, list[float]] | None:
        """Each option's token log-probabilities after `text` from one decode, when the options' tokens differ only
        in their last one (else `None`)."""
        with self._lock:
            head = self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
            split = [self._tokens(text, option, head) for option in options]
            tokens, start = split[0]
            if any(s != start or len(t) != len(tokens) or t[:-1] != tokens[:-1] for t, s in split[1:]):
                return None
            rows = self._pass(tokens, start, [[t] for t in tokens[start:-1]] + [[t[-1] for t, _ in split]])
        shared = [row[0] for row in rows[:-1]]
        return {option: [*shared, rows[-1][i]] for i, option in enumerate(options)}

    def _release(self) -> None:
        self.cache.close()


class HTTPLogprobs(SharedSource):
    """Token log-probabilities from a TGI, vLLM, llama.cpp or OpenAI-compatible server, in its own dialect.

    The dialect and the model id are learnt once, by the probe `LLMClient` uses (`HTTPBackend.prepare`); requests
    go round the replicas, are retried after transient failures (`retry`: 408/429/5xx, dropped connections,
    timeouts; 401/403/404 raise `EndpointAccessError` at once) within `LLMConfig`'s timeouts and deadline, and
    their results are kept in the request cache (`LLMConfig.cache`/`cache_path`).

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

    def _retrying(self, what: str, attempt: Callable[[str], T]) -> T:
        """`attempt(base URL)` on the replicas in turn, under `LLMConfig`'s retry policy (see `retry`)."""
        retries = Retries(self.llm, time.monotonic, self._secrets)
        retries.start()
        bases = self.llm.endpoints
        while True:
            base = bases[next(self._turn) % len(bases)]
            try:
                return attempt(base)
            except Exception as exc:  # classified by `retries`, as `LLMClient.generate` classifies them
                retries.failed(exc, base, lambda e: self._rejected(base, what, e),
                               retryable=lambda e: is_retryable(e) and not refuses_logprobs(e))
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
            data = self._retrying("log-probability request", lambda base: self._post(base, route, body))
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
        """`choices` for many prompts, `workers` at a time; a failed request is returned as its exception."""

        def one(prompt: str | Sequence[Message]) -> dict[str, float] | Exception:
            try:
                return self.choices(prompt, options)
            except (EndpointError, httpx.HTTPError, ValueError) as exc:
                return exc

        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(one, prompts))

    def _release(self) -> None:
        self._http.close()
        self.cache.close()


_SOURCES: dict[tuple[Any, ...], LocalLogprobs | HTTPLogprobs] = {}
_SOURCES_LOCK = threading.Lock()


def logprob_source(llm: LLMConfig) -> LocalLogprobs | HTTPLogprobs:
    """The process's source for `llm`, made once per equivalent configuration and shared, as `get_client` shares
    clients: in process for `LLMConfig()` without endpoints (one model per file, context size and cache file), else
    HTTP (one connection pool, dialect probe and cache file per endpoints, token and settings). Both keep results in
    the request cache when `llm.cache` is on. A shared source stays open for the process (its `close()` keeps it
    open, so every run can reuse it); `close_logprob_sources()` closes them."""
    if llm.is_local:
        cache_path = llm.cache_file
        n_ctx = min(llm.local_n_ctx, 2048)
        key: tuple[Any, ...] = ("local", os.getpid(), llm.local_model_path, n_ctx, cache_path)

        def make() -> LocalLogprobs | HTTPLogprobs:
            return LocalLogprobs(llm.local_model_path, n_ctx=n_ctx, n_threads=llm.local_n_threads, cache_path=cache_path)
    else:
        token = hashlib.sha256((bearer_token(llm) or "").encode()).hexdigest()
        key = ("http", os.getpid(), json.dumps(llm.fingerprint_state(), sort_keys=True, default=str), token)

        def make() -> LocalLogprobs | HTTPLogprobs:
            return HTTPLogprobs(llm)
    with _SOURCES_LOCK:
        if key not in _SOURCES:
            _SOURCES[key] = make()
            _SOURCES[key].shared = True
        return _SOURCES[key]


def close_logprob_sources() -> None:
    """Close this process's shared sources (their connections and cache files); `logprob_source` makes new ones."""
    with _SOURCES_LOCK:
        sources = list(_SOURCES.values())
        _SOURCES.clear()
    for source in sources:
        source._release()


__all__ = ["HTTPLogprobs", "LocalLogprobs", "LogprobSource", "LogprobUsage", "ResultCache", "SharedSource",
           "TOP_LOGPROBS", "choice_logprobs", "close_logprob_sources", "logprob_source", "top_logprob_lists"]
