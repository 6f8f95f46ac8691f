"""Token log-probabilities over HTTP: every dialect's request and reply shape against a fake server on 127.0.0.1,
prompt log-probabilities at the context/text boundary against a hand computation, the request cache, retries."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from typing import Any

import pytest
from json_server import JSONHandler, LoopbackServer

from hf_prefsel.errors import BudgetExceededError, DataError, EndpointAccessError, EndpointError
from hf_prefsel.llm import LLMConfig
from hf_prefsel.llm.logprobs import HTTPLogprobs, close_logprob_sources, logprob_source
from hf_prefsel.llm.prob_scores import opened_source
from hf_prefsel.llm.logprobs_http import align, text_logprobs

P1, P2 = 0.7, 0.2  # the fake judge's probabilities of answering 1 and 2 (at the second generated position)
OWNERS = {"vllm": "vllm", "openai": "openai", "llama_cpp": "llamacpp", "llama_cpp_python": "me"}


def tokens_of(text: str) -> list[str]:
    """The fake tokenizer: each word with the whitespace before it."""
    return re.findall(r"\s*\S+", text)


def lp(token: str) -> float:
    """The fake model's log-probability of a prompt token."""
    return -0.1 * len(token)


class FakeServer:
    """A server of one dialect that returns log-probabilities in that dialect's shape.

    `logprobs=False` ignores requests for them; `native` is llama.cpp's `/completion` shape (`new`, `post_sampling`,
    `old`); `plan` holds statuses (`(code, body)`) answered to the next POSTs.
    """

    def __init__(self, server: str, *, logprobs: bool = True, native: str = "new"):
        self.server, self.logprobs, self.native = server, logprobs, native
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.gets: list[str] = []
        self.plan: list[tuple[int, str]] = []
        fake = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:
                fake.gets.append(self.path)
                if self.path == "/info" and fake.server == "tgi":
                    self.send_json(200, {"model_id": "fake/tgi-model", "max_concurrent_requests": 8})
                elif self.path == "/v1/models" and fake.server != "tgi":
                    self.send_json(200, {"data": [{"id": "/models/fake-model.gguf", "owned_by": OWNERS[fake.server]}]})
                else:
                    self.send_json(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = self.read_json()
                if body is None:
                    return
                fake.requests.append((self.path, body))
                if fake.plan:
                    code, text = fake.plan.pop(0)
                    self.send_json(code, text)
                    return
                self.send_json(200, fake.answer(self.path, body))

        self.http = LoopbackServer(Handler)
        self.url = self.http.url

    # -- replies ----------------------------------------------------------------------------------------------------
    @staticmethod
    def steps() -> list[list[tuple[str, float]]]:
        """Top alternatives of the generated tokens `:`, ` 1`."""
        return [[(":", -0.01)], [(" 1", math.log(P1)), (" 2", math.log(P2)), (" 3", math.log(0.05))]]

    def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
        if path == "/generate":
            return self.tgi(body)
        if path == "/completion":
            return self.native_reply()
        if path == "/v1/chat/completions":
            content = [{"token": top[0][0], "logprob": top[0][1],
                        "top_logprobs": [{"token": t, "logprob": v} for t, v in top]} for top in self.steps()]
            choice = {"message": {"role": "assistant", "content": ": 1"},
                      "logprobs": {"content": content} if self.logprobs else None}
            return {"choices": [choice], "usage": usage}
        if body.get("echo") and self.logprobs:
            toks = tokens_of(body["prompt"]) + [" gen"]
            offsets, at = [], 0
            for tok in toks:
                offsets.append(at)
                at += len(tok)
            values = [None] + [lp(t) for t in toks[1:-1]] + [-3.0]
            choice = {"text": body["prompt"] + " gen", "logprobs": {"tokens": toks, "token_logprobs": values,
                                                                    "text_offset": offsets, "top_logprobs": None}}
            usage = {"prompt_tokens": len(toks) - 1, "completion_tokens": 1, "total_tokens": len(toks)}
            return {"choices": [choice], "usage": usage}
        choice: dict[str, Any] = {"text": ": 1"}
        if self.logprobs and self.server != "llama_cpp":  # the llama.cpp build here only answers on `/completion`
            choice["logprobs"] = {"tokens": [":", " 1"], "top_logprobs": [dict(top) for top in self.steps()]}
        return {"choices": [choice], "usage": usage}

    def native_reply(self) -> dict[str, Any]:
        if self.native == "old":
            steps = [{"content": top[0][0], "probs": [{"tok_str": t, "prob": math.exp(v)} for t, v in top]}
                     for top in self.steps()]
        elif self.native == "post_sampling":
            steps = [{"token": top[0][0], "prob": math.exp(top[0][1]),
                      "top_probs": [{"token": t, "prob": math.exp(v)} for t, v in top]} for top in self.steps()]
        else:
            steps = [{"token": top[0][0], "logprob": top[0][1],
                      "top_logprobs": [{"token": t, "logprob": v} for t, v in top]} for top in self.steps()]
        return {"content": ": 1", "completion_probabilities": steps, "tokens_evaluated": 10, "tokens_predicted": 2}

    def tgi(self, body: dict[str, Any]) -> dict[str, Any]:
        params = body["parameters"]
        details: dict[str, Any] = {"generated_tokens": 2, "tokens": [{"id": 1, "text": top[0][0], "logprob": top[0][1]}
                                                                      for top in self.steps()]}
        if params.get("top_n_tokens"):
            details["top_tokens"] = [[{"id": 1, "text": t, "logprob": v, "special": False} for t, v in top]
                                     for top in self.steps()]
        if params.get("decoder_input_details"):
            # SentencePiece pieces decoded one by one: the BOS token's text, words without their leading space
            words = tokens_of(body["inputs"])
            details["prefill"] = [{"id": 0, "text": "<s>", "logprob": None}] + [
                {"id": i + 1, "text": w.lstrip(" "), "logprob": lp(w) if i else None} for i, w in enumerate(words)]
        return {"generated_text": ": 1", "details": details}

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def fake():
    servers: list[FakeServer] = []

    def make(server: str, **kwargs: Any) -> FakeServer:
        servers.append(FakeServer(server, **kwargs))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


OPENED: list[HTTPLogprobs] = []


@pytest.fixture(autouse=True)
def close_sources():
    """Every source a test opens through `source` is closed after it (connections, cache file)."""
    yield
    while OPENED:
        OPENED.pop().close()


def source(server: FakeServer, cache_path: str | None = None, **overrides: Any) -> HTTPLogprobs:
    """A source for the fake server with no request cache (a tmp file with `cache_path`), closed after the test."""
    settings: dict[str, Any] = dict(endpoints=[server.url], cache=cache_path is not None, cache_path=cache_path,
                                    max_retries=2, backoff=0.01)
    settings.update(overrides)
    OPENED.append(HTTPLogprobs(LLMConfig(**settings)))
    return OPENED[-1]


EXPECTED = {" 1": pytest.approx(math.log(P1)), " 2": pytest.approx(math.log(P2))}
PROMPT = "Which is better?\nOutput:"


@pytest.mark.parametrize("kind, top", [("vllm", 20), ("llama_cpp_python", 20), ("openai", 5)])
def test_choices_on_legacy_completions(fake, kind, top):
    server = fake(kind)
    logprobs = source(server)
    assert logprobs.choices(PROMPT, [" 1", " 2"]) == EXPECTED
    assert logprobs.dialect == (kind, "fake-model.gguf")  # detected by `HTTPBackend`'s probe
    (path, body), = server.requests
    assert path == "/v1/completions" and body["logprobs"] == top and body["prompt"] == PROMPT
    assert body["temperature"] == 0.0 and "model" not in body
    assert logprobs.usage.calls == 1 and logprobs.usage.total_tokens == 12


def test_choices_on_the_chat_route(fake):
    server = fake("openai")
    messages = [{"role": "system", "content": "Judge."}, {"role": "user", "content": "Which is better?"}]
    logprobs = source(server, model="gpt-x")  # endpoints default to the chat route
    want = {"1": pytest.approx(math.log(P1)), "2": pytest.approx(math.log(P2))}
    assert logprobs.choices(messages, ["1", "2"]) == want
    (path, body), = server.requests
    assert path == "/v1/chat/completions" and body["messages"] == messages and body["model"] == "gpt-x"
    assert body["logprobs"] is True and body["top_logprobs"] == 20
    # on the completion route the same messages are rendered as a transcript and completed
    source(server, route="completion").choices(messages, ["1", "2"])
    path, body = server.requests[-1]
    assert path == "/v1/completions" and body["prompt"].endswith("Input: Which is better?\nOutput:")


@pytest.mark.parametrize("shape", ["new", "post_sampling", "old"])
def test_choices_on_llama_cpp_native_completion(fake, shape):
    server = fake("llama_cpp", native=shape)
    logprobs = source(server)
    assert logprobs.choices(PROMPT, [" 1", " 2"]) == EXPECTED
    assert server.paths == ["/v1/completions", "/completion"]  # that build ignored `logprobs` on the OpenAI route
    body = server.requests[1][1]
    assert body["n_probs"] == 20 and body["n_predict"] == 3 and body["cache_prompt"] is True
    logprobs.choices(PROMPT + " ", [" 1", " 2"])
    assert server.paths[2:] == ["/completion"]  # asked natively from then on
    assert logprobs.usage.total_tokens == 12 + 12 + 12  # the OpenAI reply's usage, then tokens_evaluated + predicted


def test_choices_on_tgi_generate(fake):
    server = fake("tgi")
    logprobs = source(server)
    assert logprobs.choices(PROMPT, [" 1", " 2"]) == EXPECTED
    (path, body), = server.requests
    assert path == "/generate" and body["inputs"] == PROMPT
    assert body["parameters"] == {"max_new_tokens": 3, "do_sample": False, "details": True, "top_n_tokens": 5}
    assert logprobs.dialect == ("tgi", "fake/tgi-model")


def test_continuation_from_echo_counts_the_boundary_token_with_the_text(fake):
    server = fake("vllm")
    logprobs = source(server)
    # tokens: "Say", " it", "\nResponse:", " Blue." + the generated " gen"; "\nResponse:" spans the boundary
    got = logprobs.continuation("Say it\nResp", "onse: Blue.")
    assert got == pytest.approx([-1.0, -0.6])  # lp("\nResponse:") = -0.1 * 10, lp(" Blue.") = -0.1 * 6
    (path, body), = server.requests
    assert path == "/v1/completions" and body["prompt"] == "Say it\nResponse: Blue."
    assert body["echo"] is True and body["max_tokens"] == 1 and body["logprobs"] == 1
    # a text starting at a token boundary: only its own tokens; the generated token never counts
    assert logprobs.continuation("Instruction: hi\nResponse:", " Blue sky.") == pytest.approx([-0.5, -0.5])
    # no context: the first token has no log-probability (nothing predicts it)
    assert logprobs.continuation("", "Blue sky.") == pytest.approx([-0.5])


def test_continuation_from_tgi_prefill(fake):
    server = fake("tgi")
    logprobs = source(server)
    # TGI prints `<s>` first and drops the words' leading spaces; the tokens are placed in the text anyway
    assert logprobs.continuation("Say it\nResp", "onse: Blue.") == pytest.approx([-1.0, -0.6])
    body = server.requests[0][1]
    assert body["parameters"]["decoder_input_details"] is True and body["parameters"]["max_new_tokens"] == 1


def test_llama_cpp_has_no_prompt_logprobs(fake):
    server = fake("llama_cpp")
    with pytest.raises(EndpointError, match="vLLM or TGI endpoint .* embedded model"):
        source(server).continuation("Response:", " Blue.")
    assert server.requests == []  # known without asking


def test_refused_echo_names_the_fix(fake):
    server = fake("openai")
    server.plan = [(400, '{"error": "echo is not supported with logprobs for this model"}')]
    with pytest.raises(EndpointError, match="HTTP 400.*echo is not supported.*vLLM or TGI endpoint"):
        source(server).continuation("Response:", " Blue.")
    assert len(server.requests) == 1  # a refusal of this request: not retried


def test_server_without_logprobs_raises(fake):
    server = fake("vllm", logprobs=False)
    logprobs = source(server)
    with pytest.raises(EndpointError, match="no token log-probabilities"):
        logprobs.choices(PROMPT, [" 1", " 2"])
    with pytest.raises(EndpointError, match="no prompt log-probabilities.*vLLM or TGI"):
        logprobs.continuation("Response:", " Blue.")
    with pytest.raises(EndpointError):  # chat route alike
        logprobs.choices([{"role": "user", "content": "Which?"}], ["1", "2"])


def test_results_are_cached_and_tokens_are_not_stored(fake, cache_path):
    server = fake("vllm")
    secret = "sk-secret-token-0123456789"
    first = source(server, cache_path, token=secret)
    choice = first.choices(PROMPT, [" 1", " 2"])
    scores = first.continuation("Say it\nResp", "onse: Blue.")
    assert first.choices(PROMPT, [" 1", " 2"]) == choice and first.continuation("Say it\nResp", "onse: Blue.") == scores
    assert len(server.requests) == 2 and first.usage.calls == 2 and first.usage.cache_hits == 2
    again = source(server, cache_path, token=secret)  # a rerun: nothing is paid twice
    assert again.choices(PROMPT, [" 1", " 2"]) == choice and again.continuation("Say it\nResp", "onse: Blue.") == scores
    assert len(server.requests) == 2 and again.usage.calls == 0 and again.usage.total_tokens == 0
    assert again.usage.cache_hits == 2
    # another option set, another model: new requests
    again.choices(PROMPT, [" 1", " 3"])
    source(server, cache_path, model="other").choices(PROMPT, [" 1", " 2"])
    assert len(server.requests) == 4
    first.close()
    again.close()
    with sqlite3.connect(cache_path) as db:
        stored = json.dumps(db.execute("SELECT key, text FROM replies").fetchall())
    assert secret not in stored and len(json.loads(stored)) == 4  # results only: the token goes in headers


def test_transient_failure_is_retried(fake):
    server = fake("vllm")
    server.plan = [(500, '{"error": "overloaded"}'), (503, '{"error": "loading"}')]
    logprobs = source(server)
    assert logprobs.choices(PROMPT, [" 1", " 2"]) == EXPECTED
    assert len(server.requests) == 3 and logprobs.usage.retries == 2 and logprobs.usage.calls == 3


def test_retries_give_up_with_the_last_error(fake):
    server = fake("vllm")
    server.plan = [(500, '{"error": "broken"}')] * 3
    with pytest.raises(EndpointError, match="kept failing after 3 attempts.*broken"):
        source(server).choices(PROMPT, [" 1", " 2"])


def test_calls_are_held_to_the_budget_and_cache_hits_are_free(fake, cache_path):
    server = fake("vllm")
    logprobs = source(server, cache_path, max_calls=2)
    choice = logprobs.choices(PROMPT, [" 1", " 2"])
    scores = logprobs.continuation("Say it\nResp", "onse: Blue.")
    assert logprobs.choices(PROMPT, [" 1", " 2"]) == choice  # a cache hit: free, even with the budget spent
    assert logprobs.continuation("Say it\nResp", "onse: Blue.") == scores
    with pytest.raises(BudgetExceededError, match="call budget of 2"):
        logprobs.choices(PROMPT + " ", [" 1", " 2"])
    assert len(server.requests) == 2 and logprobs.usage.calls == 2 and logprobs.usage.cache_hits == 2
    # many at once: the spent budget is each prompt's error, a cached prompt is still answered
    assert logprobs.choices_many([PROMPT, PROMPT + " "], [" 1", " 2"])[0] == choice
    assert isinstance(logprobs.choices_many([PROMPT + " "], [" 1", " 2"])[0], BudgetExceededError)
    assert len(server.requests) == 2


def test_retries_are_calls_of_the_budget(fake):
    server = fake("vllm")
    server.plan = [(503, '{"error": "loading"}')]
    logprobs = source(server, max_calls=1)
    with pytest.raises(BudgetExceededError):  # the retry would be the second call
        logprobs.choices(PROMPT, [" 1", " 2"])
    assert len(server.requests) == 1


def test_tokens_are_held_to_the_budget(fake):
    server = fake("vllm")
    logprobs = source(server, max_total_tokens=12)
    logprobs.choices(PROMPT, [" 1", " 2"])  # 12 tokens: the budget is spent
    with pytest.raises(BudgetExceededError, match="token budget of 12"):
        logprobs.choices(PROMPT + " ", [" 1", " 2"])
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [401, 403, 404])
def test_access_refusals_are_not_retried(fake, status):
    server = fake("vllm")
    server.plan = [(status, '{"error": "no"}')]
    with pytest.raises(EndpointAccessError, match=f"HTTP {status}, not retried"):
        source(server).continuation("Response:", " Blue.")
    assert len(server.requests) == 1


