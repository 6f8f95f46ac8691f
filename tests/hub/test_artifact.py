"""Artifact base class: save/load round trips, the card, every error path, that nothing but our files is read, and
pushes/loads through the real huggingface_hub client against the test Hub."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import yaml

import hf_prefsel
from hf_prefsel.errors import ArtifactError, HfPrefselError, HubPushError, HubUnavailableError
from hf_prefsel.hub import Artifact

SECRET = "hf_" + "S3cr3tT0kenValue" * 3


def _front_matter(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n"), text[:80]
    _, meta, body = text.split("---\n", 2)
    return yaml.safe_load(meta), body


def _assert_same(a, b) -> None:
    assert a.tags == b.tags
    assert a.counts == b.counts
    assert set(a.arrays) == set(b.arrays)
    for name, array in a.arrays.items():
        loaded = b.arrays[name]
        assert loaded.dtype == array.dtype, name
        assert loaded.shape == array.shape, name
        np.testing.assert_array_equal(loaded, array)


# ---------------------------------------------------------------------- round trips


def test_round_trip_preserves_json_and_arrays(tmp_path, toy, toy_cls):
    folder = toy.save_pretrained(tmp_path / "vocab")
    assert folder == tmp_path / "vocab"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "artifact.json", "tensors.safetensors"]

    loaded = toy_cls.from_pretrained(folder)
    assert type(loaded) is toy_cls
    _assert_same(toy, loaded)
    # str path works as well as Path
    _assert_same(toy, toy_cls.from_pretrained(str(folder)))


def test_artifact_json_layout(tmp_path, toy):
    toy.save_pretrained(tmp_path)
    payload = json.loads((tmp_path / "artifact.json").read_text(encoding="utf-8"))
    assert payload == {
        "artifact_type": "toy_vocabulary",
        "format_version": 2,
        "library": "hf_prefsel",
        "library_version": hf_prefsel.__version__,
        "data": {"tags": ["math", "coding", "écriture"], "counts": {"math": 5, "coding": 9, "écriture": 1}},
    }


def test_base_class_dispatches_on_artifact_type(tmp_path, toy, toy_cls, tree_cls):
    toy.save_pretrained(tmp_path / "a")
    tree_cls({"root": ["x", "y"]}).save_pretrained(tmp_path / "b")
    assert type(Artifact.from_pretrained(tmp_path / "a")) is toy_cls
    tree = Artifact.from_pretrained(tmp_path / "b")
    assert type(tree) is tree_cls and tree.children == {"root": ["x", "y"]}


def test_no_tensors_means_no_tensor_file_and_stale_file_removed(tmp_path, toy_cls):
    with_arrays = toy_cls(["a"], {"a": 1}, {"v": np.ones(3, dtype=np.float64)})
    with_arrays.save_pretrained(tmp_path)
    assert (tmp_path / "tensors.safetensors").exists()

    without = toy_cls(["b"], {"b": 2})
    without.save_pretrained(tmp_path)  # same folder: the old arrays must not come back
    assert not (tmp_path / "tensors.safetensors").exists()
    loaded = toy_cls.from_pretrained(tmp_path)
    assert loaded.arrays == {} and loaded.tags == ["b"]


def test_older_format_version_still_loads(tmp_path, toy):
    toy.save_pretrained(tmp_path)
    path = tmp_path / "artifact.json"
    payload = json.loads(path.read_text())
    payload["format_version"] = 1  # written by an older hf_prefsel; the class reads up to 2
    path.write_text(json.dumps(payload))
    assert type(toy).from_pretrained(tmp_path).tags == toy.tags


def test_subfolder_of_a_local_folder(tmp_path, toy, toy_cls):
    toy.save_pretrained(tmp_path / "artifacts" / "tags")
    loaded = toy_cls.from_pretrained(tmp_path, subfolder="artifacts/tags")
    _assert_same(toy, loaded)
    with pytest.raises(ArtifactError, match="subfolder"):
        toy_cls.from_pretrained(tmp_path, subfolder="../outside")


# ---------------------------------------------------------------------- card


def test_card_front_matter_and_body(tmp_path, toy):
    toy.save_pretrained(tmp_path)
    meta, body = _front_matter((tmp_path / "README.md").read_text(encoding="utf-8"))
    assert meta["library_name"] == "hf_prefsel"
    assert meta["tags"] == ["hf-prefsel", "toy-vocabulary", "hf-prefsel-artifact"]  # valid Hub tags
    assert "**3 tags.** Top: coding (9), math (5)" in body  # the subclass's card_body
    assert "| `embeddings` | float32 | (3, 8) |" in body  # array summary
    assert "ToyVocabulary.from_pretrained(" in body
    # huggingface_hub parses the card too
    card = huggingface_hub.ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "hf_prefsel"


def test_card_is_rewritten_on_each_save(tmp_path, toy_cls):
    toy_cls(["a"], {"a": 1}).save_pretrained(tmp_path)
    toy_cls(["a", "b", "c", "d"], {"a": 1}).save_pretrained(tmp_path)
    assert "**4 tags.**" in (tmp_path / "README.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------------- errors


def test_missing_artifact_json(tmp_path, toy_cls):
    (tmp_path / "README.md").write_text("# not an artifact")
    with pytest.raises(ArtifactError, match=r"artifact\.json is missing"):
        toy_cls.from_pretrained(tmp_path)


def test_wrong_artifact_type_names_the_right_class(tmp_path, toy, tree_cls):
    toy.save_pretrained(tmp_path)
    match = r"'toy_vocabulary' artifact, not a 'toy_tree'.*ToyVocabulary\.from_pretrained"
    with pytest.raises(ArtifactError, match=match):
        tree_cls.from_pretrained(tmp_path)


def test_unknown_type_through_base_class(tmp_path, toy):
    toy.save_pretrained(tmp_path)
    path = tmp_path / "artifact.json"
    payload = json.loads(path.read_text())
    payload["artifact_type"] = "never_registered"
    path.write_text(json.dumps(payload))
    with pytest.raises(ArtifactError, match="unknown type 'never_registered'"):
        Artifact.from_pretrained(tmp_path)


def test_newer_format_version_is_refused(tmp_path, toy):
    toy.save_pretrained(tmp_path)
    path = tmp_path / "artifact.json"
    payload = json.loads(path.read_text())
    payload["format_version"] = 3
    payload["library_version"] = "9.9.9"
    path.write_text(json.dumps(payload))
    with pytest.raises(ArtifactError, match=r"format version 3.*reads up to version 2.*9\.9\.9.*pip install -U"):
        type(toy).from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "content, match",
    [("{not json", "not valid JSON"), ('{"artifact_type": "toy_vocabulary"}', "layout"), ("[1, 2]", "layout")],
)
def test_corrupt_artifact_json(tmp_path, toy_cls, content, match):
    (tmp_path / "artifact.json").write_text(content)
    with pytest.raises(ArtifactError, match=match):
        toy_cls.from_pretrained(tmp_path)


def test_corrupt_tensors_file(tmp_path, toy):
    toy.save_pretrained(tmp_path)
    (tmp_path / "tensors.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ArtifactError, match="tensors.safetensors could not be read"):
        type(toy).from_pretrained(tmp_path)


def test_a_file_is_not_a_folder(tmp_path, toy):
    toy.save_pretrained(tmp_path)
    with pytest.raises(ArtifactError, match="is a file"):
        type(toy).from_pretrained(tmp_path / "artifact.json")


def test_not_a_folder_nor_a_repo_id(tmp_path, toy_cls):
    with pytest.raises(ArtifactError, match="neither an existing local folder nor a valid Hub repo id"):
        toy_cls.from_pretrained(str(tmp_path / "does" / "not" / "exist"))


def test_non_json_safe_to_dict(tmp_path, toy_cls):
    bad = toy_cls(["a"], {"a": np.int64(3)})  # numpy scalar slipped into the JSON part
    with pytest.raises(ArtifactError, match=r"not JSON-safe.*\.item\(\)"):
        bad.save_pretrained(tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing half-written

    nan = toy_cls(["a"], {"a": float("nan")})
    with pytest.raises(ArtifactError, match="NaN"):
        nan.save_pretrained(tmp_path / "y")


def test_non_numeric_tensor_is_refused(tmp_path, toy_cls):
    with pytest.raises(ArtifactError, match="only bool, integer and float"):
        toy_cls(["a"], {}, {"names": np.array(["a", "b"], dtype=object)}).save_pretrained(tmp_path)
    with pytest.raises(ArtifactError, match="must be a numpy array"):
        toy_cls(["a"], {}, {"names": [1, 2]}).save_pretrained(tmp_path)


def test_subclass_declaration_is_checked():
    with pytest.raises(TypeError, match="snake_case"):

        class Bad(Artifact):
            artifact_type = "Not Snake"

    with pytest.raises(TypeError, match="format_version"):

        class Bad2(Artifact):
            artifact_type = "bad_two"
            format_version = 0


def test_errors_are_hf_prefsel_errors():
    assert issubclass(HubUnavailableError, ArtifactError)
    assert issubclass(HubUnavailableError, ConnectionError)
    assert issubclass(ArtifactError, HfPrefselError)


def test_hub_offline_mode_says_pass_a_local_path(tmp_path, toy_cls, monkeypatch, caplog):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubUnavailableError, match="Pass the path of a local folder") as info:
        toy_cls.from_pretrained("someone/some-vocab", cache_dir=tmp_path / "cache", token=SECRET)
    assert SECRET not in str(info.value)
    assert SECRET not in caplog.text


def test_hub_unreachable_endpoint(tmp_path, toy_cls, monkeypatch, caplog):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubUnavailableError, match="could not be reached") as info:
        toy_cls.from_pretrained(
            "someone/some-vocab", repo_type="dataset", cache_dir=tmp_path / "cache", token=SECRET
        )
    assert isinstance(info.value, ConnectionError)
    assert SECRET not in str(info.value)
    assert SECRET not in caplog.text


def test_bad_repo_type(toy_cls):
    with pytest.raises(ArtifactError, match="repo_type must be one of"):
        toy_cls.from_pretrained("someone/some-vocab", repo_type="space")


# ---------------------------------------------------------------------- never read anything else


class _Bomb:
    """Unpickling this creates the marker file: proof that a pickle was loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _plant_stray_files(folder: Path, marker: Path) -> None:
    payload = pickle.dumps(_Bomb(marker))
    (folder / "extra.pkl").write_bytes(payload)
    (folder / "pytorch_model.bin").write_bytes(payload)
    (folder / "tensors.pkl").write_bytes(payload)
    (folder / "data.npy").write_bytes(b"\x93NUMPY garbage")


