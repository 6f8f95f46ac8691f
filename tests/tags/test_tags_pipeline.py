"""The TAGS script end to end on real FLASK instructions and the real local model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hf_prefsel.tags import KnowledgeTree

pytestmark = pytest.mark.slow
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_tags_select_script(local_servers, shared_file, tmp_path, cache_path):
    with open(shared_file("instructions", "flask_eval_skills.jsonl")) as fh:
        rows = [json.loads(line) for _, line in zip(range(12), fh)]
    data = tmp_path / "flask12.jsonl"
    data.write_text("".join(json.dumps({"instruction": r["instruction"][:400], "input": r["input"]}) + "\n" for r in rows))
    out, tree_dir, html = tmp_path / "selected.jsonl", tmp_path / "tree", tmp_path / "tree.html"
    cmd = [sys.executable, os.path.join(ROOT, "dataset_scripts", "tags_select.py"), "--data", str(data), "--budget", "4",
           "--route", "completion", "--cache-path", cache_path, "--output", str(out), "--save-tree", str(tree_dir),
           "--tree-html", str(html)]
    for url in local_servers.urls:
        cmd += ["--endpoint", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = next(line for line in proc.stdout.splitlines() if line.startswith("summary: "))
    fields = dict(item.split("=") for item in summary[len("summary: "):].split())
    assert fields["rows_in"] == "12" and int(fields["selected"]) <= 4
    assert float(fields["information"]) >= float(fields["random_information"]) - 1e-9
    tree = KnowledgeTree.from_pretrained(str(tree_dir))
    assert tree.n_leaves == int(fields["unique_concepts"]) >= 3
    assert "<html" in html.read_text().lower()
    selected = [json.loads(line) for line in out.read_text().splitlines()]
    assert selected and all(r["concept_leaves"] for r in selected)
