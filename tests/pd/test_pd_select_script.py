"""`dataset_scripts/pd_select.py` end to end on the real multi-aspect files: ratings, and a tiny trained proxy RM."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "dataset_scripts", "pd_select.py")


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("pd_select_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read_jsonl(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_script_with_ratings(script, sf_path, tmp_path, capsys):
    out = tmp_path / "sf_pd.jsonl"
    code = script.main(["--data", sf_path, "--ratio", "0.3", "--scorer", "ratings", "--output", str(out), "--no-progress"])
    assert code == 0
    text = capsys.readouterr().out
    assert "pairs per aspect: informativeness=" in text
    assert "bad rows by reason: tie=" in text
    assert "PD quantiles:" in text and "conflict rate (PD > 0): pool" in text
    assert "conflict with 'overall' rating: pool" in text
    rows = _read_jsonl(out)
    pairs = int(text.split("pairs: ")[1].split()[0])
    assert f"selected: {len(rows)} of {pairs}" in text and len(rows) == round(0.3 * pairs)
    assert {"prompt", "chosen", "rejected", "aspect", "pd", "pair_id"} <= set(rows[0])
    assert all(r["pd"] <= 0 for r in rows)


def test_script_stratified_parquet(script, topical_path, tmp_path, capsys):
    out = tmp_path / "topical.parquet"
    code = script.main(["--data", topical_path, "--pair-mode", "all_pairs", "--ratio", "0.5", "--stratify-by-aspect",
                        "--output", str(out), "--no-progress", "--seed", "1"])
    assert code == 0
    from datasets import Dataset

    kept = Dataset.from_parquet(str(out))
    assert len(kept) > 0 and "stratified by aspect" in capsys.readouterr().out


def test_script_reports_errors(script, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"id": "x", "prompt": "p", "responses": [{"text": "only one", "ratings": {"a": 1}}]}) + "\n")
    assert script.main(["--data", str(empty), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "fewer_than_two_responses: 1" in err and "No pairs" in err
    assert script.main(["--data", str(empty), "--scorer", "proxy-rm", "--no-progress"]) == 2


def test_script_with_tiny_proxy_reward_models(script, sf_path, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "sf_rm.jsonl"
    code = script.main([
        "--data", sf_path, "--ratio", "0.3", "--scorer", "proxy-rm", "--model", tiny_model_dir, "--output", str(out),
        "--rm-max-steps", "2", "--rm-batch-size", "4", "--cpu", "--batch-size", "64", "--rm-max-length", "128",
        "--rm-output-dir", str(tmp_path / "rms"), "--no-progress",
    ])
    assert code == 0
    text = capsys.readouterr().out
    assert "scorer: proxy-rm" in text and "rm_train_pairs" in text
    rows = _read_jsonl(out)
    assert len(rows) == round(0.3 * int(text.split("pairs: ")[1].split()[0]))
    assert os.path.exists(tmp_path / "rms" / "naturalness" / "config.json")
    # the saved proxies work as an existing reward model too
    out2 = tmp_path / "sf_rm2.jsonl"
    code = script.main([
        "--data", sf_path, "--scorer", "reward-model", "--model", f"informativeness={tmp_path / 'rms' / 'informativeness'}",
        "--model", f"naturalness={tmp_path / 'rms' / 'naturalness'}", "--output", str(out2), "--batch-size", "64",
        "--no-progress",
    ])
    assert code == 0 and len(_read_jsonl(out2)) == len(rows)


def test_script_on_local_ultrafeedback_file(script, tmp_path, capsys):
    import importlib.util as iu

    spec = iu.spec_from_file_location("pd_adapter_tests", os.path.join(os.path.dirname(__file__), "test_adapters.py"))
    adapters_tests = iu.module_from_spec(spec)
    spec.loader.exec_module(adapters_tests)
    path_json = tmp_path / "uf.json"  # a .json file goes through `datasets` and the layout detection
    path_json.write_text("\n".join(json.dumps(r) for r in adapters_tests.UF_ROWS))
    out = tmp_path / "uf_pd.jsonl"
    code = script.main(["--data", str(path_json), "--pair-mode", "all_pairs", "--ratio", "0.67", "--output", str(out),
                        "--no-progress"])
    assert code == 0
    text = capsys.readouterr().out
    assert "bad rows by reason: empty_response=1, fewer_than_two_responses=1, non_numeric_rating=1, tie=1" in text
    assert len(_read_jsonl(out)) == 2