def test_stray_pickles_in_local_folder_are_never_read(tmp_path, toy, monkeypatch):
    folder = toy.save_pretrained(tmp_path / "vocab")
    marker = tmp_path / "UNPICKLED"
    _plant_stray_files(folder, marker)
    assert pickle.loads((folder / "extra.pkl").read_bytes()) is not None and marker.exists()  # the bomb works
    marker.unlink()

    def forbidden(*args, **kwargs):
        raise AssertionError("a loader other than json/safetensors was called")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(np, "load", forbidden)
    loaded = type(toy).from_pretrained(folder)
    _assert_same(toy, loaded)
    assert not marker.exists()


def _upload(hub, folder: Path, repo_type: str = "model", name: str = "vocab") -> tuple[str, str]:
    """Upload a local folder to a new repo of the test Hub; returns (repo id, commit hash)."""
    api = huggingface_hub.HfApi(token=hub.write_token)
    repo_id = hub.repo_id(name)
    api.create_repo(repo_id, repo_type=repo_type)
    info = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type=repo_type)
    return repo_id, info.oid


def _cached_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*") if p.is_file() and "snapshots" in p.parts)


def test_hub_download_fetches_only_our_files(tmp_path, toy, hub):
    remote = tmp_path / "remote"
    toy.save_pretrained(remote)
    _plant_stray_files(remote, tmp_path / "UNPICKLED")
    (remote / "config.json").write_text("{}")
    (remote / "nested").mkdir()
    (remote / "nested" / "artifact.json").write_text("{}")
    repo_id, commit = _upload(hub, remote, "dataset")

    cache = tmp_path / "cache"
    loaded = type(toy).from_pretrained(repo_id, revision=commit, repo_type="dataset", token=hub.write_token,
                                       cache_dir=cache)
    _assert_same(toy, loaded)
    assert _cached_files(cache) == ["README.md", "artifact.json", "tensors.safetensors"]
    assert not (tmp_path / "UNPICKLED").exists()


