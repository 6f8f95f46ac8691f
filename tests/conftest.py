"""Fixtures shared by the whole suite: an isolated request cache, the real local model server, and a
fault-injecting OpenAI-compatible fake server for faults a real server won't produce on demand."""

from __future__ import annotations

import os
import json
import threading
import time
from typing import Any, Callable

import pytest

from json_server import JSONHandler, LoopbackServer
from shared_data import shared_path as shared_data

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared_file():
    """`shared_file("instructions", "x.jsonl")` -> path under ../shared/data (skips locally, fails in CI, if absent)."""
    return shared_data


@pytest.fixture
def cache_path(tmp_path) -> str:
    """A fresh request-cache file, so tests never see each other's replies."""
    return str(tmp_path / "requests.sqlite")


def _require_llama() -> None:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("llama-cpp-python[server] is not installed; the README setup installs it.")
        pytest.skip("llama-cpp-python[server] is not installed")


@pytest.fixture(scope="session")
def local_servers():
    """Two real llama-cpp-python servers with the bundled Gemma 3 270M on 127.0.0.1, stopped at the end."""
    _require_llama()
    from hf_prefsel.llm import serve_local

    servers = serve_local(replicas=2, n_threads=1)
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def lima_rows() -> list[dict]:
    """The first 40 LIMA training rows (real instructions)."""
    import json

    with open(shared_data("instructions", "lima_train_1k.jsonl")) as fh:
        return [json.loads(line) for _, line in zip(range(40), fh)]


def tags_reply(body: dict[str, Any]) -> str:
    """A valid tag list derived from the last query in the request."""
    text = body.get("prompt") or body.get("inputs") or body["messages"][-1]["content"]
    query = text.rsplit("Input:", 1)[-1].split("\n")[0].strip() if "messages" not in body else text
    word = (query.split() or ["empty"])[0].lower().strip(".,!?")
    return json.dumps([{"tag": f"topic {word}", "explanation": "derived from the first word"}])


class FaultServer:
    """Serves `/v1/models`, `/v1/completions`, `/v1/chat/completions` and answers from a plan.

    Each request consumes the next planned action; with the plan empty it answers normally.
    Actions: `("ok", text)`, `("status", code)` (or `("status", code, body)`), `("sleep", seconds)` then answer
    normally, `("drop",)` close the connection without answering, `("garbage",)` a non-JSON reply text.
    `model_id` is what `/v1/models` reports (set it to swap the model behind the URL); with `require_token` set,
    any request without that bearer token gets a 401 whose body echoes the request's headers, as some servers do.
    """

    def __init__(self, responder: Callable[[dict[str, Any]], str] = tags_reply, owned_by: str = "me", tgi: bool = False):
        self.responder = responder
        self.owned_by = owned_by
        self.tgi = tgi
        self.plan: list[tuple] = []
        self.model_id = "/models/fake.gguf"
        self.require_token: str | None = None
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []  # the Authorization header of every request, GET and POST
        self.lock = threading.Lock()
        server = self

        class Handler(JSONHandler):
            def _refused(self) -> bool:
                if server.require_token is None or self.headers.get("Authorization") == f"Bearer {server.require_token}":
                    return False
                self.send_json(401, {"error": "Invalid credentials", "request_headers": dict(self.headers)})
                return True

            def do_GET(self) -> None:
                server.authorizations.append(self.headers.get("Authorization"))
                if self._refused():
                    return
                if self.path == "/info" and server.tgi:
                    self.send_json(200, {"model_id": "fake/tgi-model", "max_input_tokens": 4096})
                elif self.path == "/v1/models":
                    self.send_json(200, {"object": "list", "data": [{"id": server.model_id, "owned_by": server.owned_by}]})
                else:
                    self.send_json(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = self.read_json()
                if body is None:  # the client died before sending its whole request
                    return
                server.authorizations.append(self.headers.get("Authorization"))
                if self._refused():
                    return
                with server.lock:
                    server.requests.append(body)
                    action = server.plan.pop(0) if server.plan else ("normal",)
                kind = action[0]
                if kind == "status":
                    self.send_json(action[1], action[2] if len(action) > 2 else {"error": f"injected {action[1]}"})
                    return
                if kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if kind == "sleep":
                    time.sleep(action[1])
                try:
                    text = action[1] if kind == "ok" else "I think the tags are good ones" if kind == "garbage" else server.respond(body)
                except Exception as exc:  # a broken responder is a test bug: make it loud
                    self.send_json(500, {"error": repr(exc)})
                    return
                usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
                # a base model that rambles runs to max_tokens
                finish = "length" if kind == "garbage" else "stop"
                if self.path == "/generate" or self.path == "/":
                    prefill = [{"id": i, "text": "x", "logprob": None} for i in range(7)]
                    self.send_json(200, {"generated_text": text, "details": {
                        "finish_reason": "eos_token", "generated_tokens": 4, "seed": None, "prefill": prefill, "tokens": []}})
                elif self.path.endswith("/chat/completions"):
                    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    self.send_json(200, {"id": "x", "object": "chat.completion", "created": 0, "model": "fake",
                                     "choices": [choice], "usage": usage})
                else:
                    # like llama.cpp and vLLM: cut at the first stop sequence and leave it out
                    cuts = [text.find(s) for s in body.get("stop") or [] if s and s in text]
                    text = text[: min(cuts)] if cuts else text
                    self.send_json(200, {"id": "x", "object": "text_completion", "created": 0, "model": "fake",
                                     "choices": [{"index": 0, "text": text, "finish_reason": finish}], "usage": usage})

        self.http = LoopbackServer(Handler)
        self.url = self.http.url

    def respond(self, body: dict[str, Any]) -> str:
        """The responder's text, or a valid tag list when it returns None."""
        text = self.responder(body)
        return tags_reply(body) if text is None else text

    @property
    def generation_requests(self) -> int:
        return len(self.requests)

    def config(self, cache_path: str | None = None, **overrides: Any):
        """An `LLMConfig` for this server alone: completion route, fast retries."""
        from hf_prefsel.llm import LLMConfig

        settings: dict[str, Any] = dict(endpoints=[self.url], route="completion", cache_path=cache_path,
                                        cache=cache_path is not None, max_concurrency=4, max_retries=1, backoff=0.01)
        settings.update(overrides)
        return LLMConfig(**settings)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def fault_server():
    servers: list[FaultServer] = []

    def make(**kwargs: Any) -> FaultServer:
        servers.append(FaultServer(**kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.close()
