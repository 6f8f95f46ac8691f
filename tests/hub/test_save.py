"""`save_dataset` writes atomically (an interrupted write leaves the previous output whole) and never replaces files
it did not write (a project's README, a folder's other files)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import datasets
import pytest

from hf_prefsel.errors import ConfigError
from hf_prefsel.hub import Provenance, save_dataset


@pytest.fixture
def ds(lima_rows) -> datasets.Dataset:
    return datasets.Dataset.from_list(lima_rows)


@pytest.fixture
def prov() -> Provenance:
    return Provenance(method="TAGS", counts={"rows_out": 12})


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_failed_write_keeps_the_previous_file(tmp_path, ds, prov, monkeypatch):
    out = tmp_path / "curated.jsonl"
    save_dataset(ds, out, prov)
    before = out.read_bytes()

    def broken(self, path, **kwargs):
        with open(path, "w") as f:
            f.write('{"half": ')  # what a crash mid-write leaves
        raise OSError("disk full")

    monkeypatch.setattr(datasets.Dataset, "to_json", broken)
    with pytest.raises(OSError, match="disk full"):
        save_dataset(ds.select(range(3)), out, prov)
    assert out.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_failed_folder_write_keeps_the_previous_folder(tmp_path, ds, prov, monkeypatch):
    out = save_dataset(ds, tmp_path / "curated", prov)

    def broken(self, path, **kwargs):
        os.makedirs(path, exist_ok=True)
        raise OSError("disk full")

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", broken)
    with pytest.raises(OSError, match="disk full"):
        save_dataset(ds.select(range(3)), out, prov)
    assert datasets.load_from_disk(str(out)).to_list() == ds.to_list()
    assert _leftovers(tmp_path) == []


def test_rewriting_our_own_folder_is_allowed(tmp_path, ds, lima_rows, prov):
    out = save_dataset(ds, tmp_path / "curated", prov)
    save_dataset(ds.select(range(2)), out, prov)
    assert datasets.load_from_disk(str(out)).to_list() == ds.select(range(2)).to_list()
    dd = datasets.DatasetDict({"train": ds.select(range(5)), "test": ds.select(range(5, 12))})
    save_dataset(dd, out, prov)  # a DatasetDict's split folders are ours too
    save_dataset(dd, out, prov)
    assert len(datasets.load_from_disk(str(out))["test"]) == 7


def test_a_project_folder_is_refused(tmp_path, ds, prov, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("# My project\n")
    (project / "pyproject.toml").write_text("[project]\n")
    monkeypatch.chdir(project)
    with pytest.raises(ConfigError, match=r"Refusing to save into \..*pyproject\.toml"):
        save_dataset(ds, ".", prov)
    assert (project / "README.md").read_text() == "# My project\n"
    assert sorted(p.name for p in project.iterdir()) == ["README.md", "pyproject.toml"]


def test_a_foreign_readme_alone_is_refused(tmp_path, ds, prov):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# notes\n")
    with pytest.raises(ConfigError, match="README.md"):
        save_dataset(ds, folder, prov)
    assert (folder / "README.md").read_text().endswith("# notes\n")


def test_a_foreign_card_file_is_refused(tmp_path, ds, prov):
    (tmp_path / "curated.README.md").write_text("# someone's notes\n")
    with pytest.raises(ConfigError, match="did not write it"):
        save_dataset(ds, tmp_path / "curated.jsonl", prov)
    assert not (tmp_path / "curated.jsonl").exists()
    save_dataset(ds, tmp_path / "curated.jsonl")  # without a card nothing is overwritten: fine


@pytest.mark.parametrize("name", ["taken.txt/out.jsonl", "taken.txt/sub/out"])
def test_a_path_under_a_file_is_refused(tmp_path, ds, name):
    (tmp_path / "taken.txt").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        save_dataset(ds, tmp_path / name)


def test_folder_output_onto_an_existing_file_is_refused(tmp_path, ds):
    (tmp_path / "curated").write_text("x")
    with pytest.raises(ConfigError, match="existing file"):
        save_dataset(ds, tmp_path / "curated")


_WRITER = """
import sys, datasets
from hf_prefsel.hub import save_dataset
ds = datasets.Dataset.from_list([{"id": i, "text": "x" * 200} for i in range(int(sys.argv[2]))])
print("ready", flush=True)
save_dataset(ds, sys.argv[1])
"""


def test_killed_write_leaves_old_or_new_file_never_a_truncated_one(tmp_path, ds):
    out = tmp_path / "big.jsonl"
    save_dataset(ds, out)
    old = out.read_bytes()
    rows = 400_000
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(out), str(rows)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)  # the write takes ~0.7 s here, so this lands mid-write; either outcome below must hold whenever the kill lands
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    data = out.read_bytes()
    if data != old:
        lines = data.decode().splitlines()
        assert len(lines) == rows and json.loads(lines[-1])["id"] == rows - 1
