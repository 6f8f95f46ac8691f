"""The TACOS script end to end on real Alpaca rows and the real local model."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from hf_prefsel.tacos import TagVocabulary

pytestmark = pytest.mark.slow
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_tacos_select_script(local_servers, shared_file, tmp_path, cache_path):
    with open(shared_file("instructions", "alpaca_selected_subsets-00.jsonl")) as fh:
        rows = [json.loads(line) for _, line in zip(range(14), fh)]
    data = tmp_path / "alpaca14.jsonl"
    data.write_text("".join(json.dumps({k: r[k] for k in ("instruction", "input", "output")}) + "\n" for r in rows))
    out = tmp_path / "selected.jsonl"
    vocab_dir = tmp_path / "vocab"
    cmd = [sys.executable, os.path.join(ROOT, "dataset_scripts", "tacos_select.py"), "--data", str(data),
           "--budget", "4", "--clusters", "3", "--swap", "--explanations", "no", "--route", "completion",
           "--cache-path", cache_path, "--output", str(out), "--save-vocabulary", str(vocab_dir),
           "--judge-max-chars", "300"]
    for url in local_servers.urls:
        cmd += ["--endpoint", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = next(line for line in proc.stdout.splitlines() if line.startswith("summary: "))
    fields = dict(item.split("=") for item in summary[len("summary: "):].split())
    assert fields["rows_in"] == "14" and fields["selected"] == "4"
    assert "position_bias_rate" in fields
    assert int(fields["llm_calls"]) > 14  # tagging plus judging
    selected = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(selected) == 4
    assert all(not math.isnan(r["score"]) and r["canonical_tags"] for r in selected)
    assert (tmp_path / "selected.README.md").exists()
    lines = proc.stdout.splitlines()
    start = lines.index("selected (best first):") + 1
    printed = [float(line.split()[0]) for line in lines[start : start + len(selected)]]
    assert printed == sorted((r["score"] for r in selected), reverse=True)
    assert "FutureWarning" not in proc.stderr
    vocab = TagVocabulary.from_pretrained(str(vocab_dir))
    assert vocab.n_raw >= vocab.n_canonical >= 1

    # the same command again is served from the request cache: no new LLM call
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "llm_calls=0" in again.stdout
