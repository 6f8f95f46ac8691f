"""`benchmarks/judge_agreement.py` on a human-labelled file of our own (`--file`), with the model-free judges: the
agreement it prints is the hand count, human ties are left out and counted, and the last line is the default judge's
(absent here, so the last line is the table)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def test_longer_wins_on_a_file_by_hand(tmp_path):
    rows = [  # the longer response is the human winner in 3 of the 4 labelled pairs
        {"id": "1", "prompt": "p", "response_a": "long answer", "response_b": "short", "winner": "a"},
        {"id": "2", "prompt": "p", "response_a": "x", "response_b": "longer one", "winner": "b"},
        {"id": "3", "prompt": "p", "response_a": "tiny", "response_b": "a much longer reply", "winner": "b"},
        {"id": "4", "prompt": "p", "response_a": "the longest response", "response_b": "short", "winner": "b"},
        {"id": "5", "prompt": "p", "response_a": "same", "response_b": "same", "winner": "tie"},
    ]
    path = tmp_path / "held_out.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "judge_agreement.py"), "--file", str(path),
                          "--judges", "coin,longer", "--pairs", "10", "--json", str(tmp_path / "rows.json")],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "| held_out | 5 | 1 | 4 |" in out.stdout  # 5 rows, 1 human tie left out, 4 judged
    table = {(r["judge"], r["set"]): r for r in json.loads((tmp_path / "rows.json").read_text())}
    assert table[("longer", "held_out")]["agreement"] == 0.75
    assert table[("coin", "all")]["agreement"] == 0.5
    assert "autoj" not in out.stdout  # --file alone runs only the file


def test_a_file_without_the_schema_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "judge_agreement.py"), "--file", str(path),
                          "--judges", "longer"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode != 0
    assert str(path) in out.stderr and "id, response_a, response_b, winner" in out.stderr


def _judge_reply(body: dict) -> str:
    """A judge that always prefers the response holding GOOD, in whichever position it is shown."""
    text = body.get("prompt") or body["messages"][-1]["content"]
    query = text.rsplit("Input:", 1)[-1]
    if "[Sample 2]" in query:
        first = query.split("[Sample 2]", 1)[0]
        s1, s2 = (90, 10) if "GOOD" in first else (10, 90)
        return json.dumps({"analysis": "compared", "score_1": s1, "score_2": s2})
    return json.dumps({"analysis": "judged", "score": 90 if "GOOD" in query else 10})


def test_runs_unchanged_against_an_endpoint(tmp_path, fault_server):
    """`--endpoint`: the LLM judges through a server (here a fake that returns no log-probabilities, so the probability
    verdict falls back to sampled scores); a content-only judge agrees fully and is consistent in both orders."""
    server = fault_server(responder=_judge_reply)
    rows = [{"id": str(i), "prompt": f"Question {i}?", "response_a": "GOOD answer" if i % 2 else "poor",
             "response_b": "poor" if i % 2 else "GOOD answer", "winner": "a" if i % 2 else "b"} for i in range(6)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "judge_agreement.py"), "--file", str(path),
                          "--judges", "comparative,comparative_prob,singleton", "--endpoint", server.url,
                          "--route", "completion", "--json", str(tmp_path / "rows.json")],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    table = {(r["judge"], r["set"]): r for r in json.loads((tmp_path / "rows.json").read_text())}
    for judge in ("comparative", "comparative_prob", "singleton"):
        assert table[(judge, "all")]["agreement"] == 1.0, table[(judge, "all")]
    assert out.stdout.strip().splitlines()[-1] == "agreement: 1.000"
    assert "100% of 6" in out.stdout  # the comparative judge picks the same winner in both orders
