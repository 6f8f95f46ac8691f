"""Probability verdicts: a fake server returns chosen log-probabilities; averaging the two orders cancels a pure
position preference exactly and keeps the content preference; servers without log-probabilities fall back."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest
from datasets import Dataset

from hf_prefsel.errors import ConfigError
from hf_prefsel.llm import LLMConfig
from hf_prefsel.tacos import ComparativeScorer, ComparativeScorerConfig
from hf_prefsel.tacos.prob_verdict import PREFERENCE_PROMPT, first_preference


class LogprobServer:
    """`/v1/completions` answering ` 1` with llama.cpp's `logprobs.content[].top_logprobs`, where P(answer 1) is
    `p_first(prompt)`; the first generated token is a space, as Gemma writes `Output: 1`."""

    def __init__(self, p_first: Callable[[str], float]):
        self.prompts: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.prompts.append(body["prompt"])
                assert body["logprobs"] >= 2
                p = p_first(body["prompt"])
                top = [{"token": "1", "logprob": math.log(p)}, {"token": "2", "logprob": math.log(1 - p)}]
                steps = [{"token": " ", "logprob": 0.0, "top_logprobs": [{"token": " ", "logprob": 0.0}]},
                         {"token": "1", "logprob": top[0]["logprob"], "top_logprobs": top}]
                data = json.dumps({"choices": [{"text": " 1", "logprobs": {"content": steps}}],
                                   "usage": {"total_tokens": 100}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _pairs() -> Dataset:
    return Dataset.from_dict({
        "instruction": ["Capital of France?", "Capital of France?", "2 + 2?", "2 + 2?"],
        "output": ["Paris. GOOD", "Lyon.", "5.", "4. GOOD"],
        "cluster_ids": [[0], [0], [1], [1]],
    })


def _sample_one_is_good(prompt: str) -> bool:
    query = prompt.rsplit("Input: ", 1)[1]
    return "GOOD" in query.split("[Sample 2]")[0]


@pytest.fixture
def logprob_server():
    servers = []

    def make(p_first):
        servers.append(LogprobServer(p_first))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _score(server, swap: bool) -> list[float]:
    llm = LLMConfig(endpoints=[server.url], route="completion", server="llama_cpp", model="fake", cache=False)
    scorer = ComparativeScorer(llm, ComparativeScorerConfig(verdict="probability", swap=swap, input_column=None))
    return scorer.score(_pairs(), progress=False)["score"], scorer


def test_pure_position_preference_cancels_exactly(logprob_server):
    server = logprob_server(lambda prompt: 0.83)  # always prefers whatever is shown first
    one_order, _ = _score(server, swap=False)
    assert one_order[0] > one_order[1] and one_order[2] > one_order[3]  # one order: position decides
    both, scorer = _score(server, swap=True)
    assert both[0] == both[1] and both[2] == both[3]  # exactly: a tie, not a near-tie
    assert both[0] == pytest.approx(50.5)
    assert scorer.report.position_bias_rate == 1.0  # every winner flipped with the order, and it is reported
    assert scorer.report.usage == {"calls": 4, "total_tokens": 400}
    assert all(p.endswith("\nOutput:") for p in server.prompts)


def test_content_preference_survives_and_bias_is_removed(logprob_server):
    d, bias = 0.2, 0.25  # P(first better) = 0.5 + d (first is the better one) or 0.5 - d, plus a position bias
    server = logprob_server(lambda prompt: 0.5 + (d if _sample_one_is_good(prompt) else -d) + bias)
    scores, scorer = _score(server, swap=True)
    good, bad = 1 + 99 * (0.5 + d), 1 + 99 * (0.5 - d)  # the bias is gone: only d is left
    assert scores == pytest.approx([good, bad, bad, good])
    # the bias is larger than d, so each order alone picks the first sample: every winner flips, yet the average is right
    assert scorer.report.position_bias_rate == 1.0


def test_server_without_logprobs_falls_back_to_sampled(fault_server):
    server = fault_server(responder=lambda body: '{"analysis": "x", "score_1": 70, "score_2": 30}')
    server.plan = [("status", 500, {"error": "logits_all is False"})]  # the log-probability request
    scorer = ComparativeScorer(server.config(), ComparativeScorerConfig(verdict="probability", input_column=None))
    scores = scorer.score(_pairs(), progress=False)["score"]
    assert scores == [70.0, 30.0, 70.0, 30.0]


def test_first_preference_and_prompt():
    assert first_preference({" 1": math.log(0.3), " 2": math.log(0.1)}) == pytest.approx(0.75)
    assert first_preference({" 1": -math.inf, " 2": -1.0}) == 0.0
    answers = [a for _, a in PREFERENCE_PROMPT.examples]
    assert sorted(answers) == ["1", "1", "2", "2"]  # the demonstrations teach no position
    with pytest.raises(ConfigError):
        ComparativeScorerConfig(verdict="likely")
