"""Token log-probabilities over HTTP: what each server dialect is asked, and how its replies are read.

Kept apart from the transport (`logprobs.HTTPLogprobs`: dialect probe, retries, cache) so every reply shape can be
read and tested without a server. The dialects are the ones `backends.HTTPBackend` detects:

- choices (top alternatives of a few generated tokens): OpenAI-legacy `/v1/completions` with `logprobs: N`
  (vLLM, llama-cpp-python, OpenAI: `logprobs.top_logprobs[]`; current llama.cpp answers there in the chat shape),
  the chat route `/v1/chat/completions` with `logprobs: true, top_logprobs: N` (`logprobs.content[].top_logprobs`),
  llama.cpp's native `/completion` with `n_probs` (`completion_probabilities[]`, in its current `top_logprobs` or
  `top_probs` shape or its older `probs` one) and TGI's `/generate` with `details` and `top_n_tokens`
  (`details.top_tokens[][]`);
- prompt log-probabilities (what likelihood scores need): `/v1/completions` with `echo: true` (vLLM,
  llama-cpp-python, OpenAI's legacy models: `logprobs.tokens`, `token_logprobs`, `text_offset`) and TGI's
  `/generate` with `decoder_input_details` (`details.prefill[]`). llama.cpp's server refuses `echo` and has no
  such option, so it has none.

Error replies are sorted here too: a prompt too long for the context (`too_long`: that row's problem) and a model
that cannot give log-probabilities at all (`refuses_logprobs`: every request's problem).
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

from ..errors import DataError, EndpointError
from .prompt import Message
from .retry import HTTPStatusError

TOP_LOGPROBS = 20  # alternatives asked per position (OpenAI chat's maximum, vLLM's default cap)
TGI_TOP_TOKENS = 5  # TGI's default cap (`--max-top-n-tokens`)
OPENAI_LEGACY_TOP = 5  # OpenAI's cap on `/v1/completions`

# What to do where prompt log-probabilities are missing.
PROMPT_LOGPROBS_FIX = ("use a vLLM or TGI endpoint (they return prompt log-probabilities, as does a llama-cpp-python "
                       "server started with logits_all=True), or the embedded model in process (LLMConfig() without "
                       "endpoints)")


def top_n(server: str, route: str) -> int:
    """Alternatives to ask per generated position: as many as the server accepts, up to `TOP_LOGPROBS`."""
    if server == "tgi":
        return TGI_TOP_TOKENS
    if server == "openai" and route == "completion":
        return OPENAI_LEGACY_TOP
    return TOP_LOGPROBS


def choice_request(server: str, route: str, prompt: str | Sequence[Message],
                   max_tokens: int) -> tuple[str, dict[str, Any]]:
    """The route and body asking for the top alternatives of `max_tokens` greedy tokens after `prompt` (a rendered
    prompt on the completion route, messages on the chat route)."""
    n = top_n(server, route)
    if route == "chat":
        return "/v1/chat/completions", {"messages": list(prompt), "max_tokens": max_tokens, "temperature": 0.0,
                                        "logprobs": True, "top_logprobs": n}
    if server == "tgi":
        return "/generate", {"inputs": prompt, "parameters": {"max_new_tokens": max_tokens, "do_sample": False,
                                                              "details": True, "top_n_tokens": n}}
    return "/v1/completions", {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "logprobs": n}


def native_choice_request(prompt: str, max_tokens: int) -> tuple[str, dict[str, Any]]:
    """llama.cpp's own route, for servers whose `/v1/completions` ignores `logprobs` (older builds)."""
    return "/completion", {"prompt": prompt, "n_predict": max_tokens, "temperature": 0.0, "n_probs": TOP_LOGPROBS}


