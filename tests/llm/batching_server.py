"""A model of a continuous-batching LLM server, over real HTTP, for saturation tests and benchmarks.

`slots` sequences are decoded together, one token per step; a step takes `step * (1 + growth * (batch - 1))`
seconds (a batch costs a little more than one sequence, as on a GPU). Requests beyond the slots wait in a queue;
with `queue_limit` set, requests beyond slots + queue are refused with 429. It reports its capacity the way
real servers do: `report="tgi"` answers `/info` with `max_concurrent_requests` (and, like TGI, refuses more than
that with 429), `report="llama_cpp"` answers `/props` with `total_slots`; `report=None` says nothing (vLLM-like).

Every reply is a list of 3 tags derived from the request's last input line, in the shape the request asks for
(continuing a prefilled `["` or `[{"tag":"`, a whole JSON value for a schema, or ` ["a", ...]` after `Tags:`),
and costs `tokens` decode steps (fewer if `max_tokens` is lower).
"""

from __future__ import annotations

import collections
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from json_server import JSONHandler, LoopbackServer


@dataclass
class _Job:
    steps: int
    done: threading.Event = field(default_factory=threading.Event)


def tags_for(text: str) -> list[str]:
    """Three distinct lowercase words of the last input line (padded), so every reply is a valid tag list."""
    lines = [line for line in text.splitlines() if line.startswith(("Input:", "Instruction:"))]
    words = re.findall(r"[a-z]{3,}", (lines[-1].split(":", 1)[1] if lines else text[-200:]).lower())
    return (list(dict.fromkeys(words)) + ["general", "request", "topic"])[:3]


def reply_text(body: dict[str, Any]) -> str:
    """The reply in the shape the request asks for (see the module docstring)."""
    if "messages" in body:
        prompt = str(body["messages"][-1].get("content", ""))
    else:
        prompt = str(body.get("prompt") or body.get("inputs") or "")
    tags = tags_for(prompt)
    objects = [{"tag": t, "explanation": f"about {t}"} for t in tags]
    schema = body.get("json_schema") or (body.get("response_format") or {}).get("schema") or (
        ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
    ) or ((body.get("parameters") or {}).get("grammar") or {}).get("value")
    if schema is not None:  # tag objects when the schema has an explanation field, plain tags otherwise
        return json.dumps(objects if "explanation" in json.dumps(schema) else tags)
    if prompt.endswith('[{"tag":"'):
        return json.dumps(objects)[len('[{"tag": "'):]
    if prompt.endswith('["'):
        return json.dumps(tags)[2:]
    return " " + json.dumps(tags if "messages" not in body else objects)


class BatchingServer:
    """The server; `close()` stops it. Counters: `served`, `rejected`, `peak_active` (slots in use at once),
    `peak_in_flight` (in slots or queued), `slot_steps` and `steps` (so `slot_steps / steps` is the mean batch)."""

    def __init__(
        self,
        slots: int = 8,
        *,
        step: float = 0.02,
        growth: float = 0.02,
        tokens: int = 8,
        queue_limit: int | None = None,
        report: Literal["tgi", "llama_cpp"] | None = None,
        owned_by: str = "vllm",
    ):
        self.slots, self.step, self.growth, self.tokens = slots, step, growth, tokens
        self.report = report
        # TGI refuses what exceeds max_concurrent_requests; the others queue (up to `queue_limit`)
        self.queue_limit = 0 if report == "tgi" else queue_limit
        self.owned_by = "llamacpp" if report == "llama_cpp" else owned_by
        self.served = self.rejected = self.peak_active = self.peak_in_flight = self.steps = self.slot_steps = 0
        self._queue: collections.deque[_Job] = collections.deque()
        self._active: list[_Job] = []
        self._cv = threading.Condition()
        self._stop = False
        self.http = LoopbackServer(self._handler())
        self.url = self.http.url
        threading.Thread(target=self._decode_loop, daemon=True).start()

    def step_time(self, batch: int) -> float:
        return self.step * (1 + self.growth * (max(1, batch) - 1))

    @property
    def peak_rate(self) -> float:
        """Requests per second with every slot busy all the time (`tokens`-token replies)."""
        return self.slots / (self.tokens * self.step_time(self.slots))

    # -- decoding ---------------------------------------------------------------------------------------
    def _decode_loop(self) -> None:
        while True:
            with self._cv:
                while not self._stop and not self._queue and not self._active:
                    self._cv.wait()
                if self._stop:
                    return
                while self._queue and len(self._active) < self.slots:
                    self._active.append(self._queue.popleft())
                batch = len(self._active)
                self.peak_active = max(self.peak_active, batch)
            time.sleep(self.step_time(batch))
            with self._cv:
                self.steps += 1
                self.slot_steps += batch
                for job in self._active:
                    job.steps -= 1
                    if job.steps <= 0:
                        job.done.set()
                self._active = [job for job in self._active if job.steps > 0]

    def _admit(self, steps: int) -> _Job | None:
        with self._cv:
            waiting = len(self._queue) + len(self._active)
            if self.queue_limit is not None and waiting >= self.slots + self.queue_limit:
                self.rejected += 1
                return None
            job = _Job(steps)
            self._queue.append(job)
            self.peak_in_flight = max(self.peak_in_flight, waiting + 1)
            self._cv.notify()
            return job

    # -- HTTP -----------------------------------------------------------------------------------------------
    def _handler(self) -> type[JSONHandler]:
        server = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:
                if self.path == "/info" and server.report == "tgi":
                    self.send_json(200, {"model_id": "test/batching", "max_concurrent_requests": server.slots})
                elif self.path == "/props" and server.report == "llama_cpp":
                    self.send_json(200, {"total_slots": server.slots})
                elif self.path in ("/v1/models", "/models"):
                    self.send_json(200, {"object": "list", "data": [{"id": "test/batching", "owned_by": server.owned_by}]})
                elif self.path == "/health":
                    self.send_json(200, {"status": "ok"})
                else:
                    self.send_json(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = self.read_json()
                if body is None:
                    return
                limit = body.get("max_tokens") or (body.get("parameters") or {}).get("max_new_tokens") or server.tokens
                steps = max(1, min(server.tokens, int(limit)))
                job = server._admit(steps)
                if job is None:
                    self.send_json(429, {"error": "Model is overloaded"})
                    return
                job.done.wait()
                with server._cv:
                    server.served += 1
                text = reply_text(body)
                usage = {"prompt_tokens": 20, "completion_tokens": steps, "total_tokens": 20 + steps}
                if self.path in ("/generate", "/"):
                    self.send_json(200, {"generated_text": text, "details": {
                        "finish_reason": "eos_token", "generated_tokens": steps, "prefill": [{"id": 0}] * 20}})
                elif self.path.endswith("/chat/completions"):
                    self.send_json(200, {"object": "chat.completion", "model": "test/batching", "usage": usage, "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})
                else:
                    self.send_json(200, {"object": "text_completion", "model": "test/batching", "usage": usage,
                                     "choices": [{"index": 0, "text": text, "finish_reason": "stop"}]})

        return Handler

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
            for job in list(self._queue) + self._active:
                job.done.set()
        self.http.close()

    def __enter__(self) -> "BatchingServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
