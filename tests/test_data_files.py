"""`load_data` on real broken files: one typed error naming the file and line, before any model is started."""

from __future__ import annotations

import json
import socket
import time

import datasets
import pytest

from hf_prefsel import data_files
from hf_prefsel.data_files import load_data
from hf_prefsel.errors import ConfigError, DataError, HubUnavailableError

ROWS = [{"instruction": "Sort a list", "input": ""}, {"instruction": "Plan a trip", "input": ""},
        {"instruction": "Café au lait?", "input": ""}]


def write_jsonl(path, rows=ROWS):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_good_files_load(tmp_path):
    jsonl = write_jsonl(tmp_path / "rows.jsonl")
    assert load_data(str(jsonl))["instruction"] == [r["instruction"] for r in ROWS]
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + jsonl.read_bytes())
    assert len(load_data(str(bom))) == 3
    assert len(load_data(str(jsonl), limit=2)) == 2
    saved = tmp_path / "saved"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(saved))
    assert len(load_data(str(saved))) == 3


@pytest.mark.parametrize("limit", [0, -1, True, 1.5])
def test_limit_below_one_is_a_config_error(tmp_path, limit):
    with pytest.raises(ConfigError, match="limit must be a number of rows >= 1"):
        load_data(str(write_jsonl(tmp_path / "rows.jsonl")), limit=limit)


def test_empty_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.jsonl is empty \(0 bytes\)"):
        load_data(str(empty))
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n  \n")
    with pytest.raises(DataError, match="blank.jsonl holds only blank lines"):
        load_data(str(blank))
    header = tmp_path / "header.csv"
    header.write_text("instruction,input\n")
    with pytest.raises(DataError, match="header.csv"):
        load_data(str(header))


def test_malformed_jsonl_line_is_named(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"instruction": "a"}\n{"instruction": "b"}\n{"instruction": "c"\n{"instruction": "d"}\n')
    with pytest.raises(DataError, match=r"broken\.jsonl, line 3, column 20: not valid JSON") as info:
        load_data(str(path))
    assert "Fix or remove that line" in str(info.value)
    scalar = tmp_path / "scalar.jsonl"
    scalar.write_text('{"instruction": "a"}\n"just a string"\n')
    with pytest.raises(DataError, match=r"scalar\.jsonl, line 2: a JSON str where an object"):
        load_data(str(scalar))


def test_ragged_csv_names_the_line(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("instruction,input\nSort a list,\nPlan,a,trip\n")
    with pytest.raises(DataError, match=r"ragged\.csv.*line 3"):
        load_data(str(path))


def test_utf16_file_is_refused_up_front(tmp_path):
    path = tmp_path / "utf16.jsonl"
    path.write_bytes(write_jsonl(tmp_path / "x.jsonl").read_text(encoding="utf-8").encode("utf-16"))
    with pytest.raises(DataError, match=r"utf16\.jsonl is UTF-16.*iconv -f UTF-16 -t UTF-8"):
        load_data(str(path))


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_latin1_file_is_refused_up_front_naming_the_line(tmp_path, suffix):
    path = tmp_path / f"latin1{suffix}"
    text = write_jsonl(tmp_path / "x.jsonl").read_text() if suffix == ".jsonl" else "instruction\nSort\nPlan\nCafé\n"
    path.write_bytes(text.encode("latin-1"))
    line = 3 if suffix == ".jsonl" else 4
    with pytest.raises(DataError, match=rf"latin1\{suffix}, line {line}, character \d+: byte 0xe9 is not UTF-8"):
        load_data(str(path))


def test_non_utf8_far_into_a_big_file_is_found(tmp_path):
    path = tmp_path / "big.jsonl"
    good = json.dumps({"instruction": "x" * 200}) + "\n"
    path.write_bytes(good.encode() * 20000 + '{"instruction": "né"}\n'.encode("latin-1"))  # ~4 MB, bad last line
    with pytest.raises(DataError, match="line 20001"):
        load_data(str(path))


def test_wrong_suffix_and_fake_parquet(tmp_path):
    with pytest.raises(ConfigError, match="supported files"):
        load_data(str(write_jsonl(tmp_path / "rows.tsv")))
    fake = tmp_path / "rows.parquet"
    write_jsonl(fake)
    with pytest.raises(DataError, match="not a Parquet file"):
        load_data(str(fake))


def test_folder_that_is_not_a_saved_dataset(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    write_jsonl(folder / "part-00.jsonl")
    with pytest.raises(DataError, match=r"not a dataset saved with `save_to_disk`.*exports/\*\.jsonl"):
        load_data(str(folder))
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="holds no data file"):
        load_data(str(tmp_path / "nothing"))


def test_mistyped_relative_paths_never_reach_the_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "train.jsonl")
    monkeypatch.setattr(data_files, "_check_hub_dataset", lambda repo: pytest.fail(f"asked the Hub about {repo}"))
    start = time.monotonic()
    with pytest.raises(DataError, match=r"'data/trian\.jsonl' is not a file or folder.*Did you mean 'data/train\.jsonl'"):
        load_data("data/trian.jsonl")
    with pytest.raises(DataError, match="not a file or folder"):
        load_data("data/train")  # owner/name shaped, but `data/` is a local folder
    with pytest.raises(DataError, match="'trian.jsonl' is not a file or folder"):
        load_data("trian.jsonl")
    with pytest.raises(DataError, match="No file matches"):
        load_data("data/*.csv")
    assert time.monotonic() - start < 2


def test_hub_id_offline_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(DataError, match="Hub access is off"):
        load_data("someone/some-dataset")
    assert time.monotonic() - start < 1


def test_hub_id_with_a_silent_hub_fails_within_the_lookup_timeout(tmp_path, monkeypatch):
    from huggingface_hub import constants

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # accepts connections, never answers
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{sock.getsockname()[1]}")
    monkeypatch.setattr(data_files, "HUB_LOOKUP_TIMEOUT", 0.5)
    start = time.monotonic()
    try:
        with pytest.raises(HubUnavailableError, match="'someone/some-dataset' is no local path"):
            load_data("someone/some-dataset")
    finally:
        sock.close()
    assert time.monotonic() - start < 5