def test_hub_download_of_a_subfolder(tmp_path, toy, hub):
    remote = tmp_path / "remote"
    (remote / "data").mkdir(parents=True)
    (remote / "data" / "train-00000.parquet").write_bytes(b"PAR1")
    toy.save_pretrained(remote / "artifacts" / "tags")
    _plant_stray_files(remote / "artifacts" / "tags", tmp_path / "UNPICKLED")
    repo_id, _ = _upload(hub, remote, "dataset", "data")

    cache = tmp_path / "cache"
    loaded = Artifact.from_pretrained(repo_id, repo_type="dataset", subfolder="artifacts/tags/", cache_dir=cache)
    _assert_same(toy, loaded)
    assert _cached_files(cache) == ["README.md", "artifact.json", "tensors.safetensors"]


def test_hub_repo_without_artifact(tmp_path, toy_cls, hub):
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "README.md").write_text("# a model repo")
    (remote / "model.safetensors").write_bytes(b"")
    repo_id, _ = _upload(hub, remote, name="model")
    with pytest.raises(ArtifactError, match=rf"'{repo_id}' is not an hf_prefsel artifact"):
        toy_cls.from_pretrained(repo_id, cache_dir=tmp_path / "cache")


def test_hub_repo_not_found(tmp_path, toy_cls, hub):
    with pytest.raises(ArtifactError, match="no model repo of that name was found") as info:
        toy_cls.from_pretrained("alice/missing", cache_dir=tmp_path / "cache")
    assert not isinstance(info.value, HubUnavailableError)


