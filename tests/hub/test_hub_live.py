"""A real upload and download round trip on the Hugging Face Hub; runs only with HF_TOKEN set (and network)."""

from __future__ import annotations

import os
import uuid

import datasets
import huggingface_hub
import numpy as np
import pytest

from hf_prefsel.hub import Artifact, Provenance, push_dataset

pytestmark = [
    pytest.mark.hub,
    pytest.mark.skipif(not os.environ.get("HF_TOKEN"), reason="needs HF_TOKEN and network access to the Hub"),
]


@pytest.fixture
def online(monkeypatch):
    """The suite defaults to offline mode; this test talks to the real Hub."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False, raising=False)


@pytest.fixture
def api(online) -> huggingface_hub.HfApi:
    return huggingface_hub.HfApi(token=os.environ["HF_TOKEN"])


@pytest.fixture
def repo_id(api):
    name = f"{api.whoami()['name']}/hf-prefsel-test-{uuid.uuid4().hex[:10]}"
    yield name
    for repo_type in ("model", "dataset"):
        try:
            api.delete_repo(name, repo_type=repo_type, missing_ok=True)
        except Exception:  # cleanup is best effort
            pass


def test_artifact_round_trip_on_the_hub(repo_id, toy, toy_cls, tmp_path):
    token = os.environ["HF_TOKEN"]
    url = toy.push_to_hub(repo_id, private=True, token=token)
    assert repo_id in url
    loaded = toy_cls.from_pretrained(repo_id, token=token, cache_dir=tmp_path / "cache")
    assert loaded.tags == toy.tags and loaded.counts == toy.counts
    for name, array in toy.arrays.items():
        assert loaded.arrays[name].dtype == array.dtype
        np.testing.assert_array_equal(loaded.arrays[name], array)


def test_dataset_with_artifact_round_trip_on_the_hub(repo_id, toy, lima_rows, tmp_path, api):
    token = os.environ["HF_TOKEN"]
    ds = datasets.Dataset.from_list(lima_rows)
    prov = Provenance(method="TACOS", counts={"rows_in": 1000, "rows_out": len(ds)})
    push_dataset(ds, repo_id, prov, artifacts={"vocab": toy}, private=True, token=token)

    back = datasets.load_dataset(repo_id, split="train", token=token, cache_dir=str(tmp_path / "ds_cache"))
    assert back.to_list() == ds.to_list()
    card = huggingface_hub.DatasetCard.load(repo_id, repo_type="dataset", token=token)
    assert card.data.library_name == "hf_prefsel" and card.data.configs  # datasets' metadata kept
    loaded = Artifact.from_pretrained(
        repo_id, repo_type="dataset", subfolder="artifacts/vocab", token=token, cache_dir=tmp_path / "cache"
    )
    assert loaded.tags == toy.tags
