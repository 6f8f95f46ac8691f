"""Transports to one model replica: an HTTP endpoint, or the embedded model in process."""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import DependencyError, EndpointError
from .config import LLMConfig, bearer_token
from .retry import HTTPStatusError
from .structured import chat_response_format, completion_schema_fields, gbnf_grammar


@dataclass
class Reply:
    """A model's raw reply and what it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


# The request field of a repetition penalty per server. The client asks with the generic key `repetition_penalty`;
# OpenAI's API and TGI's Messages API have no such field.
_REPETITION_PENALTY_FIELDS = {
    "llama_cpp_python": "repeat_penalty", "llama_cpp": "repeat_penalty", "vllm": "repetition_penalty", "tgi": "repetition_penalty",
}


class Backend:
    """One replica. `in_flight` lets the client send each request to the least busy replica;
    `recent` (keys of the last prompt sent here) lets it prefer a replica whose prompt cache is warm."""

    name: str = "backend"
    model_id: str = "unknown"
    server: str = "openai"

    def __init__(self) -> None:
        self.in_flight = 0
        self.recent: frozenset[str] = frozenset()
        self.slots: int | None = None  # requests the server says it decodes at once (`prepare` asks)

    @property
    def queues(self) -> bool:
        """Whether the server queues requests beyond its slots (llama.cpp) rather than refusing them (TGI: 429)."""
        return self.server in ("llama_cpp", "llama_cpp_python")

    def remember(self, keys: Any) -> None:
        """Record the prompt (exact key and prefix key) just sent, which this server will have cached."""
        self.recent = frozenset(keys)

    async def prepare(self) -> None:
        """Learn what the server is (its structured-output dialect, its model id)."""

    def forget_probe(self) -> None:
        """Probe again before the next request: the server may serve another model by now."""

    def repetition_penalty_field(self, route: str) -> str | None:
        """The field that carries a repetition penalty on `route` ("chat" or "completion"), None if there is none."""
        if self.server == "tgi" and route == "chat":
            return None
        return _REPETITION_PENALTY_FIELDS.get(self.server)

    def _native(self, params: dict[str, Any], route: str) -> dict[str, Any]:
        """`params` without empty values and with `repetition_penalty` under this server's name for it (or dropped)."""
        out = {k: v for k, v in params.items() if v is not None}
        penalty = out.pop("repetition_penalty", None)
        field = self.repetition_penalty_field(route)
        if penalty is not None and field is not None:
            out[field] = penalty
        return out

    async def chat(self, messages: list[dict[str, str]], params: dict[str, Any], schema: dict | None) -> Reply:
        raise EndpointError(f"{self.name} has no chat route")

    async def complete(self, prompt: str, params: dict[str, Any], schema: dict | None) -> Reply:
        raise EndpointError(f"{self.name} has no completion route")

    async def aclose(self) -> None:
        pass


