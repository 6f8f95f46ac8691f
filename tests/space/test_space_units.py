"""The Space's pure pieces without a server: limits, loading, views, URL/repo checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hf_prefsel.errors import ConfigError, DataError
from hf_prefsel.space import data as space_data
from hf_prefsel.space.export import check_repo_id
from hf_prefsel.space.limits import SpaceLimits
from hf_prefsel.space.models import check_endpoint_url
from hf_prefsel.viz import TreeNode, histogram_chart, squarify, treemap_html


def test_limits_from_env(monkeypatch):
    monkeypatch.setenv("HF_PREFSEL_SPACE_MAX_ROWS", "123")
    monkeypatch.setenv("HF_PREFSEL_SPACE_MAX_UPLOAD_MB", "2.5")
    limits = SpaceLimits.from_env(max_calls=7)
    assert (limits.max_rows, limits.max_upload_mb, limits.max_calls) == (123, 2.5, 7)
    monkeypatch.setenv("HF_PREFSEL_SPACE_MAX_ROWS", "lots")
    with pytest.raises(ConfigError, match="HF_PREFSEL_SPACE_MAX_ROWS"):
        SpaceLimits.from_env()


def test_read_upload_formats_and_caps(tmp_path):
    limits = SpaceLimits(max_rows=5)
    rows = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(8)]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n\n" for r in rows[:3]))
    loaded = space_data.read_upload(tmp_path / "a.json", limits)
    assert len(loaded.rows) == 5 and loaded.truncated_from == 8 and "only the first 5" in loaded.message()
    small = space_data.read_upload(tmp_path / "b.jsonl", limits)
    assert len(small.rows) == 3 and small.truncated_from is None and small.kind == "instructions"
    (tmp_path / "c.txt").write_text("x")
    with pytest.raises(ConfigError, match="upload a"):
        space_data.read_upload(tmp_path / "c.txt", limits)
    (tmp_path / "d.jsonl").write_text("[1, 2]\n")
    with pytest.raises(DataError):
        space_data.read_upload(tmp_path / "d.jsonl", limits)


def test_samples_exist_without_shared_data(tmp_path):
    names = [s.name for s in space_data.available_samples(tmp_path / "nowhere")]
    assert len(names) == 2 and all("generated" in n for n in names)
    demo = space_data.load_sample(names[0], tmp_path / "nowhere")
    assert demo.kind == "instructions" and space_data.guess_columns(demo)["response"] == "output"
    ratings = space_data.load_sample(names[1], tmp_path / "nowhere")
    assert ratings.kind == "preferences"
    with pytest.raises(ConfigError, match="Unknown sample"):
        space_data.load_sample("../../etc/passwd", tmp_path)


def test_instruction_rows_skip_empty_text():
    loaded = space_data.LoadedData(rows=[{"q": "a"}, {"q": ""}, {"q": None}, {"q": "b", "ctx": {"k": 1}}], source="x")
    rows = space_data.instruction_rows(loaded, {"instruction": "q", "input": "ctx", "response": None}, limit=10)
    assert [r["instruction"] for r in rows] == ["a", "b"] and rows[1]["input"] == '{"k": 1}'
    with pytest.raises(ConfigError):
        space_data.instruction_rows(loaded, {"instruction": None}, limit=10)


def test_endpoint_and_repo_checks():
    assert check_endpoint_url(" https://x.example/v1/ ") == "https://x.example"
    for bad in ("file:///etc/passwd", "x.example", "http://u:p@x.example"):
        with pytest.raises(ConfigError):
            check_endpoint_url(bad)
    assert check_endpoint_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"  # run locally: any address


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:8080", "http://169.254.169.254",
                                 "http://10.1.2.3:80", "http://[::1]:8080", "http://192.168.0.7"])
def test_hosted_space_refuses_its_own_network(monkeypatch, url):
    monkeypatch.setenv("SPACE_ID", "someone/hf-prefsel")
    with pytest.raises(ConfigError, match="public"):
        check_endpoint_url(url)


def test_hosted_space_accepts_public_addresses(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/hf-prefsel")
    assert check_endpoint_url("https://8.8.8.8/v1") == "https://8.8.8.8"  # an address literal needs no DNS


def test_repo_checks():
    assert check_repo_id(" me/data-set_1 ") == "me/data-set_1"
    for bad in ("me", "../x", "me/x/y", "me/.."):
        with pytest.raises(ConfigError):
            check_repo_id(bad)
    from hf_prefsel.llm.redact import redact  # the Space's push errors go through the library's one redaction

    assert redact("token my-secret-value failed", secrets=["my-secret-value"]) == "token [REDACTED] failed"


def test_squarify_fills_the_box():
    values = [6, 6, 4, 3, 2, 2, 1]
    rects = squarify(values, 0, 0, 600, 400)
    areas = [w * h for _, _, w, h in rects]
    assert sum(areas) == pytest.approx(600 * 400)
    assert [a / sum(areas) for a in areas] == pytest.approx([v / sum(values) for v in values])
    assert all(0 <= x and 0 <= y and x + w <= 600.01 and y + h <= 400.01 for x, y, w, h in rects)


def test_treemap_is_plain_html():
    root = TreeNode("root", 10, 3, [TreeNode("a <b>", 6, 3, [TreeNode("a1", 6, 3)]), TreeNode("b", 4, 0)])
    html = treemap_html(root, title="T")
    assert "<script" not in html and "a &lt;b&gt;" in html and html.count("<rect") >= 3
    assert "<details open>" in html


def test_histogram_splits_kept_and_dropped():
    values = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, np.nan])
    kept = np.array([True, True, False, False, False, False])
    chart = histogram_chart("t", values, kept, bins=4)
    frame = chart.frame
    assert frame[frame.series == "kept"].value.sum() == 2
    assert frame[frame.series == "dropped"].value.sum() == 3  # the NaN is in no bin
    assert chart.order == list(dict.fromkeys(frame.label))
