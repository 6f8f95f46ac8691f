"""Artifact base class: save/load round trips, the card, every error path, and that nothing but our files is read."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import numpy as np
import pytest
import yaml
from huggingface_hub.utils import filter_repo_objects

import hf_prefsel
from hf_prefsel.errors import ArtifactError, HfPrefselError, HubUnavailableError
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
    assert "hf_prefsel" in meta["tags"] and "toy_vocabulary" in meta["tags"]
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


def _fake_hub(monkeypatch, remote: Path, tmp_path: Path) -> list[dict]:
    """Replace snapshot_download by a local 'repo' that applies the real allow/ignore filtering."""
    calls: list[dict] = []

    def fake_snapshot_download(repo_id, *, allow_patterns=None, ignore_patterns=None, **kwargs):
        calls.append({"repo_id": repo_id, "allow_patterns": allow_patterns, **kwargs})
        files = sorted(p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file())
        kept = list(filter_repo_objects(files, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns))
        snapshot = tmp_path / "snapshot" / str(len(calls))
        for name in kept:
            (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(remote / name, snapshot / name)
        snapshot.mkdir(parents=True, exist_ok=True)
        calls[-1]["downloaded"] = kept
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    return calls


def test_hub_download_fetches_only_our_files(tmp_path, toy, monkeypatch):
    remote = tmp_path / "remote"
    toy.save_pretrained(remote)
    _plant_stray_files(remote, tmp_path / "UNPICKLED")
    (remote / "config.json").write_text("{}")
    (remote / "nested").mkdir()
    (remote / "nested" / "artifact.json").write_text("{}")
    calls = _fake_hub(monkeypatch, remote, tmp_path)

    loaded = type(toy).from_pretrained("someone/vocab", revision="v1", repo_type="dataset", token=SECRET)
    _assert_same(toy, loaded)
    (call,) = calls
    assert call["repo_id"] == "someone/vocab" and call["revision"] == "v1" and call["repo_type"] == "dataset"
    assert sorted(call["downloaded"]) == ["README.md", "artifact.json", "tensors.safetensors"]
    assert not (tmp_path / "UNPICKLED").exists()


def test_hub_download_of_a_subfolder(tmp_path, toy, monkeypatch):
    remote = tmp_path / "remote"
    (remote / "data").mkdir(parents=True)
    (remote / "data" / "train-00000.parquet").write_bytes(b"PAR1")
    toy.save_pretrained(remote / "artifacts" / "tags")
    _plant_stray_files(remote / "artifacts" / "tags", tmp_path / "UNPICKLED")
    calls = _fake_hub(monkeypatch, remote, tmp_path)

    loaded = Artifact.from_pretrained("someone/data", repo_type="dataset", subfolder="artifacts/tags/")
    _assert_same(toy, loaded)
    assert sorted(calls[0]["downloaded"]) == [
        "artifacts/tags/README.md",
        "artifacts/tags/artifact.json",
        "artifacts/tags/tensors.safetensors",
    ]


def test_hub_repo_without_artifact(tmp_path, toy_cls, monkeypatch):
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "README.md").write_text("# a model repo")
    (remote / "model.safetensors").write_bytes(b"")
    _fake_hub(monkeypatch, remote, tmp_path)
    with pytest.raises(ArtifactError, match=r"'someone/model' is not an hf_prefsel artifact"):
        toy_cls.from_pretrained("someone/model")


def test_hub_repo_not_found(tmp_path, toy_cls, monkeypatch):
    from huggingface_hub import errors

    def missing(repo_id, **kwargs):
        response_cls = errors.Response  # the HTTP client huggingface_hub uses
        request = __import__(response_cls.__module__.split(".")[0]).Request("GET", "https://hub.invalid/api")
        raise errors.RepositoryNotFoundError("404", response=response_cls(404, request=request))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", missing)
    with pytest.raises(ArtifactError, match="no model repo of that name was found") as info:
        toy_cls.from_pretrained("someone/missing")
    assert not isinstance(info.value, HubUnavailableError)


# ---------------------------------------------------------------------- push


class FakeHfApi:
    """Records calls and copies the uploaded folder, standing in for the Hub."""

    instances: list["FakeHfApi"] = []
    fail_with: BaseException | None = None

    def __init__(self, token=None, **kwargs):
        self.token = token
        self.calls: list[tuple[str, dict]] = []
        self.uploaded: Path | None = None
        FakeHfApi.instances.append(self)

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        if FakeHfApi.fail_with is not None:
            raise FakeHfApi.fail_with
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        self.calls.append(("upload_folder", {"repo_id": repo_id, **kwargs}))
        self.uploaded = Path(FakeHfApi.dest) / f"upload{len(FakeHfApi.instances)}"
        shutil.copytree(folder_path, self.uploaded)
        return SimpleNamespace(commit_url=f"https://hub.invalid/{repo_id}/commit/abc")


@pytest.fixture
def fake_api(monkeypatch, tmp_path):
    FakeHfApi.instances = []
    FakeHfApi.fail_with = None
    FakeHfApi.dest = tmp_path / "uploads"
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    return FakeHfApi


@pytest.mark.parametrize("repo_type", ["model", "dataset"])
def test_push_to_hub_uploads_a_saved_folder(toy, fake_api, repo_type, caplog):
    caplog.set_level(logging.DEBUG)
    url = toy.push_to_hub("someone/vocab", repo_type=repo_type, private=True, token=SECRET)
    assert url == "https://hub.invalid/someone/vocab/commit/abc"
    (api,) = fake_api.instances
    assert api.token == SECRET  # passed to the client, nowhere else
    (create_name, create), (upload_name, upload) = api.calls
    assert create_name == "create_repo" and upload_name == "upload_folder"
    assert create == {"repo_id": "someone/vocab", "repo_type": repo_type, "private": True, "exist_ok": True}
    assert upload["repo_type"] == repo_type
    assert "toy_vocabulary" in upload["commit_message"]
    assert sorted(p.name for p in api.uploaded.iterdir()) == ["README.md", "artifact.json", "tensors.safetensors"]
    _assert_same(toy, Artifact.from_pretrained(api.uploaded))
    assert SECRET not in caplog.text


def test_push_to_hub_unreachable(toy, fake_api, caplog):
    fake_api.fail_with = huggingface_hub.errors.OfflineModeIsEnabled("offline")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubUnavailableError, match="save_pretrained") as info:
        toy.push_to_hub("someone/vocab", token=SECRET, commit_message="custom")
    assert SECRET not in str(info.value) and SECRET not in caplog.text


def test_push_to_hub_bad_repo_type(toy, fake_api):
    with pytest.raises(ArtifactError, match="repo_type"):
        toy.push_to_hub("someone/vocab", repo_type="space")
    assert fake_api.instances == []
