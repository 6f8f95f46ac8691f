"""Token log-probabilities from a model: in process (the embedded GGUF through llama-cpp-python) or over HTTP.

Two questions are asked of a model here, both without sampling a reply:
- `continuation`: the log-probability of each token of a given text after a given context (what perplexity-based
  scores such as IFD need; in process only: llama.cpp's server cannot return prompt log-probabilities);
- `choices`: how likely each of a few short answers is right after a prompt (what probability verdicts need).

In process the whole distribution is available, so both are exact. Over HTTP, `choices` asks for a short completion
with the top log-probabilities of each generated token (llama.cpp / xllamacpp and vLLM return them in the OpenAI
chat shape `logprobs.content[].top_logprobs`, OpenAI-legacy servers as `logprobs.top_logprobs[]`) and reads the
first position whose top list holds one of the choices; a choice outside the top list gets probability 0.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import httpx
import numpy as np

from ..errors import ConfigError, DataError, DependencyError, EndpointError
from .config import LLMConfig, bearer_token

TOP_LOGPROBS = 20  # top tokens asked per position over HTTP (OpenAI's maximum)


@dataclass
class LogprobUsage:
    """Model calls and tokens evaluated so far (prompt and continuation tokens alike)."""

    calls: int = 0
    total_tokens: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, calls: int, tokens: int) -> None:
        with self.lock:
            self.calls += calls
            self.total_tokens += tokens


class LogprobSource(Protocol):
    usage: LogprobUsage

    def continuation(self, context: str, text: str) -> list[float]:
        """Natural-log probability of each token of `text` following `context` (`""`: the start of a document)."""

    def choices(self, prompt: str, options: Sequence[str]) -> dict[str, float]:
        """Log-probability of each option as the very next text after `prompt` (`-inf` when the server hid it)."""


class LocalLogprobs:
    """The embedded model in this process, one call at a time.

    Logits are computed only where they are read (the positions that predict the scored text) and only those rows
    leave llama.cpp; with `logits_all=True` every prompt token would pay for the 262k-entry output layer and a copy of
    it. A shared prefix with the previous call (a few-shot prompt, the options after one prompt) is not evaluated again.

    Args:
        model_path (`str`, *optional*): a GGUF file; defaults to the bundled Gemma 3 270M.
        n_ctx (`int`, defaults to 2048): context tokens; a longer context + text raises `DataError`.
        n_threads (`int`, *optional*): defaults to the machine's cores (at most 4).
    """

    CONTEXT_BATCH = 512  # tokens decoded at once where no logits are read
    LOGITS_BATCH = 64  # ... and where they are (each row is 262k floats)

    def __init__(self, model_path: str | None = None, *, n_ctx: int = 2048, n_threads: int | None = None):
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, min(os.cpu_count() or 1, 4))
        self.usage = LogprobUsage()
        self._llm: Any = None
        self._cached: list[int] = []  # tokens whose keys and values sit in the model's cache
        self._lock = threading.Lock()

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

    def _tokens(self, context: str, text: str) -> tuple[list[int], int]:
        """Tokens of `context + text` (with BOS) and where `text`'s tokens start: the end of the longest prefix
        shared with `context`'s own tokens (a token spanning the boundary is counted with `text`)."""
        llm = self.llm
        full = llm.tokenize((context + text).encode("utf-8"), add_bos=True, special=False)
        head = llm.tokenize(context.encode("utf-8"), add_bos=True, special=False)
        start = 0
        while start < min(len(full), len(head)) and full[start] == head[start]:
            start += 1
        if len(full) > self.n_ctx:
            raise DataError(f"{len(full)} tokens do not fit the {self.n_ctx}-token context; cut the texts or raise n_ctx.")
        if start >= len(full):
            raise DataError("the text to score adds no token to its context")
        return full, max(start, 1)

    def _decode(self, tokens: Sequence[int], n_past: int, targets: Sequence[int] | None = None) -> list[float]:
        """Decode `tokens` after `n_past` cached ones; with `targets`, the log-probability of `targets[i]` at each
        position i (the token that follows `tokens[i]`).

        Uses llama-cpp-python's batch and context objects (`Llama._batch`, `Llama._ctx`, as `Llama.eval` does), the
        only way to ask llama.cpp for the logits of chosen positions. Rows are read in place (float32, no copy)."""
        llm = self.llm
        size = self.LOGITS_BATCH if targets is not None else self.CONTEXT_BATCH
        out: list[float] = []
        for i in range(0, len(tokens), size):
            chunk = list(tokens[i : i + size])
            llm._batch.set_batch(chunk, n_past=n_past + i, logits_all=targets is not None)
            llm._ctx.decode(llm._batch)
            if targets is not None:
                logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(chunk), llm.n_vocab()))
                top = logits.max(axis=1)
                norm = top.astype(np.float64) + np.log(np.exp(logits - top[:, None]).sum(axis=1, dtype=np.float64))
                picked = logits[np.arange(len(chunk)), np.asarray(targets[i : i + size])].astype(np.float64)
                out.extend((picked - norm).tolist())
        return out

    def continuation(self, context: str, text: str) -> list[float]:
        with self._lock:
            tokens, start = self._tokens(context, text)
            # positions start-1 .. len-2 predict the text's tokens; the last token itself need not be decoded
            kept = 0
            while kept < min(len(self._cached), start - 1) and self._cached[kept] == tokens[kept]:
                kept += 1
            self._cached = self._cached[:kept]
            self.llm._ctx.kv_cache_seq_rm(-1, kept, -1)
            self._decode(tokens[kept : start - 1], kept)
            logprobs = self._decode(tokens[start - 1 : -1], start - 1, targets=tokens[start:])
            self._cached = list(tokens[:-1])
            self.usage.add(1, len(tokens) - 1 - kept)
            return logprobs

    def choices(self, prompt: str, options: Sequence[str]) -> dict[str, float]:
        return {option: float(sum(self.continuation(prompt, option))) for option in options}


