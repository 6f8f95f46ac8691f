"""One config object for every LLM call the library makes."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from ..errors import ConfigError

Route = Literal["auto", "chat", "completion"]
ServerKind = Literal["auto", "tgi", "llama_cpp_python", "llama_cpp", "vllm", "openai"]
Constrain = Literal["auto", "always", "repair", "never"]

_ROUTES = ("auto", "chat", "completion")
_SERVERS = ("auto", "tgi", "llama_cpp_python", "llama_cpp", "vllm", "openai")
_CONSTRAIN = ("auto", "always", "repair", "never")


def default_cache_path() -> str:
    """`$HF_PREFSEL_CACHE` or `~/.cache/hf_prefsel/requests.sqlite`."""
    root = os.environ.get("HF_PREFSEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hf_prefsel")
    return os.path.join(root, "requests.sqlite")


@dataclass
class LLMConfig:
    """Where and how to call a language model.

    With no `endpoints`, calls go to the embedded Gemma 3 270M (a base model) running in
    process through `llama-cpp-python`. With endpoints, calls go over HTTP to TGI, vLLM,
    a llama.cpp server or any OpenAI-compatible server; several URLs are replicas of one
    model and requests are balanced over them.

    Args:
        endpoints (`list[str]`, defaults to `[]`):
            Base URLs of replicas serving the same model, e.g. `["http://127.0.0.1:8080"]`. A trailing `/v1`
            (the form OpenAI clients take) or `/v1/chat/completions` is dropped: requests add their own routes.
            Empty means the embedded local model, in process.
        model (`str`, *optional*):
            Model name sent with each request (needed by vLLM/OpenAI-style servers that host
            several models). Also part of the cache key; when unset it is asked from the server.
        token (`str` or `bool`, *optional*):
            Bearer token for the endpoints. Never logged, printed or stored in the cache. Unset, only
            Hugging Face hosts (`*.huggingface.cloud`, `huggingface.co`, `*.hf.space`) get this machine's
            Hugging Face token (`$HF_TOKEN` or `hf auth login`); other servers get none. `False` sends none,
            even to Hugging Face hosts (e.g. for URLs typed in by someone else).
        route (`"auto" | "chat" | "completion"`, defaults to `"auto"`):
            `chat` sends messages to the Messages API (instruction-tuned models);
            `completion` renders the messages as a few-shot transcript and completes it
            (base models: `/v1/completions`, or `/generate` on TGI). `auto` uses
            `completion` for the embedded model and `chat` for endpoints.
        server (`"auto" | "tgi" | "llama_cpp_python" | "llama_cpp" | "vllm" | "openai"`, defaults to `"auto"`):
            Which dialect of structured output to send. `auto` asks the server once.
        max_tokens (`int`, defaults to 256): completion tokens per call.
        temperature (`float`, defaults to 0.0): 0 makes runs repeatable and cacheable.
        top_p (`float`, *optional*), seed (`int`, *optional*): sampling controls.
        stop (`list[str]`, *optional*): extra stop sequences.
        max_concurrency (`int`, *optional*): a cap on requests in flight at once over all replicas. Unset, each
            replica gets what its server says it can take (`/info` on TGI, `/props` on llama.cpp) or, if it says
            nothing, a limit found by measuring throughput and latency (see `hf_prefsel.llm.concurrency`).
        repetition_penalty (`float`, defaults to 1.0): sent explicitly to servers that have one (1.0 = none), so a
            reply never depends on a server's own default (llama-cpp-python's server applies 1.1 unasked).
        timeout (`float`, defaults to 120): seconds to wait for one reply (a whole generation) before that attempt
            is abandoned and retried.
        connect_timeout (`float`, defaults to 10): seconds to open a connection, and for the server's identity
            probe (`/info`, `/v1/models`), which a healthy server answers at once. A server that accepts
            connections but answers nothing so fails each attempt after 10 s: with the defaults it is reported,
            naming its URL, after about a minute rather than after `timeout` per attempt.
        deadline (`float`, *optional*, defaults to 600): seconds one request may take over all its attempts,
            backoff included, after which it fails with its last error. `None`: only `max_retries` bounds it.
        max_retries (`int`, defaults to 4): retries after 408/429/5xx, connection errors and timeouts. 401, 403
            and 404 are never retried: they raise `EndpointAccessError` at once (check the token, URL or model).
        backoff (`float`, defaults to 0.5): first retry delay in seconds, doubled each retry (with jitter), capped at 20 s.
        repair_attempts (`int`, defaults to 2): extra calls when a reply fails schema validation.
        cache (`bool`, defaults to `True`): keep every paid reply in a SQLite file so reruns are free.
        cache_path (`str`, *optional*): that file; defaults to `~/.cache/hf_prefsel/requests.sqlite`.
        max_calls (`int`, *optional*): budget of network/model calls (cache hits are free).
        max_total_tokens (`int`, *optional*): budget of prompt + completion tokens.
        local_model_path (`str`, *optional*): GGUF file for the embedded model; defaults to the bundled Gemma.
        local_n_ctx (`int`, defaults to 4096), local_n_threads (`int`, *optional*): embedded model settings.
        end_at_answer (`bool`, defaults to `True`): end generation as soon as the answer is complete. On the
            completion route a structured reply whose demonstrations are one line each stops at the end of
            that line (free generation; on TGI also at the closing they all end with, e.g. `"]`), other
            replies stop before the next `Input:`; a JSON grammar ends at the closing bracket anyway. `False`
            sends no automatic stop sequence: free generation runs to `max_tokens` (only useful to measure
            what stopping saves).
        constrain (`"auto" | "always" | "repair" | "never"`, defaults to `"auto"`): when to make the server
            enforce the JSON schema. `always` sends it with every request; `repair` generates freely, parses
            tolerantly, validates, and re-asks after an invalid reply: freely with a repetition penalty, the
            schema only on the last re-ask (on every re-ask for servers without a repetition penalty); `never`
            only validates. `auto` is `repair` for llama-cpp-python (its grammar sampling costs about 4x per
            token, as it checks the whole 262k vocabulary) and `always` for TGI, vLLM, llama.cpp and OpenAI.
        prefill (`bool`, defaults to `True`): on the completion route, write the opening that every
            demonstrated answer shares (e.g. `["` for a tag list) into the prompt instead of having it
            generated, for freely generated structured replies. Saves those tokens on every reply and
            keeps a base model on the demonstrated shape.
        prefix_reuse (`bool`, defaults to `True`): keep servers' prompt caches warm. Requests whose prompts
            share a prefix (the few-shot demonstrations) go to the replica that last saw it when it is no
            busier than the others, and llama.cpp servers get `cache_prompt`. llama-cpp-python servers reuse
            the longest common prefix with their previous prompt on their own.
        embedded (`bool`, defaults to `False`): the endpoints serve the embedded Gemma 3 270M (set by
            `serve_local()`'s `config()`); prompts and defaults then suit a small base model.
    """

    endpoints: list[str] = field(default_factory=list)
    model: str | None = None
    token: str | bool | None = field(default=None, repr=False)
    route: Route = "auto"
    server: ServerKind = "auto"
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    max_concurrency: int | None = None
    repetition_penalty: float = 1.0
    timeout: float = 120.0
    connect_timeout: float = 10.0
    deadline: float | None = 600.0
    max_retries: int = 4
    backoff: float = 0.5
    repair_attempts: int = 2
    cache: bool = True
    cache_path: str | None = None
    max_calls: int | None = None
    max_total_tokens: int | None = None
    local_model_path: str | None = None
    local_n_ctx: int = 4096
    local_n_threads: int | None = None
    end_at_answer: bool = True
    constrain: Constrain = "auto"
    prefill: bool = True
    prefix_reuse: bool = True
    embedded: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.endpoints, str):
            self.endpoints = [self.endpoints]
        self.endpoints = [base_url(e) for e in self.endpoints]
        for url in self.endpoints:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"Endpoint {url!r} is not an http(s) URL; pass a base URL such as 'http://127.0.0.1:8080'.")
        if self.route not in _ROUTES:
            raise ConfigError(f"route must be one of {_ROUTES}, got {self.route!r}.")
        if self.server not in _SERVERS:
            raise ConfigError(f"server must be one of {_SERVERS}, got {self.server!r}.")
        if self.constrain not in _CONSTRAIN:
            raise ConfigError(f"constrain must be one of {_CONSTRAIN}, got {self.constrain!r}.")
        for name in ("max_tokens", "max_concurrency"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("max_retries", "repair_attempts"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}.")
        for name in ("timeout", "connect_timeout", "deadline"):
            value = getattr(self, name)
            if value is not None and not value > 0:  # `not >` also refuses NaN
                raise ConfigError(f"{name} must be > 0 seconds, got {value}.")
        if self.token is True or (self.token is not None and not isinstance(self.token, (str, bool))):
            raise ConfigError("token must be a string, False (send none) or None (Hugging Face hosts only).")
        if self.token is None and self.endpoints and all(is_hugging_face_url(e) for e in self.endpoints):
            from huggingface_hub import get_token

            self.token = get_token()

    @property
    def is_local(self) -> bool:
        """True when calls go to the embedded in-process model."""
        return not self.endpoints

    @property
    def cache_file(self) -> str | None:
        """The request cache file calls are kept in: `cache_path`, else the default one; `None` with `cache=False`."""
        return (self.cache_path or default_cache_path()) if self.cache else None

    @property
    def is_embedded(self) -> bool:
        """True for the embedded Gemma 3 270M, in process or behind `serve_local()` servers."""
        return self.is_local or self.embedded

    def describe(self, served_model: str | None = None) -> str:
        """A description for reports and dataset cards: the model, never a token or a URL.

        Args:
            served_model (`str`, *optional*): the model id the endpoint reported, when it was asked.
        """
        if self.is_local:
            return "embedded Gemma 3 270M (llama.cpp, in process)"
        if self.embedded:
            return f"embedded Gemma 3 270M (local llama.cpp servers: {len(self.endpoints)})"
        name = self.model or served_model or "the endpoint's model"
        replicas = f", {len(self.endpoints)} replicas" if len(self.endpoints) > 1 else ""
        return f"{name} ({self.resolved_route} route{replicas})"

    @property
    def resolved_route(self) -> Literal["chat", "completion"]:
        if self.route != "auto":
            return self.route
        return "completion" if self.is_local else "chat"

    def generation_params(self) -> dict[str, Any]:
        """The sampling parameters that change a reply (and so belong in the cache key)."""
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": list(self.stop) if self.stop else None,
            "repetition_penalty": self.repetition_penalty,
        }

    def replace(self, **changes: Any) -> "LLMConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def fingerprint_state(self) -> dict[str, Any]:
        """Every setting but the token (the budget included): the key that shares a client, a log-probability source
        or a Ray worker pool between equal configurations."""
        state = dataclasses.asdict(self)
        state.pop("token")
        return state


# What people paste after a server's base URL: OpenAI clients take `.../v1`, docs show full routes.
_ROUTE_SUFFIX = re.compile(r"(/v1(/chat/completions|/completions|/models)?)?/*$")


def base_url(url: str) -> str:
    """`url` without a trailing `/v1` or OpenAI route: requests add `/v1/...` themselves, so
    `http://host:8000/v1` (what OpenAI clients take) means `http://host:8000` here."""
    return _ROUTE_SUFFIX.sub("", url.strip()) if url.startswith(("http://", "https://")) else url


_HF_DOMAINS = ("huggingface.co", "huggingface.cloud", "hf.space", "hf.co")


def is_hugging_face_url(url: str) -> bool:
    """Whether `url` is served by Hugging Face: only those hosts get the machine's token without it being passed.

    `huggingface_hub`'s inference client sends the local token to whatever `base_url` it is given; a
    third-party server must never receive it. The match is on the host name, anchored on a dot, so
    `https://huggingface.co.example.net` or `https://example.net/huggingface` do not count.
    """
    host = (urlsplit(url).hostname or "").lower()
    return any(host == domain or host.endswith("." + domain) for domain in _HF_DOMAINS)


def bearer_token(config: LLMConfig) -> str | None:
    """The token to send to `config`'s endpoints, or `None` for none (`False` and unset both mean none here:
    `__post_init__` already resolved the Hugging Face hosts' default)."""
    return config.token if isinstance(config.token, str) and config.token else None