class HTTPBackend(Backend):
    """A TGI, vLLM, llama.cpp or OpenAI-compatible server.

    The chat route goes through `huggingface_hub.AsyncInferenceClient.chat_completion` for TGI
    and the llama-cpp-python server (vLLM/OpenAI servers get the plain OpenAI request, see `chat`). The
    completion route uses `AsyncInferenceClient.text_generation` on TGI (`/generate`) and a
    plain `httpx` POST to `/v1/completions` elsewhere, because the hub client has no method
    for that OpenAI route.
    """

    def __init__(self, url: str, config: LLMConfig):
        super().__init__()
        self.url = url
        self.name = url
        self.config = config
        self.server = config.server
        self.model_id = config.model or url
        self._prepared = False
        self._prepare_lock: asyncio.Lock | None = None
        self._hub_client: Any = None
        self._http: httpx.AsyncClient | None = None

    def _headers(self) -> dict[str, str]:
        token = bearer_token(self.config)
        return {"Authorization": f"Bearer {token}"} if token else {}

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                headers=self._headers(), timeout=httpx.Timeout(self.config.timeout, connect=self.config.connect_timeout)
            )
        return self._http

    @property
    def hub_client(self) -> Any:
        if self._hub_client is None:
            from huggingface_hub import AsyncInferenceClient

            # Given no token (None or ""), the hub client sends this machine's Hugging Face token to any base_url;
            # setting the header ourselves is the only way to send none.
            token = bearer_token(self.config)
            self._hub_client = AsyncInferenceClient(
                base_url=self.url, token=token, headers={"authorization": f"Bearer {token}" if token else ""},
                timeout=self.config.timeout,
            )
        return self._hub_client

    async def prepare(self) -> None:
        if self._prepared:
            return
        if self._prepare_lock is None:
            self._prepare_lock = asyncio.Lock()
        async with self._prepare_lock:
            if self._prepared:
                return
            if self.server == "auto" or self.config.model is None:
                await self._detect()
            await self._probe_slots()
            self._prepared = True

    def forget_probe(self) -> None:
        self._prepared = False

    async def _detect(self) -> None:
        info = await self.http.get(f"{self.url}/info")
        if info.status_code == 200 and "model_id" in _json_or_empty(info):
            if self.server == "auto":
                self.server = "tgi"
            self.model_id = self.config.model or _json_or_empty(info)["model_id"]
            self.slots = _positive_int(_json_or_empty(info).get("max_concurrent_requests"))
            return
        if info.status_code >= 500:
            raise HTTPStatusError(info.status_code, f"{self.url}/info", info.text, secrets=[bearer_token(self.config)])
        models = await self.http.get(f"{self.url}/v1/models")
        if models.status_code >= 400:
            raise HTTPStatusError(models.status_code, f"{self.url}/v1/models", models.text, secrets=[bearer_token(self.config)])
        data = (_json_or_empty(models).get("data") or [{}])[0]
        owner = str(data.get("owned_by", ""))
        if self.server == "auto":
            self.server = {"me": "llama_cpp_python", "llamacpp": "llama_cpp", "vllm": "vllm"}.get(owner, "openai")
        if self.config.model is None and data.get("id"):
            self.model_id = os.path.basename(str(data["id"]))

    async def _probe_slots(self) -> None:
        """Ask how many requests the server takes at once, where it says: TGI's `/info` (`max_concurrent_requests`),
        llama.cpp's `/props` (`total_slots`); llama-cpp-python's server answers one at a time."""
        if self.server == "llama_cpp_python":
            self.slots = 1
            return
        if self.slots is not None or self.server not in ("tgi", "llama_cpp"):
            return
        route, key = ("/info", "max_concurrent_requests") if self.server == "tgi" else ("/props", "total_slots")
        try:
            response = await self.http.get(f"{self.url}{route}")
        except httpx.HTTPError:
            return  # not reported: the client finds the limit by measuring
        if response.status_code == 200:
            self.slots = _positive_int(_json_or_empty(response).get(key))

    async def chat(self, messages: list[dict[str, str]], params: dict[str, Any], schema: dict | None) -> Reply:
        kwargs = self._native(params, "chat")
        if schema is not None:
            kwargs["response_format"] = chat_response_format(self.server, schema)
        if self.server == "llama_cpp":
            kwargs["cache_prompt"] = self.config.prefix_reuse
        if _hub_offline() or self.server in ("vllm", "openai", "llama_cpp"):
            # The hub client rewrites an OpenAI `json_schema` response_format into TGI's form,
            # which vLLM/OpenAI servers do not enforce; those get the OpenAI request as is.
            return await self._post_openai("/v1/chat/completions", {"messages": messages, **kwargs})
        field = self.repetition_penalty_field("chat")
        if field in kwargs:  # not one of the hub client's named parameters
            kwargs["extra_body"] = {field: kwargs.pop(field)}
        out = await self.hub_client.chat_completion(messages, model=self.config.model, **kwargs)
        usage = getattr(out, "usage", None)
        return Reply(
            text=out.choices[0].message.content or "",
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        )

    async def _post_openai(self, route: str, body: dict[str, Any]) -> Reply:
        """POST an OpenAI-style request with httpx; used for `/v1/completions` and in hub offline mode."""
        if self.config.model:
            body["model"] = self.config.model
        response = await self.http.post(f"{self.url}{route}", json=body)
        if response.status_code >= 400:
            raise HTTPStatusError(response.status_code, f"{self.url}{route}", response.text, secrets=[bearer_token(self.config)])
        data = response.json()
        usage = data.get("usage") or {}
        choice = data["choices"][0]
        text = choice["message"].get("content") if "message" in choice else choice.get("text")
        return Reply(
            text=text or "",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )

    async def complete(self, prompt: str, params: dict[str, Any], schema: dict | None) -> Reply:
        if self.server == "tgi":
            return await self._tgi_generate(prompt, params, schema)
        body: dict[str, Any] = {"prompt": prompt, **self._native(params, "completion")}
        if schema is not None:
            body.update(completion_schema_fields(self.server, schema))
        if self.server == "llama_cpp":
            body["cache_prompt"] = self.config.prefix_reuse
        return await self._post_openai("/v1/completions", body)

    async def _tgi_generate(self, prompt: str, params: dict[str, Any], schema: dict | None) -> Reply:
        temperature = params.get("temperature") or None  # TGI rejects 0; None means greedy
        if _hub_offline():
            return await self._tgi_generate_http(prompt, params, schema, temperature)
        out = await self.hub_client.text_generation(
            prompt,
            max_new_tokens=params["max_tokens"],
            temperature=temperature,
            do_sample=temperature is not None,
            top_p=params.get("top_p"),
            seed=params.get("seed"),
            repetition_penalty=params.get("repetition_penalty"),
            stop=params.get("stop") or None,
            grammar={"type": "json", "value": schema} if schema is not None else None,
            details=True,
            decoder_input_details=True,
        )
        details = out.details
        return Reply(
            text=out.generated_text,
            prompt_tokens=len(details.prefill or []) if details else 0,
            completion_tokens=int(details.generated_tokens) if details else 0,
        )

    async def _tgi_generate_http(
        self, prompt: str, params: dict[str, Any], schema: dict | None, temperature: float | None
    ) -> Reply:
        parameters = {
            "max_new_tokens": params["max_tokens"], "temperature": temperature, "do_sample": temperature is not None,
            "top_p": params.get("top_p"), "seed": params.get("seed"), "stop": params.get("stop") or [],
            "repetition_penalty": params.get("repetition_penalty"),
            "details": True, "decoder_input_details": True,
        }
        if schema is not None:
            parameters["grammar"] = {"type": "json", "value": schema}
        response = await self.http.post(f"{self.url}/generate", json={"inputs": prompt, "parameters": parameters})
        if response.status_code >= 400:
            raise HTTPStatusError(response.status_code, f"{self.url}/generate", response.text, secrets=[bearer_token(self.config)])
        data = response.json()
        details = data.get("details") or {}
        return Reply(
            text=data.get("generated_text", ""),
            prompt_tokens=len(details.get("prefill") or []),
            completion_tokens=int(details.get("generated_tokens") or 0),
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._hub_client is not None:
            await self._hub_client.close()
            self._hub_client = None


def _hub_offline() -> bool:
    """huggingface_hub's offline mode (HF_HUB_OFFLINE=1) blocks its clients even from localhost endpoints.

    People set it on machines without Hub access, which is exactly where local endpoints
    are used; so in that mode the same OpenAI-compatible requests are sent with httpx.
    """
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


_LLAMAS: dict[tuple[str, int, int], Any] = {}
_LLAMA_LOCK = threading.Lock()


def _close_llamas() -> None:
    """Free the in-process models at exit, while llama-cpp-python can still do it (left to `__del__` at interpreter
    teardown, freeing fails with a `TypeError` traceback once its bindings are gone)."""
    with _LLAMA_LOCK:
        models = list(_LLAMAS.values())
        _LLAMAS.clear()
    for model in models:
        model.close()


class LocalBackend(Backend):
    """The embedded GGUF model run in this process by `llama-cpp-python` (one call at a time)."""

    server = "llama_cpp_python"

    def __init__(self, config: LLMConfig):
        super().__init__()
        from .local import local_model_path

        self.config = config
        self.path = config.local_model_path or local_model_path()
        self.name = f"local:{os.path.basename(self.path)}"
        self.model_id = os.path.basename(self.path)
        self.n_threads = config.local_n_threads or max(1, min(os.cpu_count() or 1, 4))

    def _llama(self) -> Any:
        key = (self.path, self.config.local_n_ctx, self.n_threads)
        with _LLAMA_LOCK:
            if key not in _LLAMAS:
                try:
                    from llama_cpp import Llama
                except ImportError as exc:
                    raise DependencyError("llama-cpp-python", "local", "The embedded local model") from exc
                if not _LLAMAS:
                    atexit.register(_close_llamas)
                _LLAMAS[key] = Llama(
                    model_path=self.path, n_ctx=self.config.local_n_ctx, n_threads=self.n_threads,
                    chat_format="gemma", verbose=False,
                )
            return _LLAMAS[key]

    def _run(self, method: str, first: Any, params: dict[str, Any], schema: dict | None) -> Reply:
        from llama_cpp import LlamaGrammar

        kwargs = self._native(params, "chat" if method == "chat" else "completion")
        llm = self._llama()
        with _LLAMA_LOCK:
            if method == "complete":
                grammar = gbnf_grammar(schema) if schema is not None else None
                if grammar:
                    kwargs["grammar"] = LlamaGrammar.from_string(grammar, verbose=False)
                out = llm.create_completion(first, **kwargs)
                text = out["choices"][0]["text"]
            else:
                if schema is not None:
                    kwargs["response_format"] = {"type": "json_object", "schema": schema}
                out = llm.create_chat_completion(first, **kwargs)
                text = out["choices"][0]["message"]["content"] or ""
        usage = out.get("usage") or {}
        return Reply(text=text, prompt_tokens=usage.get("prompt_tokens", 0), completion_tokens=usage.get("completion_tokens", 0))

    async def complete(self, prompt: str, params: dict[str, Any], schema: dict | None) -> Reply:
        return await asyncio.to_thread(self._run, "complete", prompt, params, schema)

    async def chat(self, messages: list[dict[str, str]], params: dict[str, Any], schema: dict | None) -> Reply:
        return await asyncio.to_thread(self._run, "chat", messages, params, schema)
