"""Provenance, dataset cards, local saving and (faked) Hub pushing of curated datasets, on real LIMA rows."""

from __future__ import annotations

import logging
import shutil
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import huggingface_hub
import pytest
import yaml
from huggingface_hub import DatasetCard

import hf_prefsel
from hf_prefsel.errors import ArtifactError, ConfigError, HubUnavailableError
from hf_prefsel.hub import Artifact, Provenance, build_dataset_card, push_dataset, save_dataset, size_category

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
    assert {"hf_prefsel", "tacos"} <= set(meta["tags"])
    assert meta["size_categories"] == ["n<1K"]
    assert meta["pretty_name"] == "lima-tacos"
    assert meta["hf_prefsel"] == prov.to_dict()
    assert meta["hf_prefsel"]["library_version"] == hf_prefsel.__version__

    assert "built with **TACOS**" in body and "1,000 rows went in, 12 came out" in body
    assert f"hf_prefsel {hf_prefsel.__version__}" in body
    assert "`google/gemma-3-270m via llama.cpp at 127.0.0.1:8080`" in body
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


# ---------------------------------------------------------------------- push_dataset (Hub faked)


class Notes(Artifact):
    artifact_type = "test_notes"

    def __init__(self, notes: list[str]):
        self.notes = notes

    def to_dict(self) -> dict:
        return {"notes": self.notes}

    @classmethod
    def from_dict(cls, data: dict, tensors: dict) -> "Notes":
        return cls(data["notes"])


class Broken(Notes):
    artifact_type = "test_broken"

    def to_dict(self) -> dict:
        return {"bad": object()}


DATASETS_README = """---
dataset_info:
  features:
  - name: id
    dtype: string
  splits:
  - name: train
    num_examples: 12
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
tags:
- from-datasets
---
"""


class FakeHub:
    """Stands in for the Hub: `ds.push_to_hub` and `HfApi` both write into one local repo folder."""

    def __init__(self, root: Path):
        self.repo = root / "repo"
        self.events: list[str] = []
        self.tokens: list[str | None] = []
        self.fail_with: BaseException | None = None
        hub = self

        class Api:
            def __init__(self, token=None, **kwargs):
                hub.tokens.append(token)

            def hf_hub_download(self, repo_id, filename, *, repo_type=None, cache_dir=None, **kwargs):
                hub.events.append(f"download:{filename}:{repo_type}")
                path = hub.repo / filename
                if not path.exists():
                    raise huggingface_hub.errors.EntryNotFoundError(filename)
                dest = Path(cache_dir) / filename
                shutil.copy(path, dest)
                return str(dest)

            def upload_folder(self, *, repo_id, folder_path, repo_type=None, commit_message=None, **kwargs):
                hub.events.append(f"upload_folder:{repo_type}")
                hub.commit_message = commit_message
                shutil.copytree(folder_path, hub.repo, dirs_exist_ok=True)
                return SimpleNamespace(commit_url=f"https://hub.invalid/datasets/{repo_id}/commit/def")

        self.Api = Api

    def push_to_hub(self, ds, repo_id, private=None, token=None, **kwargs):
        self.events.append(f"push_to_hub:{repo_id}:{private}")
        self.tokens.append(token)
        if self.fail_with is not None:
            raise self.fail_with
        (self.repo / "data").mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(self.repo / "data" / "train-00000-of-00001.parquet"))
        (self.repo / "README.md").write_text(DATASETS_README, encoding="utf-8")


@pytest.fixture
def fake_hub(tmp_path, monkeypatch) -> FakeHub:
    hub = FakeHub(tmp_path)
    monkeypatch.setattr(huggingface_hub, "HfApi", hub.Api)
    monkeypatch.setattr(datasets.Dataset, "push_to_hub", lambda ds, repo_id, **kw: hub.push_to_hub(ds, repo_id, **kw))
    return hub


def test_push_dataset_data_then_card_and_artifacts(ds, prov, fake_hub, caplog):
    caplog.set_level(logging.DEBUG)
    url = push_dataset(
        ds, "someone/lima-tacos", prov, artifacts={"notes": Notes(["a", "b"])}, private=True, token=SECRET
    )
    assert url == "https://hub.invalid/datasets/someone/lima-tacos/commit/def"
    assert fake_hub.events == [
        "push_to_hub:someone/lima-tacos:True",
        "download:README.md:dataset",
        "upload_folder:dataset",
    ]
    assert set(fake_hub.tokens) == {SECRET}
    assert SECRET not in caplog.text

    repo = fake_hub.repo
    meta, body = _meta_and_body((repo / "README.md").read_text(encoding="utf-8"))
    # what datasets wrote is kept ...
    assert meta["configs"][0]["data_files"][0]["path"] == "data/train-*"
    assert meta["dataset_info"]["splits"][0]["num_examples"] == 12
    # ... and ours is added
    assert meta["library_name"] == "hf_prefsel"
    assert {"from-datasets", "hf_prefsel", "tacos", "test_notes"} <= set(meta["tags"])
    assert meta["hf_prefsel"]["counts"]["rows_out"] == 12
    assert "## Artifacts" in body and "`artifacts/notes/`" in body
    assert 'subfolder="artifacts/notes"' in body
    assert fake_hub.commit_message == "Add hf_prefsel dataset card (TACOS) and 1 artifact(s)"

    # the artifact loads back from the repo folder
    notes = Notes.from_pretrained(repo, subfolder="artifacts/notes")
    assert notes.notes == ["a", "b"]
    assert datasets.Dataset.from_parquet(str(repo / "data" / "train-00000-of-00001.parquet")).to_list() == ds.to_list()


def test_push_dataset_dict_without_existing_readme(lima_rows, prov, fake_hub, monkeypatch):
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(lima_rows)})

    def push_without_readme(self, repo_id, **kwargs):
        fake_hub.events.append("push_to_hub:dict")
        fake_hub.repo.mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", push_without_readme)
    push_dataset(dd, "someone/dd", prov)
    meta, _ = _meta_and_body((fake_hub.repo / "README.md").read_text(encoding="utf-8"))
    assert meta["hf_prefsel"]["method"] == "TACOS"
    assert not (fake_hub.repo / "artifacts").exists()


def test_push_dataset_checks_everything_before_uploading(ds, prov, fake_hub):
    with pytest.raises(ConfigError, match="not a valid folder name"):
        push_dataset(ds, "someone/x", prov, artifacts={"../escape": Notes([])})
    with pytest.raises(ConfigError, match="must be an hf_prefsel Artifact"):
        push_dataset(ds, "someone/x", prov, artifacts={"notes": {"notes": []}})
    with pytest.raises(ArtifactError, match="not JSON-safe"):
        push_dataset(ds, "someone/x", prov, artifacts={"broken": Broken([])})
    with pytest.raises(ConfigError, match="Provenance"):
        push_dataset(ds, "someone/x", {"method": "TACOS"})
    assert fake_hub.events == []  # nothing was pushed


def test_push_dataset_unreachable(ds, prov, fake_hub, caplog):
    fake_hub.fail_with = huggingface_hub.errors.OfflineModeIsEnabled("offline")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubUnavailableError, match="save_dataset") as info:
        push_dataset(ds, "someone/x", prov, token=SECRET)
    assert SECRET not in str(info.value) and SECRET not in caplog.text
