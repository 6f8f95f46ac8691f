"""Fakes of a log-probability source for the probability-verdict tests: in process (`FakeSource`, what
`LocalLogprobs`/`HTTPLogprobs` look like to a judge) and over HTTP (`LogprobServer`, llama.cpp's reply shape)."""

from __future__ import annotations

import math
from typing import Callable, Sequence

from json_server import JSONHandler, LoopbackServer

from hf_prefsel.errors import EndpointError
from hf_prefsel.llm.logprobs import LogprobUsage


class FakeSource:
    """Answers `choices(prompt, options)` with `answer(prompt, options)` (option -> log-probability), records the
    prompts and counts each answer as one call of `tokens` tokens; `refuse=True` is a server without
    log-probabilities."""

    def __init__(self, answer: Callable[[str, Sequence[str]], dict[str, float]], *, refuse: bool = False,
                 tokens: int = 10):
        self.answer, self.refuse, self.tokens = answer, refuse, tokens
        self.usage = LogprobUsage()
        self.prompts: list[str] = []

    def choices(self, prompt: str, options: Sequence[str]) -> dict[str, float]:
        if self.refuse:
            raise EndpointError("this server returns no log-probabilities")
        self.prompts.append(prompt)
        self.usage.add(1, self.tokens)
        return self.answer(prompt, options)


class LogprobServer:
    """`/v1/completions` answering with llama.cpp's `logprobs.content[].top_logprobs`: `answer(prompt)` is either
    P(answer 1) of a pairwise verdict or the top list itself ({token: probability}); the first generated token is a
    space, as Gemma writes `Output: 1`."""

    def __init__(self, answer: Callable[[str], float | dict[str, float]]):
        self.prompts: list[str] = []
        server = self

        class Handler(JSONHandler):
            def do_POST(self) -> None:
                body = self.read_json()
                if body is None:
                    return
                server.prompts.append(body["prompt"])
                assert body["logprobs"] >= 2
                probs = answer(body["prompt"])
                probs = {"1": probs, "2": 1 - probs} if isinstance(probs, float) else probs
                top = [{"token": t, "logprob": math.log(p)} for t, p in probs.items()]
                steps = [{"token": " ", "logprob": 0.0, "top_logprobs": [{"token": " ", "logprob": 0.0}]},
                         {"token": top[0]["token"], "logprob": top[0]["logprob"], "top_logprobs": top}]
                self.send_json(200, {"choices": [{"text": " 1", "logprobs": {"content": steps}}],
                                     "usage": {"total_tokens": 100}})

        self.http = LoopbackServer(Handler)
        self.url = self.http.url

    def close(self) -> None:
        self.http.close()
