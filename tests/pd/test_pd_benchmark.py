"""`benchmarks/pd_scale.py --quick` runs end to end and ends with its headline `name: value` line."""

from __future__ import annotations

import os
import re
import subprocess
import sys

BENCHMARK = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "pd_scale.py")


def test_quick_benchmark_prints_headline_last():
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, BENCHMARK, "--quick", "--threads", "1"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    headline = re.fullmatch(r"pd_select_quick_seconds: (\d+\.\d+)", lines[-1])
    assert headline, lines[-5:]
    assert float(headline[1]) < 60  # 20k pairs; the full 1M run's goal is 30 s
    assert re.search(r"^pairs kept: 6,000 of 20,000; conflict rate \(PD > 0\) pool \S+ -> kept 0\.000", proc.stdout, re.M)
    assert re.search(r"^rm_scoring_pair_aspects_per_second: \d+\.\d+$", proc.stdout, re.M)
