"""Issue 14, command-line half: a bad option, file or endpoint never passes as a result, never hangs, and is said
in one line (exit 2) before any model call or server start; a run whose rows all failed exits non-zero after
writing; Ctrl-C says what is kept and how to resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "hf-prefsel"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def rows(tmp_path) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"Question {i}?", "output": f"Answer {i}."}) + "\n" for i in range(4)))
    return path


def _one_error_line(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for word in words:
        assert word in errors[0], errors[0]


@pytest.mark.parametrize("argv, words", [
    (["tacos", "--budget", "-1"], ["budget", "-1"]),
    (["tacos", "--budget", "3", "--response-column", "resp"], ["'resp'", "Available columns"]),
    (["tags", "--budget", "0"], ["budget", "0"]),
    (["tags", "--budget", "nan"], ["budget", "nan"]),
    (["tags", "--budget", "2.7"], ["budget", "2.7"]),
    (["tags", "--budget", "3", "--quality-column", "quality"], ["'quality'"]),
    (["tags", "--budget", "3", "--tree-html", "/nonexistent/dir/tree.html"], ["--tree-html", "does not exist"]),
    (["tag", "--output", "out.csv"], ["--output", ".jsonl"]),
    (["tag", "--limit", "0"], ["limit"]),
    (["tag", "--limit", "-3"], ["limit"]),
    (["tag", "--concurrency", "-1"], ["max_concurrency"]),
    (["tag", "--concurrency", "0"], ["max_concurrency"]),
    (["tag", "--local-replicas", "-1"], ["--local-replicas"]),
    (["tap", "--language", "xx"], ["'xx'"]),
    (["tap", "--responses", "1"], ["2 responses"]),
    (["tap", "--per-leaf", "2", "--total", "5"], ["per_leaf", "total"]),
])
def test_bad_options_fail_fast_in_one_line(argv, words, rows, tmp_path):
    """Refused in seconds: no server started (the embedded model would take ~10 s), nothing paid."""
    command, *rest = argv
    data = [] if command == "tap" else ["--data", str(rows)]
    start = time.monotonic()
    proc = cli(command, *data, *rest)
    _one_error_line(proc, *words)
    assert "Starting" not in proc.stderr and time.monotonic() - start < 60


def test_outputs_that_would_destroy_something_are_refused(rows, tmp_path):
    _one_error_line(cli("tag", "--data", str(rows), "--output", str(rows)), "overwrite the input")
    _one_error_line(cli("tag", "--data", str(rows), "--output", str(rows / "x.jsonl")), "is a file")
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("# my project\n")
    _one_error_line(cli("tag", "--data", str(rows), "--output", str(project)), "README.md")
    assert (project / "README.md").read_text() == "# my project\n"


def test_missing_and_broken_inputs_name_the_file(tmp_path):
    _one_error_line(cli("tag", "--data", str(tmp_path / "typo.jsonl")), "typo.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "fine"}\n{"instruction": broken\n')
    _one_error_line(cli("tag", "--data", str(bad)), "bad.jsonl")


def test_all_rows_failed_exits_non_zero_after_writing(rows, tmp_path, fault_server):
    server = fault_server()
    server.plan = [("status", 500)] * 1000  # the endpoint answers 500 to every generation request
    out = tmp_path / "tagged.jsonl"
    proc = cli("tag", "--data", str(rows), "--endpoint", server.url, "--max-retries", "0", "--cache-path",
               str(tmp_path / "c.sqlite"), "--output", str(out))
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "4 of 4 rows failed" in proc.stderr and "Traceback" not in proc.stderr
    assert out.exists() and all(json.loads(line)["tags_error"] for line in out.read_text().splitlines())


def test_ctrl_c_says_what_is_kept_and_how_to_resume(rows, tmp_path, fault_server):
    server = fault_server()
    server.plan = [("ok", json.dumps([{"tag": "first", "explanation": "x"}]))] + [("sleep", 60)] * 50
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([str(BIN), "tag", "--data", str(rows), "--endpoint", server.url, "--concurrency", "1",
                             "--cache-path", str(tmp_path / "c.sqlite")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while len(server.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "request cache" in err and "rerun" in err and "Traceback" not in err
