"""The LLM client: cache, budget, load balancing, retries, structured output and repair."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import uuid
from typing import Any, Coroutine, Sequence, TypeVar

from ..errors import BudgetExceededError, EndpointError, HfPrefselError, StructuredOutputError
from .backends import Backend, HTTPStatusError, Reply
from .cache import CachedReply, RequestCache, request_key
from .concurrency import is_overload
from .config import LLMConfig, bearer_token
from .dispatch import ReplicaDispatch
from .outcome import RUN_FATAL, Result
from .payload import RequestShape
from .prompt import Message, TranscriptFormat, answers_single_line, prefix_key
from .redact import error_text, redact
from .retry import NoAnswer, Retries, access_error, is_access_refusal, is_connection_failure, is_retryable
from .rows import SeveralRows
from .runloop import run_sync
from .structured import parse_reply, schema_of
from .usage import Budget, Usage

logger = logging.getLogger(__name__)
T = TypeVar("T")

# The repetition penalty of a free repair re-ask (llama.cpp's default is 1.1). Gemma 3 270M's unparseable replies
# mostly loop on one phrase; of the 12 such rows among 1,000 LIMA instructions, a free re-ask at 1.3 (the grammar
# only if it failed too) parsed 10, 4 with 3-6 distinct tags, in 14 calls, 235 tokens and 28.6 s; two grammar
# re-asks (greedy, then resampled) parsed 10, 3 with 3-6 distinct tags, in 18 calls, 484 tokens and 79.6 s.
REPAIR_REPETITION_PENALTY = 1.3


_REPAIR_MESSAGE = (
    "That reply was not valid: {error}. Answer again with only the JSON value, matching the required format exactly."
)


class LLMClient(ReplicaDispatch, RequestShape, SeveralRows):
    """Sends prompts to the configured model and returns validated, structured replies.

    Every paid reply goes into a persistent cache first, so a rerun (or a resumed run after a
    crash or Ctrl-C) pays only for what is missing. Requests are spread over replicas,
    each replica taking what its server can (`concurrency.ReplicaLimit`, at most `max_concurrency` in all), retried with exponential backoff on transient
    errors, and bounded by `timeout` each.

    Args:
        config (`LLMConfig`, *optional*): where and how to call the model; defaults to the embedded model.
        transcript (`TranscriptFormat`, *optional*): how messages are rendered on the completion route.

    Example:
        >>> client = LLMClient(LLMConfig(endpoints=["http://127.0.0.1:8080"]))
        >>> results = client.run_structured([prompt.messages("Sort a list in Python")], TagList)
        >>> print(client.usage)
    """

    def __init__(self, config: LLMConfig | None = None, transcript: TranscriptFormat | None = None):
        self.config = config or LLMConfig()
        self.transcript = transcript or TranscriptFormat()
        self.usage = Usage()
        self.budget = Budget(self.config.max_calls, self.config.max_total_tokens, self.usage)
        self._cache: RequestCache | None = None
        if self.config.cache_file:
            self._cache = RequestCache(self.config.cache_file)
        self._init_dispatch()
        self._probe_failures: dict[Backend, tuple[float, BaseException]] = {}  # each replica's last failed probe

    def __repr__(self) -> str:
        return f"LLMClient({self.config!r})"

    # -- one request ------------------------------------------------------------------------
    async def constrain_mode(self) -> str:
        """`always`, `repair` or `never`: the configured mode, with `auto` resolved for the server in use."""
        if self.config.constrain != "auto":
            return self.config.constrain
        first = self.backends[0]
        await self._prepare(first)
        # llama-cpp-python applies a grammar to every vocabulary entry at every step (~4x per token)
        return "repair" if first.server == "llama_cpp_python" else "always"

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        schema: dict | None = None,
        overrides: dict[str, Any] | None = None,
        single_line: bool = False,
    ) -> Reply:
        """One reply for `messages` (from the cache if it was paid for before).

        `single_line` says the reply is one line (its demonstrations are): with `end_at_answer`,
        free generation on the completion route then stops at the first newline (on TGI also at the
        closing all demonstrated answers end with, see `answer_suffix`). With a
        `schema` the JSON grammar ends the reply instead, and newlines may sit inside the JSON.

        Raises:
            `EndpointUnavailableError`: no replica could be reached after all retries.
            `EndpointError`: a replica rejected the request (e.g. HTTP 400: prompt too long).
            `BudgetExceededError`: the call or token budget is spent.
        """
        params = self._params(overrides, single_line=single_line and schema is None)
        prefill = self._prefill(messages, schema, single_line)
        first = self.backends[0]
        await self._prepare(first)
        closing = self._closing(messages, schema, single_line)
        if closing:
            params["stop"] = [closing, *(s for s in params.get("stop") or [] if s != closing)]
        key = request_key(self._payload(first, messages, params, schema, prefill))
        if self._cache is not None:
            hit = self._cache.get(key)
            if hit is not None:
                self.usage.add(cache_hits=1)
                return Reply(hit.text, hit.prompt_tokens, hit.completion_tokens, cached=True)

        avoid: set[int] = set()
        warm = (key, prefix_key(messages))
        loop = asyncio.get_running_loop()
        retries = Retries(self.config, loop.time, self._secrets)
        while True:
            # a failed probe of the chosen replica since this attempt began (the first: shortly before) fails it too
            fresh_since = loop.time() - (self.config.connect_timeout if retries.attempts == 0 else 0.0)
            index = await self._acquire(avoid, warm)
            started = retries.start()  # the deadline counts from the first attempt, not from waiting for a slot
            backend, limit = self.backends[index], self._limits[index]
            sent, outcome, tokens = limit.sent(), "other", 0
            try:
                self.budget.reserve()
            except BaseException:
                self._release(index)
                raise
            backend.remember(warm)
            try:
                await self._prepare(backend, fresh_since=fresh_since)
                self._note_slots()
                send = self._send(backend, messages, params, schema, prefill)
                # an in-process model cannot be interrupted, so a timeout would only duplicate work
                reply = await (send if self.config.is_local else self._within(send, backend, started))
                if prefill:
                    reply.text = prefill + reply.text
            except Exception as exc:  # classified by `retries`
                self.usage.add(calls=1)
                outcome = "overload" if is_overload(exc) else "other"
                retries.failed(exc, backend.name, lambda e: self._rejected(backend, e))
                if is_connection_failure(exc):
                    avoid.add(index)
                    self._down_until[index] = loop.time() + 5.0
            else:
                outcome, tokens = "ok", reply.completion_tokens
                self.usage.add(calls=1, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens)
                if self._cache is not None:
                    self._cache.put(key, CachedReply(reply.text, reply.prompt_tokens, reply.completion_tokens))
                return reply
            finally:
                self.budget.release()
                # the load is what is in flight plus what waits for room (woken waiters have not counted yet)
                limit.done(sent, outcome, tokens, backend.in_flight + len(self._waiters) + self._woken)
                self._release(index)
            delay = retries.next_delay()
            if delay is None:
                break
            self.usage.add(retries=1)
            logger.info("Retrying after %s (attempt %d, waiting %.1fs)", type(retries.last).__name__, retries.attempts,
                        delay)
            await asyncio.sleep(delay)
        raise retries.error(", ".join(b.name for b in self.backends)) from retries.last

    @property
    def _secrets(self) -> list[str | None]:
        """Values to cut from any error text: the configured token, whatever its shape."""
        return [bearer_token(self.config)]

    def _rejected(self, backend: Backend, exc: BaseException) -> EndpointError:
        """The error of a request a replica refused for itself (400: prompt too long, 422: bad parameters)."""
        if isinstance(exc, HTTPStatusError):  # its message names the URL and route already
            return EndpointError(redact(exc, secrets=self._secrets))
        return EndpointError(f"{backend.name} rejected the request: {error_text(exc, secrets=self._secrets)}")

    def _time_left(self, started: float) -> float | None:
        """Seconds left of the request's `deadline` (None: no deadline)."""
        if self.config.deadline is None:
            return None
        return self.config.deadline - (asyncio.get_running_loop().time() - started)

    async def _within(self, send: Coroutine[Any, Any, Reply], backend: Backend, started: float) -> Reply:
        """`send`, bounded by `timeout` and by what is left of the request's `deadline`."""
        left = self._time_left(started)
        limit = self.config.timeout if left is None else max(0.001, min(self.config.timeout, left))
        try:
            return await asyncio.wait_for(send, limit)
        except TimeoutError:
            raise NoAnswer(backend.name, round(limit, 3), "request") from None

    async def _prepare(self, backend: Backend, *, fresh_since: float | None = None) -> None:
        """Probe `backend` (dialect, model id, capacity) within `connect_timeout`: a healthy server answers at once.

        Lenient callers (the dialect and the cache key, looked up before the first attempt) go on with the defaults
        after a transient failure, and do not probe again within `connect_timeout`. An attempt (`fresh_since` set)
        raises the failure, and fails at once with a failure of another request's probe made since `fresh_since`:
        requests queued behind one another (the concurrency limit) would otherwise each wait `connect_timeout`, so
        a silent server costs `connect_timeout` per round of attempts, however many rows wait. 401/403/404 raise
        `EndpointAccessError` at once.
        """
        loop = asyncio.get_running_loop()
        when, failure = self._probe_failures.get(backend, (None, None))
        if when is not None and failure is not None:
            if fresh_since is None and loop.time() - when < self.config.connect_timeout:
                return
            if fresh_since is not None and when >= fresh_since:
                raise failure
        try:
            await asyncio.wait_for(backend.prepare(), self.config.connect_timeout)
        except TimeoutError:
            error: BaseException = NoAnswer(backend.name, self.config.connect_timeout, "server probe")
        except Exception as exc:
            if is_access_refusal(exc):
                raise access_error(backend.name, exc, self._secrets) from exc
            if not is_retryable(exc):
                raise
            error = exc
        else:
            self._probe_failures.pop(backend, None)
            return
        self._probe_failures[backend] = (loop.time(), error)
        if fresh_since is not None:
            raise error

    async def _send(
        self, backend: Backend, messages: Sequence[Message], params: dict[str, Any], schema: dict | None, prefill: str
    ) -> Reply:
        if self.config.resolved_route == "completion":
            return await backend.complete(self._prompt(messages, prefill), params, schema)
        return await backend.chat(list(messages), params, schema)

    async def _has_repetition_penalty(self) -> bool:
        first = self.backends[0]
        await self._prepare(first)
        return first.repetition_penalty_field(self.config.resolved_route) is not None

    def _attempt_plan(
        self, mode: str, penalty: bool, attempt: int, overrides: dict[str, Any] | None
    ) -> tuple[bool, dict[str, Any] | None]:
        """Whether request number `attempt` (0 = the first, 1 = the first repair) carries the schema, and its
        sampling: the whole repair ladder described in `structured`."""
        base = dict(overrides or {})
        resampled = {**base, "temperature": max(self.config.temperature, 0.7), "seed": 999 + attempt}
        if mode != "repair":
            # a base model cannot take feedback: re-asks use another seed instead
            return mode == "always", (resampled if attempt else base or None)
        if attempt == 0:
            return False, base or None
        if penalty and attempt < self.config.repair_attempts:
            return False, {**(resampled if attempt > 1 else base), "repetition_penalty": REPAIR_REPETITION_PENALTY}
        # the grammar: its first step keeps the configured (greedy) sampling, later ones resample
        first_grammar_step = self.config.repair_attempts if penalty else 1
        return True, ((base or None) if attempt == first_grammar_step else resampled)

    async def structured(
        self, messages: Sequence[Message], output_type: type[T], *, overrides: dict[str, Any] | None = None
    ) -> Result[T]:
        """A validated reply of type `output_type`, repairing invalid replies a bounded number of times.

        With `constrain="repair"` the first request generates freely (no grammar). The last re-ask
        carries the schema, with the first request's sampling; earlier re-asks generate freely
        again with a repetition penalty (`REPAIR_REPETITION_PENALTY`), where the server has one,
        because a grammar step costs several ordinary rows on llama-cpp-python. With `always` every
        request carries the schema and re-asks resample. Failures that concern only this request
        (invalid output after repairs, a rejected request, a spent budget) are returned as
        `Result.error`. An unreachable endpoint raises, because every other request would fail
        the same way.
        """
        schema = schema_of(output_type)
        mode = await self.constrain_mode()
        penalty = mode == "repair" and await self._has_repetition_penalty()
        last = self.config.repair_attempts
        single_line = answers_single_line(messages)
        current = list(messages)
        raw: str | None = None
        error = "no attempt made"
        for attempt in range(last + 1):
            constrained, sampling = self._attempt_plan(mode, penalty, attempt, overrides)
            try:
                reply = await self.generate(
                    current, schema=schema if constrained else None, overrides=sampling, single_line=single_line
                )
            except RUN_FATAL:
                self.usage.add(failures=1)
                raise
            except (EndpointError, BudgetExceededError) as exc:
                self.usage.add(failures=1)
                return Result(error=error_text(exc, secrets=self._secrets), raw=raw, transient=True)
            raw = reply.text
            try:
                return Result(value=parse_reply(reply.text, output_type), raw=raw)
            except StructuredOutputError as exc:
                self.usage.add(invalid_replies=1)
                error = str(exc)
            if attempt < last:
                self.usage.add(repairs=1)
                if self.config.resolved_route == "chat":
                    # an instruction-tuned model can read what was wrong
                    current = list(messages) + [
                        {"role": "assistant", "content": raw},
                        {"role": "user", "content": _REPAIR_MESSAGE.format(error=error[:300])},
                    ]
        self.usage.add(failures=1)
        return Result(error=f"StructuredOutputError: {error}", raw=raw)

    async def text(self, messages: Sequence[Message], *, overrides: dict[str, Any] | None = None) -> Result[str]:
        """A free-text reply (no schema), e.g. a candidate response; per-request failures become `Result.error`.

        `overrides` changes sampling for this request only (e.g. `{"temperature": 0.8, "seed": 3}` to get
        distinct candidates; they are part of the cache key).
        """
        try:
            reply = await self.generate(messages, overrides=overrides)
        except RUN_FATAL:
            self.usage.add(failures=1)
            raise
        except (EndpointError, BudgetExceededError) as exc:
            self.usage.add(failures=1)
            return Result(error=error_text(exc, secrets=self._secrets), transient=True)
        text = reply.text.strip()
        if not text:
            self.usage.add(failures=1)
            return Result(error="EmptyReply: the model returned no text", raw=reply.text)
        return Result(value=text, raw=reply.text)

    def run_text(
        self,
        prompts: Sequence[Sequence[Message]],
        *,
        overrides: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
        progress: bool = False,
        desc: str = "LLM",
    ) -> list[Result[str]]:
        """Blocking free-text generation for many prompts; `overrides` is one dict for all or one per prompt."""
        per_prompt = list(overrides) if isinstance(overrides, (list, tuple)) else [overrides] * len(prompts)
        if len(per_prompt) != len(prompts):
            raise ValueError("overrides must be one dict, or one per prompt")
        coros = [self.text(p, overrides=o) for p, o in zip(prompts, per_prompt)]
        return run_sync(self._gather(coros, progress=progress, desc=desc))

    async def structured_many(
        self,
        prompts: Sequence[Sequence[Message]],
        output_type: type[T],
        *,
        progress: bool = False,
        desc: str = "LLM",
        overrides: dict[str, Any] | None = None,
    ) -> list[Result[T]]:
        """`structured` for many prompts at once, concurrently, results in input order."""
        coros = [self.structured(p, output_type, overrides=overrides) for p in prompts]
        return await self._gather(coros, progress=progress, desc=desc)

    async def _gather(self, coros: Sequence[Coroutine[Any, Any, T]], *, progress: bool, desc: str) -> list[T]:
        """Run coroutines concurrently (the semaphore bounds them), cancelling all if one raises or on Ctrl-C."""
        from .gather import gather_all

        return await gather_all(coros, progress=progress, desc=desc)

    # -- synchronous face -------------------------------------------------------------------
    def run_structured(
        self,
        prompts: Sequence[Sequence[Message]],
        output_type: type[T],
        *,
        progress: bool = False,
        desc: str = "LLM",
        overrides: dict[str, Any] | None = None,
    ) -> list[Result[T]]:
        """Blocking `structured_many`, safe to call from scripts, notebooks and `Dataset.map`.

        `overrides` changes sampling for these requests (e.g. `{"max_tokens": 48}`); it is part of the cache key.
        """
        return run_sync(self.structured_many(prompts, output_type, progress=progress, desc=desc, overrides=overrides))

    # -- what makes results repeatable ------------------------------------------------------------------------
    def result_identity(self) -> str:
        """What decides this client's results besides its config: the model each replica serves now and the
        request cache's failure record (`RequestCache.identity`).

        Replicas are asked again, so a model swapped behind a URL is noticed. When that cannot be known (a replica
        does not answer the probe, or there is no request cache to hold failures), the identity is random: results
        that cannot be identified must not be reused.
        """

        async def served() -> list[str | None]:
            for backend in self.backends:
                backend.forget_probe()
            await asyncio.gather(*(self._prepare(b) for b in self.backends))
            return [None if b in self._probe_failures else b.model_id for b in self.backends]

        models = run_sync(served())
        if self._cache is None or None in models:
            return f"unrepeatable:{uuid.uuid4().hex}"
        return json.dumps({"models": models, "cache": self._cache.identity()})

    def note_failures(self, count: int) -> None:
        """Record in the request cache that `count` requests failed transiently, which changes `result_identity`."""
        if self._cache is not None and count > 0:
            self._cache.note_failures(count)

    def close(self) -> None:
        """Close HTTP connections and the cache file."""
        if self._backends:
            backends = self._backends

            async def close_all() -> None:
                await asyncio.gather(*(b.aclose() for b in backends))

            run_sync(close_all())
        if self._cache is not None:
            self._cache.close()
            self._cache = None


_CLIENTS: dict[tuple[int, str], LLMClient] = {}


def get_client(config: LLMConfig) -> LLMClient:
    """The shared client of this process for `config` (so batches reuse connections and counters)."""
    token_hash = hashlib.sha256((bearer_token(config) or "").encode()).hexdigest()
    key = (os.getpid(), json.dumps(config.fingerprint_state(), sort_keys=True, default=str) + token_hash)
    if key not in _CLIENTS:
        _CLIENTS[key] = LLMClient(config)
    return _CLIENTS[key]


def shared_clients() -> list[LLMClient]:
    """The clients `get_client` made in this process: one per configuration, so a report over a multi-stage job
    (tagging, then judging with other generation settings) sums them."""
    pid = os.getpid()
    return [client for (owner, _), client in _CLIENTS.items() if owner == pid]


__all__ = ["RUN_FATAL", "LLMClient", "Result", "get_client", "run_sync", "shared_clients", "HfPrefselError"]
