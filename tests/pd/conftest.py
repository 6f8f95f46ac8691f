"""PD test fixtures: real multi-aspect rows (read at test time from ../shared/data) and a tiny random Llama."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

MULTIASPECT = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "preference_multiaspect")
)


def multiaspect_path(name: str) -> str:
    """Path of a `preference_multiaspect` file; skips locally (fails in CI) when the shared data is absent."""
    path = os.path.join(MULTIASPECT, name)
    if not os.path.exists(path):
        if os.environ.get("CI"):
            pytest.fail(f"Test data {path} is missing.")
        pytest.skip(f"Test data {path} is missing.")
    return path


@pytest.fixture(scope="session")
def sf_path() -> str:
    return multiaspect_path("sf_data2text_multiaspect.jsonl")


@pytest.fixture(scope="session")
def topical_path() -> str:
    return multiaspect_path("topicalchat_usr_multiaspect.jsonl")


@pytest.fixture(scope="session")
def qa_path() -> str:
    return multiaspect_path("qa_feedback_finegrained_dev.jsonl")


@pytest.fixture(scope="session")
def sf_rows(sf_path) -> list[dict]:
    with open(sf_path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _corpus() -> list[str]:
    texts = []
    for name in ("sf_data2text_multiaspect.jsonl", "topicalchat_usr_multiaspect.jsonl"):
        path = os.path.join(MULTIASPECT, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                for _, line in zip(range(300), fh):
                    row = json.loads(line)
                    texts.append(row["prompt"])
                    texts.extend(r["text"] for r in row["responses"])
    return texts or ["a tiny corpus for a tiny tokenizer", "with a few words in it"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A tiny random Llama (hidden 64, 2 layers) and a BPE tokenizer trained here; no downloads.

    Saved as a causal-LM checkpoint: `RewardTrainer` loads it as a sequence classifier (random score head),
    `DPOTrainer` as a causal LM.
    """
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)  # a 98k-parameter model gains nothing from threads; the 2 cores are shared
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny_llama")
    special = ["<pad>", "<s>", "</s>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        _corpus(),
        trainers.BpeTrainer(vocab_size=512, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(fast),
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    return str(out)
