"""Provenance, dataset cards and local saving of curated datasets, on real LIMA rows (pushing: test_push_roundtrip)."""

from __future__ import annotations

from datetime import datetime

import datasets
import numpy as np
import pytest
import yaml
from huggingface_hub import DatasetCard

import hf_prefsel
from hf_prefsel.errors import ConfigError
from hf_prefsel.hub import Provenance, build_dataset_card, save_dataset, size_category

SECRET = "hf_" + "S3cr3tT0kenValue" * 3


@pytest.fixture
def ds(lima_rows) -> datasets.Dataset:
    return datasets.Dataset.from_list(lima_rows)


@pytest.fixture
def prov() -> Provenance:
    return Provenance(
        method="TACOS",
        papers=[{"title": "TACOS: Open Tagging and Comparative Scoring", "arxiv": "2410.03512"}],
        parameters={"n_clusters": 16, "temperature": 0.2, "tag_prompt": "a|b", "api_key": "sk-" + "x" * 30},
        model="google/gemma-3-270m via llama.cpp at 127.0.0.1:8080",
        source="/work/shared/data/instructions/lima_train_1k.jsonl",
        counts={"rows_in": 1000, "rows_out": 12, "llm_calls": 2000, "prompt_tokens": 123456, "failures": 3},
        selection_budget=12,
    )


def _meta_and_body(text: str) -> tuple[dict, str]:
    _, meta, body = text.split("---\n", 2)
    return yaml.safe_load(meta), body


# ---------------------------------------------------------------------- Provenance


def test_provenance_defaults(prov):
    assert prov.library_version == hf_prefsel.__version__
    created = datetime.fromisoformat(prov.created)
    assert created.tzinfo is not None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": ""}, "method"),
        ({"method": "TACOS", "papers": [{"title": "x"}]}, "arxiv"),
        ({"method": "TACOS", "papers": "2410.03512"}, "papers"),
        ({"method": "TACOS", "counts": {"rows_in": "many"}}, "counts"),
        ({"method": "TACOS", "parameters": [1, 2]}, "parameters"),
        ({"method": "TACOS", "selection_budget": "all"}, "selection_budget"),
    ],
)
def test_provenance_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Provenance(**kwargs)


def test_provenance_dict_round_trip(prov):
    again = Provenance.from_dict(prov.to_dict())
    assert again.method == prov.method and again.counts == prov.counts and again.created == prov.created
    with pytest.raises(ConfigError, match="Unknown Provenance fields: bogus"):
        Provenance.from_dict({**prov.to_dict(), "bogus": 1})


def test_secrets_never_reach_the_card(ds):
    prov = Provenance(
        method="TAGS",
        parameters={
            "hf_token": SECRET,
            "max_tokens": 256,
            "weights": np.array([0.5, 0.25]),
            "token": "",
            "nested": {"Authorization": "Bearer abcdefghijkl", "password": "hunter2"},
        },
        model=f"https://endpoint.invalid?token={SECRET}",
        counts={"prompt_tokens": 10, "completion_tokens": 5},
    )
    text = str(build_dataset_card(ds, prov))
    assert SECRET not in text and "abcdefghijkl" not in text and "hunter2" not in text
    meta, body = _meta_and_body(text)
    params = meta["hf_prefsel"]["parameters"]
    assert params["hf_token"] == "<redacted>" and params["nested"]["Authorization"] == "<redacted>"
    assert params["max_tokens"] == 256  # a count, not a credential
    assert params["weights"] == [0.5, 0.25] and params["token"] == ""
    assert meta["hf_prefsel"]["counts"] == {"prompt_tokens": 10, "completion_tokens": 5}


# ---------------------------------------------------------------------- card


@pytest.mark.parametrize(
    "n, label",
    [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (99_999, "10K<n<100K"), (2_500_000, "1M<n<10M"), (10**13, "n>1T")],
)
def test_size_category(n, label):
    assert size_category(n) == label