def test_a_model_without_logits_is_not_retried(fake):
    server = fake("llama_cpp_python")
    server.plan = [(500, '{"error": "logprobs is not supported for models created with logits_all=False"}')]
    with pytest.raises(EndpointError, match="logits_all"):
        source(server).choices(PROMPT, [" 1", " 2"])
    assert len(server.requests) == 1


def test_replicas_take_turns(fake):
    servers = [fake("vllm"), fake("vllm")]
    logprobs = HTTPLogprobs(LLMConfig(endpoints=[s.url for s in servers], cache=False, server="vllm", model="m"))
    results = logprobs.choices_many([f"{PROMPT} {i}" for i in range(4)], [" 1", " 2"])
    assert results == [EXPECTED] * 4
    assert [len(s.requests) for s in servers] == [2, 2]
    logprobs.close()


def test_one_source_per_configuration_for_the_process(fake, cache_path):
    server = fake("vllm")
    config = LLMConfig(endpoints=[server.url], cache_path=cache_path, max_retries=0)
    try:
        with opened_source(config) as first:  # a run closes what it opened: the shared source stays usable
            assert isinstance(first, HTTPLogprobs) and first.choices(PROMPT, [" 1", " 2"]) == EXPECTED
        with opened_source(LLMConfig(endpoints=[server.url], cache_path=cache_path, max_retries=0)) as second:
            assert second is first and second.choices(PROMPT + " ", [" 1", " 2"]) == EXPECTED
        assert server.gets.count("/v1/models") == 1 and len(server.requests) == 2  # probed once, one cache file
        assert logprob_source(config.replace(model="other")) is not first
        assert logprob_source(config.replace(cache=False)) is not first
        assert logprob_source(config.replace(max_calls=5)).budget.max_calls == 5  # a budget per source
        local = logprob_source(LLMConfig(cache_path=cache_path, max_total_tokens=100))  # the model loads when used
        assert local is not logprob_source(LLMConfig(cache_path=cache_path)) and local.budget.max_total_tokens == 100
    finally:
        close_logprob_sources()
    assert first._http.is_closed and first.cache.store is None
    assert logprob_source(config) is not first  # a new one after closing
    close_logprob_sources()