def continuation_request(server: str, full: str) -> tuple[str, dict[str, Any]]:
    """The route and body asking for the log-probability of every token of `full` (one token is generated too:
    some servers refuse to generate none).

    Raises:
        `EndpointError`: for llama.cpp's server, which has no prompt log-probabilities.
    """
    if server == "llama_cpp":
        raise EndpointError(f"llama.cpp's server returns no prompt log-probabilities (it refuses `echo`); "
                            f"{PROMPT_LOGPROBS_FIX}.")
    if server == "tgi":
        return "/generate", {"inputs": full, "parameters": {"max_new_tokens": 1, "do_sample": False, "details": True,
                                                            "decoder_input_details": True}}
    return "/v1/completions", {"prompt": full, "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1}


def _log(p: Any) -> float:
    return math.log(p) if p and p > 0 else -math.inf


def _native_step(step: dict[str, Any]) -> dict[str, float]:
    """One position of llama.cpp's `completion_probabilities`, in any of its shapes."""
    if isinstance(step.get("top_logprobs"), list):
        return {t["token"]: float(t["logprob"]) for t in step["top_logprobs"]}
    if isinstance(step.get("top_probs"), list):  # `post_sampling_probs: true`
        return {t["token"]: _log(t.get("prob")) for t in step["top_probs"]}
    return {t["tok_str"]: _log(t.get("prob")) for t in step.get("probs") or []}  # builds before December 2024


def top_logprob_lists(data: dict[str, Any]) -> list[dict[str, float]]:
    """Per generated token, its top alternatives as {token text: logprob}, from any dialect's reply.

    Raises:
        `EndpointError`: the reply holds no token log-probabilities (the server ignored the request for them).
    """
    choices = data.get("choices")
    first = ((choices or [{}])[0] or {}) if isinstance(choices, list) else {}
    logprobs = first.get("logprobs") or {}
    if isinstance(logprobs.get("content"), list):  # chat shape (llama.cpp, vLLM chat, OpenAI chat, TGI Messages)
        return [{t["token"]: float(t["logprob"]) for t in step.get("top_logprobs") or []}
                for step in logprobs["content"]]
    if isinstance(logprobs.get("top_logprobs"), list):  # legacy completions shape (vLLM, OpenAI, llama-cpp-python)
        return [{k: float(v) for k, v in (step or {}).items()} for step in logprobs["top_logprobs"]]
    if isinstance(data.get("completion_probabilities"), list):  # llama.cpp's `/completion`
        return [_native_step(step or {}) for step in data["completion_probabilities"]]
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    if isinstance(details.get("top_tokens"), list):  # TGI's `/generate`
        chosen = details.get("tokens") or []
        steps = []
        for i, alternatives in enumerate(details["top_tokens"]):
            step = {t["text"]: float(t["logprob"]) for t in alternatives or [] if t.get("logprob") is not None}
            if i < len(chosen) and chosen[i].get("logprob") is not None:
                step.setdefault(chosen[i]["text"], float(chosen[i]["logprob"]))
            steps.append(step)
        return steps
    raise EndpointError("The reply holds no token log-probabilities; the server ignores the request for them.")


def reply_tokens(data: dict[str, Any]) -> int:
    """Tokens a reply says the server evaluated (prompt and generated), 0 when it does not say."""
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    if usage:
        total = int(usage.get("total_tokens") or 0)
        return total or int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
    if "tokens_evaluated" in data or "tokens_predicted" in data:  # llama.cpp's `/completion`
        return int(data.get("tokens_evaluated") or 0) + int(data.get("tokens_predicted") or 0)
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    return len(details.get("prefill") or []) + int(details.get("generated_tokens") or 0)


def align(full: str, texts: Sequence[str]) -> list[tuple[int, int]]:
    """The character span of each token of `full`, from the tokens' texts alone.

    Servers print tokens in ways that do not concatenate back to the text: a special token (`<s>`) that is not in
    it, a word whose leading space was dropped (SentencePiece pieces decoded one by one), a character split over
    byte tokens that print as `�` or `<0xE2>`. A token is found at the next occurrence of its text after the previous
    token, the whitespace in between counted with it; a token not found there takes no room, or, when the next one
    is found further on, the text in between (the bytes of a character).

    Raises:
        `EndpointError`: a token that can be found only after text no token accounts for.
    """
    spans: list[tuple[int, int]] = []
    pending: list[int] = []  # tokens not placed yet
    pos = 0
    for i, text in enumerate(texts):
        at, size = _find(full, text, pos)
        if at < 0:
            pending.append(i)
            spans.append((pos, pos))
            continue
        gap = full[pos:at]
        if gap.strip() and not pending:
            raise EndpointError(f"Cannot place the server's token {text!r} in the text: its tokens do not spell the "
                                "prompt.")
        for j in pending:  # the bytes of a character, or a special token
            spans[j] = (pos, at) if gap.strip() else (pos, pos)
        pending = []
        spans.append((at if gap.strip() else pos, at + size))
        pos = at + size
    for j in pending:
        spans[j] = (pos, len(full))
    return spans


def _find(full: str, text: str, pos: int) -> tuple[int, int]:
    """Where `text` (or, failing that, `text` without surrounding spaces) next occurs in `full` from `pos`, and its
    length; (-1, 0) when it does not."""
    for candidate in (text, text.strip()):
        at = full.find(candidate, pos) if candidate else -1
        if at >= 0:
            return at, len(candidate)
    return -1, 0


def _offsets_fit(full: str, texts: Sequence[str], offsets: Sequence[Any]) -> bool:
    """Whether the server's `text_offset`s point at its tokens' texts within `full`."""
    if len(offsets) != len(texts) or not all(isinstance(o, int) for o in offsets):
        return False
    if any(b < a for a, b in zip(offsets, offsets[1:])):
        return False
    return all(full.startswith(t, o) for t, o in zip(texts, offsets) if o < len(full))


def prompt_token_logprobs(data: dict[str, Any], full: str) -> list[tuple[int, int, float | None]]:
    """(start, end, logprob) of each token the reply lists for the prompt `full` (`None`: the first token, which
    nothing predicts), with the character spans from `text_offset` when they fit the text, else from `align`.

    Raises:
        `EndpointError`: the reply holds no prompt log-probabilities.
    """
    choices = data.get("choices")
    choice = ((choices or [{}])[0] or {}) if isinstance(choices, list) else {}
    logprobs = choice.get("logprobs") or {}
    texts, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
    if isinstance(texts, list) and isinstance(values, list) and len(texts) == len(values) and texts:
        offsets = logprobs.get("text_offset") or []
        if _offsets_fit(full, texts, offsets):
            ends = [*offsets[1:], offsets[-1] + len(texts[-1])]
            spans = list(zip(offsets, ends))
        else:
            spans = align(full, texts)
        return [(a, b, None if v is None else float(v)) for (a, b), v in zip(spans, values)]
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    prefill = details.get("prefill")
    if isinstance(prefill, list) and prefill:
        spans = align(full, [str(t.get("text") or "") for t in prefill])
        return [(a, b, None if t.get("logprob") is None else float(t["logprob"])) for (a, b), t in zip(spans, prefill)]
    raise EndpointError(f"The reply holds no prompt log-probabilities; {PROMPT_LOGPROBS_FIX}.")


def text_logprobs(data: dict[str, Any], context: str, text: str) -> list[float]:
    """The log-probabilities of the tokens of `text` after `context` from a reply for `context + text`: the tokens
    ending after the context, so a token spanning the boundary counts with `text` (as `LocalLogprobs` counts it).

    Raises:
        `EndpointError`: no prompt log-probabilities in the reply. `DataError`: `text` adds no scored token.
    """
    full = context + text
    picked = [lp for start, end, lp in prompt_token_logprobs(data, full)
              if end > len(context) and start < len(full) and lp is not None]
    if not picked:
        raise DataError("the text to score adds no token to its context")
    return picked


def has_top_logprobs(data: dict[str, Any]) -> bool:
    """Whether a reply holds token log-probabilities (some llama.cpp builds ignore the request on `/v1/completions`)."""
    try:
        top_logprob_lists(data)
    except EndpointError:
        return False
    return True


# How servers refuse a prompt longer than their context: vLLM and OpenAI ("maximum context length"), llama-cpp-python
# ("exceed context window"), llama.cpp ("exceeds the available context size"), TGI's 422 validation errors.
TOO_LONG_REPLY = re.compile(r"context (length|window|size)|max_model_len|prompt is too long|too many tokens|"
                            r"`?inputs`? tokens \+|`?inputs`? must have less than \d+ tokens", re.IGNORECASE)


def too_long(exc: HTTPStatusError) -> bool:
    """An HTTP 400/413/422 saying the prompt does not fit the context."""
    return exc.status in (400, 413, 422) and bool(TOO_LONG_REPLY.search(str(exc)))


def refuses_logprobs(exc: BaseException) -> bool:
    """A 500 that says the model cannot give log-probabilities (llama-cpp-python's server without `logits_all`):
    every request would fail alike, so it is not retried."""
    text = str(exc)
    return isinstance(exc, HTTPStatusError) and ("logits_all" in text or "logprobs is not supported" in text)


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


__all__ = [
    "PROMPT_LOGPROBS_FIX", "TOP_LOGPROBS", "align", "choice_logprobs", "choice_request", "continuation_request",
    "has_top_logprobs", "native_choice_request", "prompt_token_logprobs", "refuses_logprobs", "reply_tokens",
    "text_logprobs", "too_long", "top_logprob_lists", "top_n",
]