def test_card_records_method_params_counts_version(ds, prov):
    card = build_dataset_card(ds, prov, repo_id="someone/lima-tacos")
    assert isinstance(card, DatasetCard)
    meta, body = _meta_and_body(str(card))
    assert meta["library_name"] == "hf_prefsel"
    assert meta["tags"] == ["hf-prefsel", "tacos"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["pretty_name"] == "lima-tacos"
    assert meta["hf_prefsel"] == prov.to_dict()
    assert meta["hf_prefsel"]["library_version"] == hf_prefsel.__version__

    assert "built with **TACOS**" in body and "1,000 rows went in, 12 came out" in body
    assert f"hf_prefsel {hf_prefsel.__version__}" in body
    assert "`google/gemma-3-270m via llama.cpp at <local endpoint>`" in body
    assert "- **Source data:** `lima_train_1k.jsonl`" in body
    assert "| n_clusters | `16` |" in body and "| temperature | `0.2` |" in body
    assert "| tag_prompt | `a\\|b` |" in body  # a pipe cannot break the table
    assert "| api_key | `<redacted>` |" in body
    assert "| llm_calls | 2,000 |" in body and "| prompt_tokens | 123,456 |" in body and "| failures | 3 |" in body
    assert "**Selection budget:** 12" in body
    assert "[arXiv:2410.03512](https://arxiv.org/abs/2410.03512)" in body
    assert 'load_dataset("someone/lima-tacos")' in body
    assert "12 rows; columns: `id`, `instruction`" in body
    # huggingface_hub reads it back
    assert DatasetCard(str(card)).data.library_name == "hf_prefsel"


def test_card_for_a_dataset_dict_counts_all_splits(lima_rows, prov):
    rows = lima_rows * 84  # 1008 rows in total, each split < 1K
    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows[:900]), "test": datasets.Dataset.from_list(rows[900:])}
    )
    meta, body = _meta_and_body(str(build_dataset_card(dd, prov)))
    assert meta["size_categories"] == ["1K<n<10K"]
    assert "| train | 900 |" in body and "| test | 108 |" in body
    assert "1,008 rows" in body


def test_card_rejects_non_datasets(prov):
    with pytest.raises(ConfigError, match="Dataset or DatasetDict"):
        build_dataset_card([{"a": 1}], prov)
    with pytest.raises(ConfigError, match="Provenance"):
        build_dataset_card(datasets.Dataset.from_list([{"a": 1}]), {"method": "TACOS"})


# ---------------------------------------------------------------------- save_dataset


@pytest.mark.parametrize("name", ["curated.jsonl", "curated.json", "curated.parquet"])
def test_save_dataset_files_reload_equal(tmp_path, ds, prov, name):
    out = save_dataset(ds, tmp_path / "sub" / name, prov)
    assert out == tmp_path / "sub" / name and out.is_file()
    builder = "parquet" if name.endswith(".parquet") else "json"
    if builder == "json":
        first = out.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("{") and first.endswith("}")  # JSON lines, one row a line
        assert len(out.read_text(encoding="utf-8").splitlines()) == len(ds)
    reloaded = datasets.load_dataset(builder, data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert reloaded.to_list() == ds.to_list()

    card_path = tmp_path / "sub" / "curated.README.md"
    meta, body = _meta_and_body(card_path.read_text(encoding="utf-8"))
    assert meta["hf_prefsel"]["method"] == "TACOS"
    assert meta["hf_prefsel"]["parameters"]["n_clusters"] == 16
    assert meta["hf_prefsel"]["counts"]["rows_out"] == 12
    assert meta["hf_prefsel"]["library_version"] == hf_prefsel.__version__
    assert f'load_dataset("{builder}", data_files="{name}", split="train")' in body


def test_save_dataset_directory(tmp_path, ds, prov):
    out = save_dataset(ds, tmp_path / "curated", prov)
    assert out.is_dir()
    assert datasets.load_from_disk(str(out)).to_list() == ds.to_list()
    meta, body = _meta_and_body((out / "README.md").read_text(encoding="utf-8"))
    assert meta["hf_prefsel"]["method"] == "TACOS"
    assert 'load_from_disk("curated")' in body


def test_save_dataset_dict_directory_and_single_file(tmp_path, lima_rows, prov):
    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(lima_rows[:8]), "test": datasets.Dataset.from_list(lima_rows[8:])}
    )
    out = save_dataset(dd, tmp_path / "dd", prov)
    back = datasets.load_from_disk(str(out))
    assert {k: v.to_list() for k, v in back.items()} == {k: v.to_list() for k, v in dd.items()}
    assert (out / "README.md").exists()

    with pytest.raises(ConfigError, match="2 splits"):
        save_dataset(dd, tmp_path / "dd.jsonl")
    single = datasets.DatasetDict({"train": dd["train"]})
    path = save_dataset(single, tmp_path / "single.parquet")
    assert datasets.Dataset.from_parquet(str(path)).to_list() == dd["train"].to_list()


