"""IFD from token log-probabilities: the ratio against a hand computation (fake source, fake echo server), and one
real-model run (no request cache: a rerun exercises the model again)."""

from __future__ import annotations

import math

import pytest
from datasets import Dataset

from hf_prefsel.errors import EndpointError
from hf_prefsel.llm import LLMConfig
from hf_prefsel.llm.logprobs import LogprobUsage, choice_logprobs, close_logprob_sources, top_logprob_lists
from hf_prefsel.tacos.likelihood import ALONE_TEMPLATE, IFDScorer, cherry_quality, fit_quality, ifd_ratio
from llm.test_logprobs_http import FakeServer


class FakeSource:
    """Chosen per-token log-probabilities of the response, with and without the instruction."""

    def __init__(self, conditioned: list[float], alone: list[float]):
        self.conditioned, self.alone = conditioned, alone
        self.seen: list[tuple[str, str]] = []
        self.usage = LogprobUsage()

    def continuation(self, context: str, text: str) -> list[float]:
        self.seen.append((context, text))
        return self.alone if context == ALONE_TEMPLATE else self.conditioned

    def choices(self, prompt, options):  # pragma: no cover - not used by IFD
        raise AssertionError


def test_ifd_matches_hand_computation():
    conditioned, alone = [-0.5, -1.0, -1.5], [-2.0, -1.0, -3.0, -2.0]
    # PPL(A|Q) = exp((0.5 + 1.0 + 1.5) / 3) = e^1; PPL(A) = exp((2 + 1 + 3 + 2) / 4) = e^2; IFD = e^-1
    source = FakeSource(conditioned, alone)
    ds = Dataset.from_dict({"instruction": ["Name a colour."], "input": [""], "output": ["Blue."]})
    out = ds.map(IFDScorer(source=source, quality="fit"), batched=True)
    assert out["ppl_conditioned"][0] == pytest.approx(math.e)
    assert out["ppl_alone"][0] == pytest.approx(math.e ** 2)
    assert out["ifd"][0] == pytest.approx(math.exp(-1))
    assert out["ifd_quality"][0] == pytest.approx(1 - math.exp(-1))
    assert out["ifd_error"][0] == ""
    cherry = ds.map(IFDScorer(source=FakeSource(conditioned, alone)), batched=True)  # the default: Cherry's rule
    assert cherry["ifd_quality"][0] == pytest.approx(math.exp(-1))
    # PMI sums the same passes: (-0.5 - 1.0 - 1.5) - (-2.0 - 1.0 - 3.0 - 2.0) = 5 nats
    assert out["pmi"][0] == pytest.approx(5.0)
    pmi = ds.map(IFDScorer(source=FakeSource(conditioned, alone), quality="pmi"), batched=True)
    assert pmi["ifd_quality"][0] == pytest.approx(5.0)
    unhelpful = ds.map(IFDScorer(source=FakeSource(alone, conditioned), quality="pmi"), batched=True)
    assert unhelpful["pmi"][0] == pytest.approx(-5.0) and unhelpful["ifd_quality"][0] == 0.0
    # the response is scored after the same cue in both passes; only the instruction differs
    assert source.seen == [("Instruction: Name a colour.\nResponse:", " Blue."), ("Response:", " Blue.")]


class InstructedServer(FakeServer):
    """The fake echo server (each token's log-probability -0.1 per character), its model twice as sure of every
    token of a prompt that holds an instruction."""

    def answer(self, path, body):
        data = super().answer(path, body)
        if "Instruction:" in body.get("prompt", ""):
            echoed = data["choices"][0]["logprobs"]
            echoed["token_logprobs"] = [None if v is None else v / 2 for v in echoed["token_logprobs"]]
        return data


@pytest.fixture
def served():
    servers: list[FakeServer] = []

    def make(server: FakeServer) -> FakeServer:
        servers.append(server)
        return server

    yield make
    close_logprob_sources()  # the sources IFDScorer asked `logprob_source` for
    for server in servers:
        server.close()


def test_ifd_over_http_matches_hand_computation(served):
    server = served(InstructedServer("vllm"))
    ds = Dataset.from_dict({"instruction": ["Name a colour.", "Name a fruit."], "output": ["x" * 30, "Deep blue."]})
    server.plan = [(400, '{"error": "This model\'s maximum context length is 2048 tokens; you asked for 9000."}')]
    out = ds.map(IFDScorer(LLMConfig(endpoints=[server.url], cache=False), input_column=None), batched=True)
    # the first row's text does not fit the server's context: recorded, and the run goes on
    assert math.isnan(out["ifd"][0]) and out["ifd_error"][0].startswith("DataError") and "context" in out["ifd_error"][0]
    # " Deep", " blue." after "Response:": -0.5, -0.6 alone, half that after the instruction
    assert out["ppl_alone"][1] == pytest.approx(math.exp(0.55))
    assert out["ppl_conditioned"][1] == pytest.approx(math.exp(0.275))
    assert out["ifd"][1] == pytest.approx(math.exp(-0.275)) and out["ifd_quality"][1] == pytest.approx(math.exp(-0.275))
    asked = [body["prompt"] for path, body in server.requests if path == "/v1/completions"]
    assert asked[-2:] == ["Instruction: Name a fruit.\nResponse: Deep blue.", "Response: Deep blue."]
    assert all(body["echo"] is True for _, body in server.requests)