def test_private_repo_of_another_user_is_not_found(tmp_path, toy, hub):
    repo_id = hub.repo_id("private-vocab")
    toy.push_to_hub(repo_id, private=True, token=hub.write_token)
    with pytest.raises(ArtifactError, match="or it is private: pass a token"):
        type(toy).from_pretrained(repo_id, token=hub.bob_token, cache_dir=tmp_path / "cache")
    _assert_same(toy, type(toy).from_pretrained(repo_id, token=hub.write_token, cache_dir=tmp_path / "cache"))


# ---------------------------------------------------------------------- push


@pytest.mark.parametrize("repo_type", ["model", "dataset"])
def test_push_to_hub_round_trip(toy, hub, repo_type, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    repo_id = hub.repo_id("vocab")
    url = toy.push_to_hub(repo_id, repo_type=repo_type, private=True, token=hub.write_token)
    repo = hub.server.repos[(repo_type + "s", repo_id)]
    prefix = "datasets/" if repo_type == "dataset" else ""
    assert url == f"{hub.url}/{prefix}{repo_id}/commit/{repo.head}"
    assert repo.private and repo.log[-1]["title"] == "Upload toy_vocabulary with hf_prefsel"
    assert sorted(hub.server.files(repo_type, repo_id)) == ["README.md", "artifact.json", "tensors.safetensors"]
    assert (repo_type, repo_id, "tensors.safetensors") in hub.server.lfs_paths

    loaded = Artifact.from_pretrained(repo_id, repo_type=repo_type, token=hub.write_token, cache_dir=tmp_path / "c")
    _assert_same(toy, loaded)
    changed = type(toy)(toy.tags + ["new"], toy.counts, toy.arrays)
    changed.push_to_hub(repo_id, repo_type=repo_type, token=hub.write_token, commit_message="again")  # exist_ok
    assert hub.server.repos[(repo_type + "s", repo_id)].log[-1]["title"] == "again"
    again = Artifact.from_pretrained(repo_id, repo_type=repo_type, token=hub.write_token, cache_dir=tmp_path / "c")
    assert again.tags == toy.tags + ["new"]
    assert hub.write_token not in caplog.text


@pytest.mark.parametrize("which, status", [("wrong_token", "401"), ("read_token", "403"), ("bob_token", "403")])
def test_push_to_hub_refused(toy, hub, which, status, caplog):
    caplog.set_level(logging.DEBUG)
    token = getattr(hub, which)
    repo_id = hub.repo_id("refused")
    with pytest.raises(HubPushError, match=rf"{status}.*Nothing was uploaded.*save_pretrained") as info:
        toy.push_to_hub(repo_id, token=token)
    assert token not in str(info.value) and token not in caplog.text
    assert ("models", repo_id) not in hub.server.repos


def test_push_to_hub_unreachable(toy, hub, monkeypatch, caplog):
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubUnavailableError, match="save_pretrained") as info:
        toy.push_to_hub("alice/vocab", token=SECRET, commit_message="custom")
    assert SECRET not in str(info.value) and SECRET not in caplog.text


def test_push_to_hub_bad_repo_type(toy, hub):
    before = len(hub.server.requests)
    with pytest.raises(ArtifactError, match="repo_type"):
        toy.push_to_hub("alice/vocab", repo_type="space", token=hub.write_token)
    assert len(hub.server.requests) == before
