"""The `hf-prefsel` console command through `subprocess`: help texts, a usage error, and real small runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_prefsel.cli import COMMANDS

BIN = Path(sys.executable).with_name("hf-prefsel")


def cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "hf_prefsel.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})})


def test_console_script_is_installed():
    assert BIN.exists(), "pip install -e . installs the hf-prefsel console script next to python"


def test_top_level_help_lists_every_command():
    proc = cli("--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: hf-prefsel")
    for name, (_, help_text) in COMMANDS.items():
        assert name in proc.stdout
        assert help_text.split()[0] in proc.stdout
    module = subprocess.run([sys.executable, "-m", "hf_prefsel.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert module.returncode == 0 and module.stdout.split("\n", 1)[1] == proc.stdout.split("\n", 1)[1]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_subcommand_help(name):
    proc = cli(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: hf-prefsel {name}")
    assert ("--taxonomy" if name == "tap" else "--data") in proc.stdout  # TaP generates from a taxonomy, no input data
    assert "--endpoint" in proc.stdout or name == "pd"  # every LLM command offers an endpoint or the embedded model
    assert "Traceback" not in proc.stdout + proc.stderr


def test_missing_required_option_is_a_usage_error():
    proc = cli("tacos")
    assert proc.returncode == 2
    assert "the following arguments are required: --data" in proc.stderr
    unknown = cli("no-such-command")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


def test_pd_run_on_shared_ratings(tmp_path, space_helpers):
    data = space_helpers.shared_path("preference_multiaspect", "topicalchat_usr_multiaspect.jsonl")
    out = tmp_path / "kept.jsonl"
    proc = cli("pd", "--data", str(data), "--ratio", "0.3", "--from-ratings", "--no-progress", "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "kept: 18 of 60 pairs" in proc.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 18 and all(r["pd"] <= 0 for r in rows)
    assert (tmp_path / "kept.README.md").exists()


def test_tag_run_on_fake_endpoint(tmp_path, fault_server, space_helpers):
    server = fault_server()
    src = space_helpers.shared_path("instructions", "selfinstruct_seed_tasks.jsonl")
    data = space_helpers.write_jsonl(src, tmp_path / "seeds.jsonl", 6, keys=("id", "instruction", "input", "output"))
    out = tmp_path / "tagged.jsonl"
    proc = cli("tag", "--data", str(data), "--endpoint", server.url, "--cache-path", str(tmp_path / "cache.sqlite"),
               "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and all(r["tags"] for r in rows)
    assert server.generation_requests == 6