def test_save_dataset_without_provenance_writes_no_card(tmp_path, ds):
    save_dataset(ds, tmp_path / "plain.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.jsonl"]


def test_save_dataset_unknown_extension(tmp_path, ds):
    with pytest.raises(ConfigError, match=r"'\.csv'.*\.jsonl.*\.json.*\.parquet.*directory"):
        save_dataset(ds, tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- fit to publish


@pytest.mark.parametrize(
    "text, expected",
    [
        ("gemma-3-270m at http://127.0.0.1:8080/v1", "gemma-3-270m at <local endpoint>"),
        ("gemma (llama.cpp, 127.0.0.1)", "gemma (llama.cpp, <local endpoint>)"),
        ("http://localhost:8000", "<local endpoint>"),
        ("http://192.168.1.20:8000/v1, http://10.0.0.3", "<local endpoint>, <local endpoint>"),
        ("http://gpu-box:8000/v1", "<local endpoint>"),
        ("http://[::1]:8080", "<local endpoint>"),
        ("https://api.example.com/v1", "https://api.example.com/v1"),
        ("Qwen/Qwen2.5-7B-Instruct at https://router.huggingface.co/v1",
         "Qwen/Qwen2.5-7B-Instruct at https://router.huggingface.co/v1"),
        ("/work/shared/data/x.jsonl", "x.jsonl"),
        ("model /tmp/models/gemma.gguf loaded", "model gemma.gguf loaded"),
        ("~/data/lima.jsonl", "lima.jsonl"),
        ("C:\\Users\\me\\data\\lima.jsonl", "lima.jsonl"),
        ("/v1/chat/completions", "/v1/chat/completions"),  # a route, not a file of this machine
        ("hf://datasets/user/name", "hf://datasets/user/name"),
        ("a 1.5 ratio with 2 steps", "a 1.5 ratio with 2 steps"),
    ],
)
def test_publishable_text(text, expected):
    from hf_prefsel.hub.provenance import publishable_text

    assert publishable_text(text) == expected


@pytest.mark.parametrize(
    "source, expected",
    [
        ("tatsu-lab/alpaca", "tatsu-lab/alpaca"),
        ("/work/shared/data/instructions/lima_train_1k.jsonl", "lima_train_1k.jsonl"),
        ("data/lima.jsonl", "lima.jsonl"),
        ("./lima.jsonl", "lima.jsonl"),
        ("/data/a.jsonl /data/b.jsonl", "a.jsonl b.jsonl"),
        ("taxonomy default", "taxonomy default"),
    ],
)
def test_source_is_named_without_this_machine(source, expected):
    assert Provenance(method="PD", source=source).to_dict()["source"] == expected


def test_card_has_no_null_fields_and_valid_tags(ds):
    prov = Provenance(method="Open intent tagging (TACOS stage A)", parameters={"lora": None, "seed": 0})
    meta, body = _meta_and_body(str(build_dataset_card(ds, prov)))
    assert "null" not in str(build_dataset_card(ds, prov)).split("---")[1]
    assert "selection_budget" not in meta["hf_prefsel"] and "model" not in meta["hf_prefsel"]
    assert meta["hf_prefsel"]["parameters"] == {"seed": 0}
    assert meta["tags"] == ["hf-prefsel", "open-intent-tagging-tacos-stage-a"]
    assert "Selection budget" not in body and "Model / endpoint" not in body
    assert Provenance.from_dict(meta["hf_prefsel"]).selection_budget is None  # still reads back


def test_the_card_template_ships_with_the_package():
    from hf_prefsel.hub.card import ARTIFACT_CARD_TEMPLATE, DATASET_CARD_TEMPLATE

    assert DATASET_CARD_TEMPLATE.is_file() and ARTIFACT_CARD_TEMPLATE.is_file()
    assert DATASET_CARD_TEMPLATE.read_text().startswith("---\n{{ card_data }}\n---")
