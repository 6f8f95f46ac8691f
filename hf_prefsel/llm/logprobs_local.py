"""Token log-probabilities from the embedded GGUF model in this process, through llama-cpp-python.

The whole distribution is available here, so `continuation` and `choices` are exact; results share the request cache
and counters of the HTTP source (`hf_prefsel.llm.logprobs`), which re-exports `LocalLogprobs`.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Sequence

import numpy as np

from ..errors import DataError, DependencyError
from .logprobs import LogprobUsage, ResultCache, SharedSource, continuation_key
from .prompt import Message, render_transcript
from .usage import Budget


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
        max_calls, max_total_tokens (`int`, *optional*): this source's budget (`LLMConfig`'s, for the shared source
            of `logprob_source`): a model pass past it raises `BudgetExceededError`; cache hits are free.
    """

    CONTEXT_BATCH = 512  # tokens decoded at once where no logits are read
    LOGITS_BATCH = 64  # ... and where they are (each row is 262k floats)

    def __init__(self, model_path: str | None = None, *, n_ctx: int = 2048, n_threads: int | None = None,
                 cache_path: str | None = None, max_calls: int | None = None, max_total_tokens: int | None = None):
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, min(os.cpu_count() or 1, 4))
        self.usage = LogprobUsage()
        self.budget = Budget(max_calls, max_total_tokens, self.usage)
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
        `start - 1 + i` (positions start-1 .. len-2 predict the scored tokens; the last token need not be decoded).
        One paid call, held to the budget."""
        self.budget.reserve()
        try:
            kept = self._reuse(tokens, start)
            self._decode(tokens[kept : start - 1], kept)
            rows = self._decode(tokens[start - 1 : -1], start - 1, targets=targets)
            self._cached = list(tokens[:-1])
            self.usage.add(1, len(tokens) - 1 - kept)
        finally:
            self.budget.release()
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
        """Close the cache file and free the model now (`Llama.close`), not whenever the object is collected: at
        interpreter exit that may be after llama-cpp-python's bindings are gone, and its `__del__` then fails."""
        with self._lock:
            self.cache.close()
            if self._llm is not None:
                self._llm.close()
                self._llm = None
                self._cached = []


__all__ = ["LocalLogprobs"]