@pytest.mark.parametrize("kind, status, reply", [
    ("vllm", 400, "This model's maximum context length is 2048 tokens. However, you requested 5000 tokens."),
    ("llama_cpp_python", 400, "Requested tokens (5000) exceed context window of 2048"),
    ("tgi", 422, "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 2048. Given: 5000"),
])
def test_a_prompt_too_long_is_that_rows_data_error(fake, kind, status, reply):
    server = fake(kind)
    server.plan = [(status, json.dumps({"error": reply})), (status, json.dumps({"error": reply}))]
    logprobs = source(server)
    with pytest.raises(DataError, match="does not fit the model's context.*5000"):
        logprobs.continuation("Response:", " Blue.")
    with pytest.raises(DataError, match="does not fit"):  # a judge's question alike: that question fails alone
        logprobs.choices(PROMPT, [" 1", " 2"])
    assert len(server.requests) == 2  # not retried
    assert logprobs.continuation("Response:", " Blue.") == pytest.approx([-0.6])  # the next row is scored
    server.plan = [(422, '{"error": "Input validation error: `top_n_tokens` must be <= 2"}')]
    with pytest.raises(EndpointError, match="top_n_tokens"):  # another 4xx: the server's refusal, not the row's
        logprobs.choices(PROMPT, [" 1", " 2"])


