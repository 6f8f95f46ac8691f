"""TaP fixtures: a scriptable fake OpenAI-compatible endpoint, real prompts from ../shared/data, a tiny taxonomy."""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import pytest

from shared_data import read_jsonl  # tests/ is on pythonpath

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def stage_of(body: dict[str, Any]) -> str:
    """Which TaP stage a request comes from, judged from the rendered prompt the client sent."""
    text = body.get("prompt") or json.dumps(body.get("messages"), ensure_ascii=False)
    if "Count:" in text or "数量：" in text:
        return "prompts"
    if "strict judge" in text or "评审员" in text:
        return "judge"
    return "responses"


def last_query(body: dict[str, Any]) -> str:
    """The last user message of a request (the part after the final `Input:` on the completion route)."""
    if "prompt" in body:
        return body["prompt"].rsplit("Input: ", 1)[-1].rsplit("\nOutput:", 1)[0]
    return body["messages"][-1]["content"]


class Request:
    """One request as a responder sees it: the raw body, the TaP stage, the last user message, sampling params."""

    def __init__(self, body: dict[str, Any]):
        self.body = body
        self.stage = stage_of(body)
        self.query = last_query(body)
        self.seed = body.get("seed")
        self.temperature = body.get("temperature")

    def count(self) -> int:
        """How many prompts a generation request asks for."""
        import re

        return int(re.search(r"(?:Count: |数量：)(\d+)", self.query).group(1))

    def topic(self) -> str:
        """The taxonomy path of a generation request."""
        first = self.query.split("\n")[0]
        return first.split("：", 1)[-1] if "：" in first else first.split(": ", 1)[-1]


def continuation(body: dict[str, Any], text: str) -> str:
    """What a model writes after a completion prompt that already opens the answer (e.g. `Output: {"topic": "`)."""
    started = body.get("prompt", "").rsplit("Output:", 1)[-1].lstrip() if "prompt" in body else ""
    return text[len(started):] if started and text.startswith(started) else text


@pytest.fixture
def fake_llm(fault_server):
    """Factory: `fake_llm(responder)` starts a fake llama-cpp-python endpoint answering `responder(Request)`.

    It is the suite's `fault_server` (see tests/conftest.py) with a TaP view of each request, plus
    `bodies(stage)`: the request bodies one TaP stage sent.
    """

    def make(responder: Callable[[Request], str]):
        server = fault_server(responder=lambda body: continuation(body, responder(Request(body))))
        server.bodies = lambda stage: [b for b in server.requests if stage_of(b) == stage]
        return server

    return make


@pytest.fixture(scope="session")
def zh_prompts() -> list[str]:
    """Real Chinese instructions (BELLE, AlignBench, InstructionWild seeds, ...), de-duplicated."""
    rows = read_jsonl("multilingual", "zh_instructions_labelled.jsonl")
    seen, out = set(), []
    for r in rows:
        text = r["instruction"].strip()
        if "\n" not in text and 8 <= len(text) <= 120 and text not in seen:
            seen.add(text)
            out.append(text)
    return out


@pytest.fixture(scope="session")
def en_prompts() -> list[str]:
    """Real English instructions (the 175 Self-Instruct seed tasks)."""
    return [r["instruction"].strip() for r in read_jsonl("instructions", "selfinstruct_seed_tasks.jsonl")]


TINY_TAXONOMY = {
    "name": "tiny",
    "languages": ["en", "zh"],
    "axes": [
        {"id": "task_type", "names": {"en": "Task type", "zh": "任务类型"}, "values": [
            {"id": "open_qa", "names": {"en": "open question answering", "zh": "开放问答"}},
            {"id": "writing", "names": {"en": "writing", "zh": "写作"}},
        ]},
    ],
    "nodes": [
        {"id": "science", "names": {"en": "Science", "zh": "科学"}, "children": [
            {"id": "physics", "names": {"en": "Physics", "zh": "物理"}},
            {"id": "biology", "names": {"en": "Biology", "zh": "生物"}},
        ]},
        {"id": "life", "names": {"en": "Daily life", "zh": "日常生活"}, "children": [
            {"id": "cooking", "names": {"en": "Cooking", "zh": "烹饪"}},
        ]},
    ],
}


@pytest.fixture
def tiny_taxonomy():
    from hf_prefsel.tap import Taxonomy

    return Taxonomy.from_mapping(json.loads(json.dumps(TINY_TAXONOMY)))


@pytest.fixture
def tiny_data() -> dict:
    """A fresh copy of the tiny taxonomy's dict, to mutate in validation tests."""
    return json.loads(json.dumps(TINY_TAXONOMY))


@pytest.fixture(scope="session")
def read_shared():
    """`read_shared(*parts, limit=None)`: rows of a JSONL file under ../shared/data."""
    return read_jsonl


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> str:
    """A tiny random Llama (hidden 32, 1 layer) with a byte-level BPE tokenizer trained here on Chinese and English
    text: enough for TRL's DPO data path, no downloads."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny_lm")
    corpus = [r["instruction"] for r in read_jsonl("multilingual", "zh_instructions_labelled.jsonl", limit=200)]
    corpus += [r["instruction"] for r in read_jsonl("instructions", "selfinstruct_seed_tasks.jsonl")]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=600, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, vocab_size=len(fast), max_position_embeddings=256, tie_word_embeddings=True,
                         pad_token_id=fast.pad_token_id, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(out)
    return str(out)