class HTTPLogprobs:
    """Choice probabilities from an OpenAI-compatible `/v1/completions` route that returns top log-probabilities.

    Args:
        llm (`LLMConfig`): its first endpoint, model, token and timeouts are used.
        max_tokens (`int`, defaults to 3): tokens generated to reach the answer (Gemma writes `Output: 1` as
            `:`, ` `, `1`, so the digit is the second generated token).
        workers (`int`, defaults to 4): requests in flight at once.
    """

    def __init__(self, llm: LLMConfig, *, max_tokens: int = 3, workers: int = 4):
        if not llm.endpoints:
            raise ConfigError("HTTPLogprobs needs an endpoint; use LocalLogprobs for the embedded model.")
        self.llm = llm
        self.max_tokens = max_tokens
        self.workers = workers
        self.usage = LogprobUsage()
        token = bearer_token(llm)
        self._http = httpx.Client(headers={"Authorization": f"Bearer {token}"} if token else {},
                                  timeout=httpx.Timeout(llm.timeout, connect=llm.connect_timeout))

    def continuation(self, context: str, text: str) -> list[float]:
        raise EndpointError("Prompt log-probabilities over HTTP are not supported here; score likelihoods in process "
                            "(LLMConfig() without endpoints).")

    def choices(self, prompt: str, options: Sequence[str]) -> dict[str, float]:
        body: dict[str, Any] = {"prompt": prompt, "max_tokens": self.max_tokens, "temperature": 0.0,
                                "logprobs": TOP_LOGPROBS}
        if self.llm.model:
            body["model"] = self.llm.model
        url = f"{self.llm.endpoints[0]}/v1/completions"
        response = self._http.post(url, json=body)
        if response.status_code >= 400:
            raise EndpointError(f"{url} answered {response.status_code} to a log-probability request: "
                                f"{response.text[:300]}. Use a server that returns logprobs (llama.cpp, vLLM).")
        data = response.json()
        usage = data.get("usage") or {}
        self.usage.add(1, int(usage.get("total_tokens") or 0))
        return choice_logprobs(top_logprob_lists(data), options)

    def choices_many(self, prompts: Sequence[str], options: Sequence[str]) -> list[dict[str, float] | Exception]:
        """`choices` for many prompts, `workers` at a time; a failed request is returned as its exception."""

        def one(prompt: str) -> dict[str, float] | Exception:
            try:
                return self.choices(prompt, options)
            except (EndpointError, httpx.HTTPError, ValueError) as exc:
                return exc

        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(one, prompts))

    def close(self) -> None:
        self._http.close()


def top_logprob_lists(data: dict[str, Any]) -> list[dict[str, float]]:
    """Per generated token, its top alternatives as {token text: logprob}, from either OpenAI reply shape."""
    logprobs = ((data.get("choices") or [{}])[0] or {}).get("logprobs") or {}
    if isinstance(logprobs.get("content"), list):  # chat shape (llama.cpp, vLLM chat, OpenAI chat)
        return [{t["token"]: float(t["logprob"]) for t in step.get("top_logprobs") or []} for step in logprobs["content"]]
    if isinstance(logprobs.get("top_logprobs"), list):  # legacy completions shape (vLLM, OpenAI, llama-cpp-python)
        return [{k: float(v) for k, v in (step or {}).items()} for step in logprobs["top_logprobs"]]
    raise EndpointError("The reply holds no token log-probabilities; the server ignores `logprobs`.")


def choice_logprobs(steps: Sequence[dict[str, float]], options: Sequence[str]) -> dict[str, float]:
    """The options' log-probabilities at the first generated position whose top list names one of them (tokens
    compared without surrounding spaces); options missing there get `-inf`. All `-inf` when none appears."""
    wanted = {o.strip(): o for o in options}
    for step in steps:
        found: dict[str, float] = {}
        for token, logprob in step.items():
            key = token.strip()
            if key in wanted:
                found[wanted[key]] = max(found.get(wanted[key], -math.inf), logprob)
        if found:
            return {o: found.get(o, -math.inf) for o in options}
    return {o: -math.inf for o in options}


_LOCAL: dict[tuple[str | None, int], LocalLogprobs] = {}
_LOCAL_LOCK = threading.Lock()


def logprob_source(llm: LLMConfig) -> LocalLogprobs | HTTPLogprobs:
    """In process for `LLMConfig()` without endpoints (one shared model per path and context size), else HTTP."""
    if llm.is_local:
        key = (llm.local_model_path, min(llm.local_n_ctx, 2048))
        with _LOCAL_LOCK:
            if key not in _LOCAL:
                _LOCAL[key] = LocalLogprobs(llm.local_model_path, n_ctx=key[1], n_threads=llm.local_n_threads)
            return _LOCAL[key]
    return HTTPLogprobs(llm)


__all__ = ["HTTPLogprobs", "LocalLogprobs", "LogprobSource", "LogprobUsage", "choice_logprobs", "logprob_source",
           "top_logprob_lists"]
