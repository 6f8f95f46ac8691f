"""The scale benchmark runs end to end in quick mode and ends with its `name: value` headline."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "tacos_scale.py")


def test_quick_benchmark_prints_steps_and_headline():
    taxonomy = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "taxonomy")
    if not os.path.isdir(taxonomy):
        if os.environ.get("CI"):
            pytest.fail(f"Shared data {taxonomy} is missing.")
        pytest.skip(f"Shared data {taxonomy} is missing.")
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, BENCH, "--quick", "--occurrences", "20000", "--clusters", "20"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    for step in ("normalize.fit", "cluster.fit", "label-set dedup", "frequency_filter", "association_aggregation"):
        assert any(line.lstrip().startswith(step) for line in lines), step
    assert re.fullmatch(r"tacos_scale_total_seconds: \d+\.\d", lines[-1]), lines[-1]
    summary = next(line for line in lines if line.startswith("summary:"))
    raw, canonical = (int(x.replace(",", "")) for x in re.findall(r"([\d,]+) (?:raw|canonical)", summary))
    assert canonical < raw