def test_ifd_on_a_server_without_prompt_logprobs_fails_at_once(served):
    server = served(FakeServer("llama_cpp"))
    ds = Dataset.from_dict({"instruction": ["Name a colour."] * 3, "output": ["Blue."] * 3})
    with pytest.raises(EndpointError, match="llama.cpp's server returns no prompt log-probabilities.*vLLM or TGI") as err:
        ds.map(IFDScorer(LLMConfig(endpoints=[server.url], cache=False), input_column=None), batched=True)
    assert "\n" not in str(err.value) and "logits_all=True" in str(err.value)
    assert server.requests == []  # known from the probe, before any row is sent


def test_empty_response_is_recorded_not_scored():
    ds = Dataset.from_dict({"instruction": ["Say hi."], "output": ["  "]})
    out = ds.map(IFDScorer(source=FakeSource([-1.0], [-1.0]), input_column=None), batched=True)
    assert math.isnan(out["ifd"][0]) and "empty" in out["ifd_error"][0]
    assert out["ifd_quality"][0] == 0.0


def test_quality_rules():
    assert cherry_quality(0.8) == 0.8 and cherry_quality(1.2) == 0.0 and cherry_quality(math.nan) == 0.0
    assert fit_quality(0.25) == 0.75 and fit_quality(1.5) == 0.0
    assert math.isnan(ifd_ratio([], [-1.0]))


def test_top_logprobs_both_reply_shapes():
    chat_shape = {"choices": [{"logprobs": {"content": [
        {"token": " ", "logprob": -0.1, "top_logprobs": [{"token": " ", "logprob": -0.1}]},
        {"token": "1", "logprob": -0.4, "top_logprobs": [{"token": "1", "logprob": -0.4}, {"token": "2", "logprob": -1.2}]},
    ]}}]}
    legacy = {"choices": [{"logprobs": {"top_logprobs": [{" ": -0.1}, {"2": -0.3, "x": -2.0}]}}]}
    assert choice_logprobs(top_logprob_lists(chat_shape), [" 1", " 2"]) == {" 1": -0.4, " 2": -1.2}
    assert choice_logprobs(top_logprob_lists(legacy), [" 1", " 2"]) == {" 1": -math.inf, " 2": -0.3}


@pytest.mark.slow
def test_ifd_on_the_embedded_model():
    pytest.importorskip("llama_cpp")
    ds = Dataset.from_dict({
        "instruction": ["What is the capital of France?", "What is the capital of France?"],
        "output": ["The capital of France is Paris.", "Bananas are rich in potassium."],
    })
    out = ds.map(IFDScorer(LLMConfig(cache=False), input_column=None), batched=True)
    fitting, unrelated = out["ifd"]
    assert 0 < fitting < 1  # the instruction makes the fitting answer more predictable
    assert fitting < unrelated  # ... and more so than an unrelated one


@pytest.mark.slow
def test_local_logprobs_match_llama_cpp_eval():
    """Reading only the scored positions' logits gives what llama-cpp-python's own full evaluation gives."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from hf_prefsel.llm import local_model_path
    from hf_prefsel.llm.logprobs import LocalLogprobs

    context, text = "Instruction: Name a primary colour.\nResponse:", " Red is a primary colour."
    source = LocalLogprobs(n_ctx=256)
    got = source.continuation(context, text)
    assert source.continuation("Response:", text) != got  # another context: other probabilities
    again = source.continuation(context, text)  # after the cache held another prompt
    ref = llama_cpp.Llama(model_path=local_model_path(), logits_all=True, n_ctx=256, verbose=False)
    full = ref.tokenize((context + text).encode(), add_bos=True)
    head = ref.tokenize(context.encode(), add_bos=True)
    ref.eval(full)
    table = llama_cpp.Llama.logits_to_logprobs(ref.scores[: len(full)])
    want = [float(table[i - 1, full[i]]) for i in range(len(head), len(full))]
    # quantized matrix products sum in another order for other batch shapes: up to ~0.1 nat apart (an off-by-one
    # position or a wrong token would be nats apart)
    assert got == pytest.approx(want, abs=0.15)
    assert again == pytest.approx(got, abs=0.15)
