"""`push_dataset` and `Dataset.push_to_hub` through the real huggingface_hub/datasets clients against the test Hub,
read back with `load_dataset` in a fresh cache: rows, card, artifacts, tokens, and failures that lose nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import datasets
import huggingface_hub
import pytest
import yaml
from huggingface_hub import DatasetCard

from hf_prefsel.errors import ArtifactError, ConfigError, HubPushError, HubUnavailableError
from hf_prefsel.hub import Artifact, Provenance, push_dataset


@pytest.fixture
def ds(lima_rows) -> datasets.Dataset:
    return datasets.Dataset.from_list(lima_rows)


@pytest.fixture
def prov() -> Provenance:
    return Provenance(
        method="Open intent tagging (TACOS stage A)",
        papers=[{"title": "TACOS", "arxiv": "2507.03673"}],
        parameters={"budget": 12, "endpoints": ["http://127.0.0.1:8080/v1"], "lora": None},
        model="google/gemma-3-270m via llama.cpp at http://127.0.0.1:8080",
        source="/work/shared/data/instructions/lima_train_1k.jsonl",
        counts={"rows_in": 1000, "rows_out": 12},
    )


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in an empty folder, where push_dataset writes its local copy."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _load(repo_id: str, tmp_path: Path, **kwargs):
    cache = tmp_path / f"fresh-cache-{len(list(tmp_path.glob('fresh-cache-*')))}"
    return datasets.load_dataset(repo_id, cache_dir=str(cache), **kwargs)


def _front_matter(text: str) -> dict:
    return yaml.safe_load(text.split("---\n", 2)[1])


def _has_null(value) -> bool:
    if isinstance(value, dict):
        return any(v is None or _has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


def test_push_dataset_round_trip(hub, ds, prov, toy, toy_cls, tmp_path, in_tmp):
    repo_id = hub.repo_id("lima-tacos")
    url = push_dataset(ds, repo_id, prov, artifacts={"vocab": toy}, private=True, token=hub.write_token)

    repo = hub.server.repos[("datasets", repo_id)]
    assert url == f"{hub.url}/datasets/{repo_id}/commit/{repo.head}"
    assert repo.private and repo.log[-1]["title"] == f"Add hf_prefsel dataset card ({prov.method}) and 1 artifact(s)"
    files = hub.server.files("dataset", repo_id)
    assert set(files) == {"README.md", "data/train-00000-of-00001.parquet", "artifacts/vocab/artifact.json",
                          "artifacts/vocab/tensors.safetensors", "artifacts/vocab/README.md"}
    lfs = {path for kind, rid, path in hub.server.lfs_paths if rid == repo_id}
    assert lfs == {"data/train-00000-of-00001.parquet", "artifacts/vocab/tensors.safetensors"}

    back = _load(repo_id, tmp_path, split="train", token=hub.write_token)
    assert back.to_list() == ds.to_list()
    card = DatasetCard.load(repo_id, repo_type="dataset", token=hub.write_token)
    assert card.data.library_name == "hf_prefsel" and card.data.configs  # what datasets wrote is kept
    assert card.data.hf_prefsel["counts"] == {"rows_in": 1000, "rows_out": 12}
    vocab = Artifact.from_pretrained(repo_id, repo_type="dataset", subfolder="artifacts/vocab", token=hub.write_token)
    assert isinstance(vocab, toy_cls) and vocab.tags == toy.tags
    assert list(in_tmp.iterdir()) == []  # the local copy is removed once the push succeeded


def test_card_on_the_hub_is_fit_to_publish(hub, ds, prov):
    repo_id = hub.repo_id("card")
    push_dataset(ds, repo_id, prov, token=hub.write_token)
    text = hub.server.files("dataset", repo_id)["README.md"].decode()
    assert "127.0.0.1" not in text and "/work/" not in text and "localhost" not in text
    meta = _front_matter(text)
    assert not _has_null(meta), meta
    assert all(t == t.lower() and set(t) <= set("abcdefghijklmnopqrstuvwxyz0123456789-") for t in meta["tags"])
    assert "open-intent-tagging-tacos-stage-a" in meta["tags"] and "hf-prefsel" in meta["tags"]
    assert meta["hf_prefsel"]["source"] == "lima_train_1k.jsonl"
    assert meta["hf_prefsel"]["model"] == "google/gemma-3-270m via llama.cpp at <local endpoint>"
    assert meta["hf_prefsel"]["parameters"] == {"budget": 12, "endpoints": ["<local endpoint>"]}
    assert f'load_dataset("{repo_id}")' in text


def test_dataset_dict_and_a_second_push_replace_the_data(hub, lima_rows, prov, tmp_path):
    repo_id = hub.repo_id("splits")
    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(lima_rows[:8]), "test": datasets.Dataset.from_list(lima_rows[8:])}
    )
    push_dataset(dd, repo_id, prov, token=hub.write_token)
    back = _load(repo_id, tmp_path)
    assert {k: v.to_list() for k, v in back.items()} == {k: v.to_list() for k, v in dd.items()}

    smaller = datasets.Dataset.from_list(lima_rows[:3])
    push_dataset(smaller, repo_id, prov, token=hub.write_token)
    assert _load(repo_id, tmp_path, split="train").to_list() == smaller.to_list()
    meta = _front_matter(hub.server.files("dataset", repo_id)["README.md"].decode())
    assert meta["hf_prefsel"]["method"] == prov.method and meta["size_categories"] == ["n<1K"]


def test_dataset_push_to_hub_then_load_dataset(hub, ds, tmp_path):
    """The plain `datasets` path our pushes build on (TaP pushes its extra configs this way)."""
    repo_id = hub.repo_id("plain")
    ds.push_to_hub(repo_id, token=hub.write_token)
    ds.select(range(4)).push_to_hub(repo_id, config_name="small", token=hub.write_token)
    assert _load(repo_id, tmp_path, split="train").to_list() == ds.to_list()
    assert _load(repo_id, tmp_path, name="small", split="train").to_list() == ds.select(range(4)).to_list()


@pytest.mark.parametrize(
    "token_name, status",
    [("wrong_token", "401"), ("read_token", "403"), ("bob_token", "403"), (None, "401")],
)
def test_refused_push_keeps_the_result_and_says_where(hub, ds, prov, toy, toy_cls, in_tmp, caplog, token_name,
                                                       status):
    token = getattr(hub, token_name) if token_name else None
    repo_id = hub.repo_id("refused")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubPushError) as info:
        push_dataset(ds, repo_id, prov, artifacts={"vocab": toy}, token=token)
    message = str(info.value)
    assert status in message and repo_id in message and "No data was committed" in message
    assert len(message.splitlines()) == 1
    for secret in (hub.wrong_token, hub.read_token, hub.bob_token):
        assert secret not in message and secret not in caplog.text
    assert ("datasets", repo_id) not in hub.server.repos  # nothing half-pushed

    kept = Path(info.value.local_copy)
    assert kept.parent == in_tmp and str(kept) in message
    assert datasets.Dataset.from_parquet(str(kept / "data.parquet")).to_list() == ds.to_list()
    assert "hf_prefsel" in (kept / "data.README.md").read_text()
    assert toy_cls.from_pretrained(kept / "artifacts" / "vocab").tags == toy.tags


def test_unreachable_hub_keeps_the_result(hub, ds, prov, monkeypatch, tmp_path):
    import datasets.config
    import huggingface_hub.constants as constants

    dead = "http://127.0.0.1:9"  # nothing listens there
    monkeypatch.setattr(constants, "ENDPOINT", dead)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", dead)
    chosen = tmp_path / "kept-here"
    with pytest.raises(HubUnavailableError, match="no data was committed.*kept in .*kept-here") as info:
        push_dataset(ds, "alice/x", prov, token=hub.write_token, local_copy=chosen)
    assert hub.write_token not in str(info.value)
    assert datasets.Dataset.from_parquet(str(chosen / "data.parquet")).to_list() == ds.to_list()


def test_local_copy_options(hub, ds, prov, tmp_path, in_tmp):
    chosen = tmp_path / "copy"
    push_dataset(ds, hub.repo_id("kept"), prov, token=hub.write_token, local_copy=chosen)
    assert datasets.Dataset.from_parquet(str(chosen / "data.parquet")).to_list() == ds.to_list()  # kept on success

    with pytest.raises(HubPushError) as info:
        push_dataset(ds, hub.repo_id("none"), prov, token=hub.wrong_token, local_copy=False)
    assert info.value.local_copy is None and "kept in" not in str(info.value)
    assert list(in_tmp.iterdir()) == []


def test_everything_is_checked_before_anything_is_sent(hub, ds, prov, toy_cls, in_tmp):
    class Broken(toy_cls):
        artifact_type = "test_broken_vocabulary"

        def to_dict(self) -> dict:
            return {"bad": object()}

    before = len(hub.server.requests)
    with pytest.raises(ConfigError, match="not a valid folder name"):
        push_dataset(ds, "alice/x", prov, artifacts={"../escape": toy_cls([], {})}, token=hub.write_token)
    with pytest.raises(ConfigError, match="must be an hf_prefsel Artifact"):
        push_dataset(ds, "alice/x", prov, artifacts={"notes": {"notes": []}}, token=hub.write_token)
    with pytest.raises(ArtifactError, match="not JSON-safe"):
        push_dataset(ds, "alice/x", prov, artifacts={"broken": Broken([], {})}, token=hub.write_token)
    with pytest.raises(ConfigError, match="Provenance"):
        push_dataset(ds, "alice/x", {"method": "TACOS"}, token=hub.write_token)
    assert len(hub.server.requests) == before and list(in_tmp.iterdir()) == []


def test_an_existing_readme_keeps_its_metadata(hub, ds, prov):
    repo_id = hub.repo_id("existing")
    api = huggingface_hub.HfApi(token=hub.write_token)
    api.create_repo(repo_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"---\nlicense: mit\ntags:\n- my_Tag\n---\n# mine\n", path_in_repo="README.md",
                    repo_id=repo_id, repo_type="dataset")
    push_dataset(ds, repo_id, prov, token=hub.write_token)
    meta = _front_matter(hub.server.files("dataset", repo_id)["README.md"].decode())
    assert meta["license"] == "mit" and meta["tags"][:2] == ["my_Tag", "hf-prefsel"]  # theirs untouched
    assert meta["hf_prefsel"]["method"] == prov.method
    assert "# mine" not in hub.server.files("dataset", repo_id)["README.md"].decode()


def test_a_push_broken_off_after_the_data_says_so(hub, ds, prov, toy, in_tmp, monkeypatch):
    """The data commit went through, the card commit did not: an error saying exactly that, never a success."""
    monkeypatch.setattr(hub.server, "refuse_commits", "Add hf_prefsel dataset card")
    repo_id = hub.repo_id("half")
    with pytest.raises(HubPushError) as info:
        push_dataset(ds, repo_id, prov, artifacts={"vocab": toy}, token=hub.write_token)
    message = str(info.value)
    assert "422" in message and "The data was pushed, but not the card and artifacts" in message
    assert info.value.local_copy in message and Path(info.value.local_copy).parent == in_tmp
    assert "artifacts/vocab/artifact.json" not in hub.server.files("dataset", repo_id)
