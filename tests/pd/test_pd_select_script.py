"""`hf-prefsel pd` / `dataset_scripts/pd_select.py` end to end on the real multi-aspect files: ratings, a tiny trained
proxy RM, an existing reward model; the issue's flag spelling and the older `--scorer`/`--model` one."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re

import pytest

from hf_prefsel.cli import pd as cli

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "dataset_scripts", "pd_select.py")


def _read_jsonl(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _pairs(text: str) -> int:
    return int(re.search(r"^rows read: \d+ +pairs: (\d+)$", text, re.M).group(1))


def test_wrapper_script_delegates_to_the_cli_module():
    spec = importlib.util.spec_from_file_location("pd_select_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main is cli.main


def test_parser_fills_a_subcommand_parser():
    root = argparse.ArgumentParser(prog="hf-prefsel")
    sub = root.add_subparsers(dest="command")
    cli.build_parser(sub.add_parser("pd", description=cli.__doc__))
    args = root.parse_args(["pd", "--data", "x.jsonl", "--reward-model", "rm", "--ratio", "0.5"])
    assert args.command == "pd" and args.reward_model == ["rm"] and args.ratio == 0.5
    assert cli.resolve_scorer(args) == ("reward-model", ["rm"])


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], ("ratings", [])),
        (["--from-ratings"], ("ratings", [])),
        (["--scorer", "ratings"], ("ratings", [])),
        (["--reward-model", "a=p1", "--reward-model", "b=p2"], ("reward-model", ["a=p1", "b=p2"])),
        (["--scorer", "reward-model", "--model", "p"], ("reward-model", ["p"])),
        (["--scorer", "reward-model", "--reward-model", "p"], ("reward-model", ["p"])),
        (["--train-proxy-rm", "base"], ("proxy-rm", ["base"])),
        (["--scorer", "proxy-rm", "--model", "base"], ("proxy-rm", ["base"])),
    ],
)
def test_flag_spellings_are_equivalent(argv, expected):
    assert cli.resolve_scorer(cli.build_parser().parse_args(["--data", "x"] + argv)) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["--from-ratings", "--scorer", "reward-model"],
        ["--reward-model", "p", "--model", "q"],
        ["--model", "p"],
        ["--scorer", "reward-model"],
        ["--scorer", "proxy-rm"],
    ],
)
def test_contradicting_flags_are_refused(argv, capsys):
    assert cli.main(["--data", "x", "--no-progress"] + argv) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_ratings_flags_are_mutually_exclusive(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--data", "x", "--from-ratings", "--reward-model", "p"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_script_with_ratings(sf_path, tmp_path, capsys):
    out = tmp_path / "sf_pd.jsonl"
    assert cli.main(["--data", sf_path, "--ratio", "0.3", "--from-ratings", "--output", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    pairs = _pairs(text)
    rows = _read_jsonl(out)
    assert len(rows) == round(0.3 * pairs)
    # the summary: pairs per aspect, conflict rate before/after, PD distribution, kept count
    per_aspect = re.search(r"^pairs per aspect: informativeness=(\d+), naturalness=(\d+)$", text, re.M)
    assert per_aspect and int(per_aspect[1]) + int(per_aspect[2]) == pairs
    assert "bad rows by reason: tie=" in text
    rate = re.search(r"^conflict rate \(PD > 0\): pool (\S+) -> kept (\S+)$", text, re.M)
    assert float(rate[1]) > float(rate[2]) == 0.0
    ref = re.search(r"^conflict with 'overall' rating: pool (\S+) \(\d+ pairs\) -> kept (\S+)", text, re.M)
    assert float(ref[2]) < float(ref[1])
    for which in ("pool", "kept"):
        line = re.search(rf"^PD distribution, {which}: mean (\S+);.*in 8 bins: ([\d ]+)$", text, re.M)
        assert sum(map(int, line[2].split())) == (pairs if which == "pool" else len(rows))
    assert f"kept: {len(rows)} of {pairs} pairs (ratio 0.3, global ranking)" in text
    assert re.search(r"^kept per aspect: informativeness=\d+, naturalness=\d+$", text, re.M)
    assert {"prompt", "chosen", "rejected", "aspect", "pd", "pair_id"} <= set(rows[0])
    assert all(r["pd"] <= 0 for r in rows)
    card = (tmp_path / "sf_pd.README.md").read_text()
    assert "2508.07638" in card and "conflict_rate_kept" in card

    # the older spelling selects the same rows
    out_old = tmp_path / "sf_pd_old.jsonl"
    assert cli.main(["--data", sf_path, "--scorer", "ratings", "--output", str(out_old), "--no-progress"]) == 0
    assert _read_jsonl(out_old) == rows


def test_script_stratified_parquet(topical_path, tmp_path, capsys):
    out = tmp_path / "topical.parquet"
    code = cli.main(["--data", topical_path, "--pair-mode", "all_pairs", "--ratio", "0.5", "--stratify-by-aspect",
                     "--output", str(out), "--no-progress", "--seed", "1"])
    assert code == 0
    from datasets import Dataset

    kept = Dataset.from_parquet(str(out))
    assert len(kept) > 0 and "stratified by aspect" in capsys.readouterr().out


def test_progress_bars_show_and_are_restored(sf_path, capsys):
    from datasets.utils import is_progress_bar_enabled

    assert cli.main(["--data", sf_path, "--limit", "50"]) == 0
    err = capsys.readouterr().err
    assert "Building pairs" in err and "Scoring pairs per aspect" in err
    assert cli.main(["--data", sf_path, "--limit", "50", "--no-progress"]) == 0
    assert "Building pairs" not in capsys.readouterr().err
    assert is_progress_bar_enabled()


def test_script_reports_errors(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"id": "x", "prompt": "p", "responses": [{"text": "only one", "ratings": {"a": 1}}]}) + "\n")
    assert cli.main(["--data", str(empty), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "fewer_than_two_responses: 1" in err and "No pairs" in err
    assert cli.main(["--data", str(empty), "--train-proxy-rm", "base", "--no-progress"]) == 2


def test_script_with_tiny_proxy_reward_models(sf_path, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "sf_rm.jsonl"
    code = cli.main([
        "--data", sf_path, "--ratio", "0.3", "--train-proxy-rm", tiny_model_dir, "--output", str(out),
        "--rm-max-steps", "2", "--rm-batch-size", "4", "--cpu", "--batch-size", "64", "--rm-max-length", "128",
        "--rm-output-dir", str(tmp_path / "rms"), "--no-progress",
    ])
    assert code == 0
    text = capsys.readouterr().out
    assert f"scorer: proxy-rm ({tiny_model_dir})" in text and "rm_train_pairs" in text
    rows = _read_jsonl(out)
    assert len(rows) == round(0.3 * _pairs(text))
    assert re.search(r"^conflict rate \(PD > 0\): pool \S+ -> kept \S+$", text, re.M)
    assert os.path.exists(tmp_path / "rms" / "naturalness" / "config.json")
    # the saved proxies work as existing reward models, in both spellings, with the same result
    rms = {a: str(tmp_path / "rms" / a) for a in ("informativeness", "naturalness")}
    outs = []
    for flags in (["--reward-model"], ["--model"]):
        path = tmp_path / f"sf_rm_{len(outs)}.jsonl"
        argv = ["--data", sf_path, "--output", str(path), "--batch-size", "64", "--no-progress"]
        if flags == ["--model"]:
            argv += ["--scorer", "reward-model"]
        for aspect, rm in rms.items():
            argv += flags + [f"{aspect}={rm}"]
        assert cli.main(argv) == 0
        assert "scorer: reward-model (informativeness=" in capsys.readouterr().out
        outs.append(_read_jsonl(path))
    assert len(outs[0]) == len(rows) and outs[0] == outs[1]


def test_script_on_local_ultrafeedback_file(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "pd_adapter_tests", os.path.join(os.path.dirname(__file__), "test_adapters.py")
    )
    adapters_tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(adapters_tests)
    path_json = tmp_path / "uf.json"  # a .json file goes through `load_data` and the layout detection
    path_json.write_text("\n".join(json.dumps(r) for r in adapters_tests.UF_ROWS))
    out = tmp_path / "uf_pd.jsonl"
    code = cli.main(["--data", str(path_json), "--pair-mode", "all_pairs", "--ratio", "0.67", "--output", str(out),
                     "--no-progress"])
    assert code == 0
    text = capsys.readouterr().out
    assert "bad rows by reason: empty_response=1, fewer_than_two_responses=1, non_numeric_rating=1, tie=1" in text
    assert len(_read_jsonl(out)) == 2


def test_registered_as_hf_prefsel_subcommand(sf_path, monkeypatch, capsys):
    import hf_prefsel.cli as root

    # the one-line registration the `hf-prefsel` command needs
    monkeypatch.setitem(root.COMMANDS, "pd", ("pd", "select preference pairs by preference divergence (PD)"))
    assert root.main(["pd", "--data", sf_path, "--limit", "100", "--from-ratings", "--no-progress"]) == 0
    assert re.search(r"^kept: \d+ of \d+ pairs", capsys.readouterr().out, re.M)
