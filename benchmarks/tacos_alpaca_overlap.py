#!/usr/bin/env python
"""How many of our TACOS picks the released TACOS code (OpenCS) also picked, on Alpaca.

`../shared/data/instructions/alpaca_selected_subsets-*.jsonl` is the union of published selected
subsets of Alpaca; `meta.selected_by` names the subsets holding each row, `opencs_1k` being the
released TACOS code's selection. We sample N rows (seeded), run our full TACOS pipeline on them with
a budget B (embedded Gemma 3 270M unless --endpoint is given), and compare the overlap of our
selection with `opencs_1k` against the overlap a random selection of B rows would have.
Last line: `opencs_overlap_lift: X` = our overlap share / the pool's opencs share (1.0 = chance).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import sys
import tempfile

from hf_prefsel.cli import tacos

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "instructions", "alpaca_selected_subsets-*.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--endpoint", action="append", default=[])
    parser.add_argument("--quick", action="store_true", help="40 rows, budget 6")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.budget, args.clusters = 40, 6, 4
    rows = [json.loads(line) for path in sorted(glob.glob(DATA)) for line in open(path)]
    sample = random.Random(args.seed).sample(rows, args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "sample.jsonl")
        with open(data, "w") as fh:
            for r in sample:
                fh.write(json.dumps({"id": r["id"], "instruction": r["instruction"], "input": r["input"], "output": r["output"]}) + "\n")
        out = os.path.join(tmp, "selected.jsonl")
        argv = ["--data", data, "--budget", str(args.budget), "--clusters", str(args.clusters), "--swap",
                "--seed", str(args.seed), "--output", out]
        for url in args.endpoint:
            argv += ["--endpoint", url]
        tacos.main(argv)
        chosen = {json.loads(line)["id"] for line in open(out)}
    in_opencs = {r["id"] for r in sample if "opencs_1k" in (r.get("meta") or {}).get("selected_by", [])}
    pool_share = len(in_opencs) / len(sample)
    overlap = len(chosen & in_opencs)
    ours_share = overlap / max(1, len(chosen))
    print(f"pool: {len(sample)} rows, {len(in_opencs)} in opencs_1k ({pool_share:.1%})")
    print(f"ours: {len(chosen)} selected, {overlap} in opencs_1k ({ours_share:.1%}); random expectation {pool_share * len(chosen):.1f}")
    print(f"opencs_overlap_lift: {ours_share / pool_share if pool_share else float('nan'):.3f}")


if __name__ == "__main__":
    sys.exit(main())