def test_align_places_tokens_that_do_not_spell_the_text():
    full = "Hello world, café ok"
    # a special token, a lost leading space, a character split over two byte tokens
    assert align(full, ["<s>", "Hello", "world", ",", " caf", "<0xC3>", "<0xA9>", " ok"]) == [
        (0, 0), (0, 5), (5, 11), (11, 12), (12, 16), (16, 17), (16, 17), (17, 20)]
    with pytest.raises(EndpointError, match="do not spell"):
        align(full, ["Hello", "ok"])


def test_text_adding_no_token_is_a_data_error():
    echoed = {"tokens": ["Hi", " there"], "token_logprobs": [None, -1.0], "text_offset": [0, 2]}
    reply = {"choices": [{"logprobs": echoed}]}
    with pytest.raises(DataError):
        text_logprobs(reply, "Hi there", "")
    assert text_logprobs(reply, "Hi", " there") == [-1.0]


@pytest.mark.slow
def test_in_process_results_share_the_cache(cache_path):
    """The embedded model's results go into the same cache, keyed by the model file's name; a hit loads no model."""
    pytest.importorskip("llama_cpp")
    from hf_prefsel.llm.logprobs import LocalLogprobs

    first = LocalLogprobs(n_ctx=256, cache_path=cache_path)
    scores = first.continuation("Response:", " Blue.")
    assert first.continuation("Response:", " Blue.") == scores
    assert (first.usage.calls, first.usage.cache_hits) == (1, 1)
    again = LocalLogprobs(n_ctx=256, cache_path=cache_path)
    assert again.choices("Response:", [" Blue."]) == {" Blue.": pytest.approx(sum(scores))}
    assert again._llm is None and again.usage.calls == 0
    first.close()
    again.close()
