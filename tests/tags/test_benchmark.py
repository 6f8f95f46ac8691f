"""The scale benchmark runs in a small configuration and ends with its `name: value` headline."""

from __future__ import annotations

import os
import re
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_tags_scale_small_run():
    script = os.path.join(REPO, "benchmarks", "tags_scale.py")
    out = subprocess.run(
        [sys.executable, script, "--concepts", "4000", "--rows", "40000", "--skip-embed"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert any(l.startswith("tree_build concepts=4000 ") for l in lines)
    sampler = next(l for l in lines if l.startswith("sampler_global "))
    assert "selected=2000 " in sampler and "gains_nonincreasing=True" in sampler
    i_sel = float(re.search(r"I\(S\)=([\d.]+)", sampler).group(1))
    i_rand = float(re.search(r"I\(random\)=([\d.]+)", sampler).group(1))
    assert i_sel > i_rand
    aligned = next(l for l in lines if l.startswith("sampler_aligned "))
    kl_g = float(re.search(r"KL\(target\|\|global\)=([\d.]+)", aligned).group(1))
    kl_a = float(re.search(r"KL\(target\|\|aligned\)=([\d.]+)", aligned).group(1))
    assert kl_a < kl_g
    assert re.fullmatch(r"tags_sampler_quick_5pct_seconds: \d+\.\d+", lines[-1])
