#!/usr/bin/env python
"""How often our judges agree with people: human-labelled pairs from ../shared/data/pairwise/ (read at run time).

Sets: `autoj` (Auto-J human pairwise test, 58 scenarios), `car` (CaR: expert-revised Alpaca response preferred over
the original), `hh_harmless` (HH-RLHF harmless-base test, crowdworker chosen/rejected). Ties in the human labels
(Auto-J only) are left out of the sample and counted in the output; a judge's own tie (equal scores) and a failed
verdict earn half a point, which is what a coin earns, and are counted too.

Judges (the two responses of a pair are one 2-row cluster; order-sensitive judges see it in both orders):
- `comparative`: TACOS' `ComparativeScorer` (sampled scores), verdict = mean of both orders' scores (its `swap=True`);
- `comparative_prob`: the same with `verdict="probability"` (P(sample 1 better) read from token log-probabilities,
  averaged over both orders);
- `singleton`: `SingletonScorer`, each response judged alone, the higher score wins;
- `ifd`: `IFDScorer`, the response with the lower instruction-following difficulty (the instruction explains it
  better) wins; `ifd_cherry`: Cherry LLM's selection preference (the higher IFD below 1 wins); `ifd_pmi`: the
  higher total PMI between instruction and response wins (the same passes); `singleton_prob`: `SingletonScorer`
  with `verdict="probability"` (expected 1-9 digit);
- baselines `coin` (0.5 each: its interval is the spread of a fair coin over n pairs) and `longer` (longer wins).

Columns: agreement with its 95 % bootstrap interval, judge ties, failed verdicts, position consistency (share of
pairs whose winner is the same in both orders, order-sensitive judges only), paid model calls, tokens and seconds
per verdict (a fresh request cache unless --cache is given: then only uncached calls are counted).
Default: the embedded Gemma 3 270M behind `serve_local()` (likelihood and probability judges in process);
`--endpoint URL` for a real model; `--file PATH` adds any other human-labelled set in the same schema (e.g. pairs
kept outside the project). Last line: `agreement: X` for the default judge (`comparative`), all sets.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "pairwise")
SETS = {
    "autoj": "autoj_human_pairwise_test-*.jsonl",
    "car": "car_expert_revised_vs_alpaca.jsonl",
    "hh_harmless": "hh_rlhf_harmless_base_test.jsonl",
}
DEFAULT_JUDGE = "comparative"
ORDER_FREE = ("coin", "longer", "singleton", "singleton_prob", "ifd", "ifd_cherry", "ifd_pmi")


@dataclass
class Pair:
    id: str
    subset: str
    prompt: str
    a: str
    b: str
    winner: str  # "a" or "b"


@dataclass
class Verdicts:
    """One judge's preferences for response a (1 = a wins, 0 = b wins, 0.5 = tie, None = failed), per pair."""

    combined: list[float | None]
    forward: list[float | None] | None = None  # shown (a, b)
    backward: list[float | None] | None = None  # shown (b, a)
    calls: int = 0
    tokens: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def load_pairs(subset: str, n: int, seed: int, pattern: str | None = None) -> tuple[list[Pair], int, int]:
    """`n` seeded non-tie pairs of `subset` (a shared set, or the files `pattern` names), the set's size and its
    number of human ties."""
    pattern = pattern or os.path.join(DATA, SETS[subset])
    paths = sorted(glob.glob(pattern))
    if not paths:
        sys.exit(f"No data for {subset!r}: expected {pattern} (the shared data folder, or the --file given).")
    rows = [json.loads(line) for path in paths for line in open(path, encoding="utf-8") if line.strip()]
    missing = {"id", "prompt", "response_a", "response_b", "winner"} - set(rows[0] if rows else {})
    if missing:
        sys.exit(f"{paths[0]}: rows need {', '.join(sorted(missing))} (the schema of ../shared/data/pairwise/).")
    ties = sum(r["winner"] == "tie" for r in rows)
    labelled = [r for r in rows if r["winner"] in ("a", "b")]
    chosen = random.Random(f"{seed}:{subset}").sample(labelled, min(n, len(labelled)))
    return [Pair(r["id"], subset, r["prompt"], r["response_a"], r["response_b"], r["winner"]) for r in chosen], len(rows), ties


def preference(score_a: float, score_b: float) -> float | None:
    if score_a != score_a or score_b != score_b:  # NaN: not scored
        return None
    return 1.0 if score_a > score_b else 0.0 if score_a < score_b else 0.5


# -- judges ---------------------------------------------------------------------------------------------------
def judge_coin(pairs: Sequence[Pair], ctx: "Context") -> Verdicts:
    return Verdicts([0.5] * len(pairs))


def judge_longer(pairs: Sequence[Pair], ctx: "Context") -> Verdicts:
    return Verdicts([preference(len(p.a), len(p.b)) for p in pairs])


def _rows(pairs: Sequence[Pair], flip: bool) -> dict[str, list]:
    """Both responses of each pair as rows, pair k = cluster k; `flip` puts b first (the judge sees it as sample 1)."""
    out: dict[str, list] = {"instruction": [], "output": [], "cluster_ids": []}
    for k, p in enumerate(pairs):
        for text in ((p.b, p.a) if flip else (p.a, p.b)):
            out["instruction"].append(p.prompt)
            out["output"].append(text)
            out["cluster_ids"].append([k])
    return out


def _comparative(verdict: str) -> Callable[[Sequence[Pair], "Context"], Verdicts]:
    def judge(pairs: Sequence[Pair], ctx: Context) -> Verdicts:
        from datasets import Dataset

        from hf_prefsel.tacos import ComparativeScorer, ComparativeScorerConfig

        llm = ctx.llm if verdict == "sampled" else ctx.likelihood_llm
        per_order: list[list[tuple[float, float]]] = []
        calls = tokens = 0
        start = time.perf_counter()
        for flip in (False, True):
            scorer = ComparativeScorer(llm, ComparativeScorerConfig(verdict=verdict, input_column=None)
                                       if verdict != "sampled" else ComparativeScorerConfig(input_column=None))
            scored = scorer.score(Dataset.from_dict(_rows(pairs, flip)), progress=False)
            s = scored["score"]
            firsts, seconds = s[0::2], s[1::2]
            per_order.append([(y, x) if flip else (x, y) for x, y in zip(firsts, seconds)])  # back to (a, b)
            calls += scorer.report.usage.get("calls", 0)
            tokens += scorer.report.usage.get("total_tokens", 0)
        forward = [preference(*sa) for sa in per_order[0]]
        backward = [preference(*sa) for sa in per_order[1]]
        # what `swap=True` computes: each sample's score is the mean over the orders that were judged
        combined = []
        for (fa, fb), (ba, bb) in zip(*per_order):
            got = [(x, y) for x, y in ((fa, fb), (ba, bb)) if x == x and y == y]
            combined.append(preference(np.mean([g[0] for g in got]), np.mean([g[1] for g in got])) if got else None)
        return Verdicts(combined, forward, backward, calls, tokens, time.perf_counter() - start)

    return judge


def _singleton(verdict: str) -> Callable[[Sequence[Pair], "Context"], Verdicts]:
    def judge(pairs: Sequence[Pair], ctx: Context) -> Verdicts:
        from datasets import Dataset

        from hf_prefsel.tacos import ComparativeScorerConfig, SingletonScorer

        start = time.perf_counter()
        llm = ctx.llm if verdict == "sampled" else ctx.likelihood_llm
        scorer = SingletonScorer(llm, ComparativeScorerConfig(input_column=None, verdict=verdict))
        s = scorer.score(Dataset.from_dict(_rows(pairs, False)), progress=False)["score"]
        return Verdicts([preference(x, y) for x, y in zip(s[0::2], s[1::2])], calls=scorer.report.usage.get("calls", 0),
                        tokens=scorer.report.usage.get("total_tokens", 0), seconds=time.perf_counter() - start)

    return judge


def _ifd_values(pairs: Sequence[Pair], ctx: "Context") -> tuple[list[float], int, int, float]:
    """IFD of every response (computed once for both IFD judges)."""
    if ctx.ifd is None:
        from datasets import Dataset

        from hf_prefsel.tacos.likelihood import IFDScorer

        start = time.perf_counter()
        scorer = IFDScorer(ctx.likelihood_llm, input_column=None)
        calls, tokens = scorer.usage.calls, scorer.usage.total_tokens  # the in-process model is shared: count the delta
        out = Dataset.from_dict(_rows(pairs, False)).map(scorer, batched=True, batch_size=16, load_from_cache_file=False)
        ctx.pmi = list(out["pmi"])
        ctx.ifd = (list(out["ifd"]), scorer.usage.calls - calls, scorer.usage.total_tokens - tokens,
                   time.perf_counter() - start)
    return ctx.ifd


def judge_ifd(pairs: Sequence[Pair], ctx: "Context") -> Verdicts:
    ifd, calls, tokens, seconds = _ifd_values(pairs, ctx)
    # lower IFD = the instruction explains the response better: negate so the higher value wins
    return Verdicts([preference(-x, -y) for x, y in zip(ifd[0::2], ifd[1::2])], calls=calls, tokens=tokens, seconds=seconds)


def judge_ifd_cherry(pairs: Sequence[Pair], ctx: "Context") -> Verdicts:
    from hf_prefsel.tacos.likelihood import cherry_quality

    ifd, _, _, _ = _ifd_values(pairs, ctx)  # its cost is counted once, under `ifd`
    q = [cherry_quality(x) for x in ifd]
    return Verdicts([preference(x, y) for x, y in zip(q[0::2], q[1::2])])


def judge_ifd_pmi(pairs: Sequence[Pair], ctx: "Context") -> Verdicts:
    _ifd_values(pairs, ctx)  # its cost is counted once, under `ifd`
    pmi = ctx.pmi or []
    return Verdicts([preference(x, y) for x, y in zip(pmi[0::2], pmi[1::2])])


JUDGES: dict[str, Callable[[Sequence[Pair], "Context"], Verdicts]] = {
    "coin": judge_coin,
    "longer": judge_longer,
    "comparative": _comparative("sampled"),
    "comparative_prob": _comparative("probability"),
    "singleton": _singleton("sampled"),
    "singleton_prob": _singleton("probability"),
    "ifd": judge_ifd,
    "ifd_cherry": judge_ifd_cherry,
    "ifd_pmi": judge_ifd_pmi,
}


@dataclass
class Context:
    llm: object  # LLMConfig of the generating judges
    likelihood_llm: object  # LLMConfig of the likelihood / probability judges (in process for the embedded model)
    ifd: tuple[list[float], int, int, float] | None = None
    pmi: list[float] | None = None


# -- statistics -----------------------------------------------------------------------------------------------
def credits(pairs: Sequence[Pair], prefs: Sequence[float | None]) -> np.ndarray:
    """1 when the judge picks the human winner, 0 when it picks the other, 0.5 for a judge tie or a failure."""
    out = []
    for p, v in zip(pairs, prefs):
        if v is None or v == 0.5:
            out.append(0.5)
        else:
            out.append(1.0 if (v > 0.5) == (p.winner == "a") else 0.0)
    return np.array(out)


def bootstrap(values: np.ndarray, seed: int = 0, resamples: int = 2000) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean (half credits rule out a plain binomial interval)."""
    if len(values) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def consistency(forward: Sequence[float | None], backward: Sequence[float | None]) -> tuple[float, int]:
    """Share of pairs judged in both orders whose winner (a, b or tie) is the same in both, and their count."""
    both = [(f, b) for f, b in zip(forward, backward) if f is not None and b is not None]
    if not both:
        return float("nan"), 0
    return sum(f == b for f, b in both) / len(both), len(both)


def merge(parts: Sequence[Verdicts]) -> Verdicts:
    """The verdicts of several sets as one (costs add up)."""
    orders = all(p.forward is not None for p in parts)
    return Verdicts(
        [x for p in parts for x in p.combined],
        [x for p in parts for x in p.forward or []] if orders else None,
        [x for p in parts for x in p.backward or []] if orders else None,
        sum(p.calls for p in parts), sum(p.tokens for p in parts), sum(p.seconds for p in parts),
    )


def summarize(name: str, subset: str, pairs: Sequence[Pair], v: Verdicts) -> dict:
    """One table row: `v` holds the verdicts on `pairs`, in order."""
    prefs = list(v.combined)
    c = credits(pairs, prefs)
    n = len(pairs)
    if name == "coin":
        half = 1.96 * 0.5 / np.sqrt(max(n, 1))
        lo, hi = max(0.0, 0.5 - half), min(1.0, 0.5 + half)
    else:
        lo, hi = bootstrap(c)
    row = {
        "judge": name, "set": subset, "n": n, "agreement": float(c.mean()) if n else float("nan"), "lo": lo, "hi": hi,
        "judge_ties": sum(p == 0.5 for p in prefs), "failed": sum(p is None for p in prefs),
    }
    if v.forward is not None and v.backward is not None:
        row["consistency"], row["both_orders"] = consistency(v.forward, v.backward)
    row["calls_per_verdict"] = v.calls / n if n else float("nan")
    row["tokens_per_verdict"] = v.tokens / n if n else float("nan")
    row["seconds_per_verdict"] = v.seconds / n if n else float("nan")
    return row


def fmt(row: dict) -> str:
    cons = f"{row['consistency']:.0%} of {row['both_orders']}" if "consistency" in row else "-"
    cost = "-" if row["judge"] in ("coin", "longer", "ifd_cherry", "ifd_pmi") else (
        f"{row['calls_per_verdict']:.2f} / {row['tokens_per_verdict']:.0f} / {row['seconds_per_verdict']:.1f}")
    return (f"| {row['judge']} | {row['set']} | {row['n']} | {row['agreement']:.3f} [{row['lo']:.2f}, {row['hi']:.2f}] | "
            f"{row['judge_ties']} | {row['failed']} | {cons} | {cost} |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=40, help="non-tie pairs per set (default 40)")
    parser.add_argument("--sets", default=None, help=f"comma-separated, from {', '.join(SETS)} (default: all, or none "
                        "with --file)")
    parser.add_argument("--file", action="append", default=[], help="another human-labelled set: a JSONL file (or glob) "
                        "with id, prompt, response_a, response_b, winner (a, b or tie), named by its file name; repeat "
                        "for more")
    parser.add_argument("--judges", default=",".join(JUDGES), help=f"comma-separated, from {', '.join(JUDGES)}")
    parser.add_argument("--endpoint", action="append", default=[], help="a real model's base URL (repeat for replicas)")
    parser.add_argument("--route", choices=("auto", "chat", "completion"), default="auto")
    parser.add_argument("--model", default=None)
    parser.add_argument("--replicas", type=int, default=2, help="embedded-model servers (default 2)")
    parser.add_argument("--backend", choices=("llama_cpp_python", "xllamacpp"), default="llama_cpp_python",
                        help="embedded-model server kind")
    parser.add_argument("--cache", default=None, help="request cache file to reuse (default: a fresh one, so costs are real)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the table rows to this JSON file")
    args = parser.parse_args(argv)
    default_sets = "" if args.file else ",".join(SETS)
    sets = [s for s in (default_sets if args.sets is None else args.sets).split(",") if s]
    files = {os.path.splitext(os.path.basename(f))[0].rstrip("-*"): f for f in args.file}
    judges = [j for j in args.judges.split(",") if j]
    for name in sets:
        if name not in SETS:
            parser.error(f"unknown set {name!r}; choose from {', '.join(SETS)}")
    sets += [name for name in files if name not in sets]
    for name in judges:
        if name not in JUDGES:
            parser.error(f"unknown judge {name!r}; choose from {', '.join(JUDGES)}")

    from hf_prefsel.llm import LLMConfig, serve_local

    pairs: dict[str, list[Pair]] = {}
    print("| set | pairs in file | human ties (left out) | sampled |")
    print("|---|---|---|---|")
    for name in sets:
        got, total, ties = load_pairs(name, args.pairs, args.seed, files.get(name))
        pairs[name] = got
        print(f"| {name} | {total} | {ties} | {len(got)} |")
    tmp = tempfile.TemporaryDirectory()
    cache_path = args.cache or os.path.join(tmp.name, "requests.sqlite")
    servers = None
    try:
        if args.endpoint:
            llm = LLMConfig(endpoints=args.endpoint, route=args.route, model=args.model, cache_path=cache_path)
            likelihood_llm = llm
        else:
            needs_server = any(j in ("comparative", "singleton") for j in judges)
            servers = serve_local(args.replicas, backend=args.backend) if needs_server else None
            llm = servers.config(cache_path=cache_path) if servers else None
            likelihood_llm = LLMConfig(cache_path=cache_path)  # the embedded model in process, log-probabilities exact
        rows: list[dict] = []
        contexts = {subset: Context(llm, likelihood_llm) for subset in sets}
        for name in judges:
            parts = []
            for subset in sets:  # one run per set, so each set's cost is its own
                print(f"judging {subset} with {name} ...", file=sys.stderr, flush=True)
                parts.append(JUDGES[name](pairs[subset], contexts[subset]))
                rows.append(summarize(name, subset, pairs[subset], parts[-1]))
            rows.append(summarize(name, "all", [p for s in sets for p in pairs[s]], merge(parts)))
    finally:
        if servers is not None:
            servers.close()
        tmp.cleanup()
    where = f"endpoint {', '.join(args.endpoint)}" if args.endpoint else (
        f"embedded Gemma 3 270M (comparative, singleton: {args.replicas} {args.backend} servers; "
        "ifd, comparative_prob: in process)")
    print(f"\n{sum(map(len, pairs.values()))} pairs, {where}, seed {args.seed}")
    print("| judge | set | n | agreement [95% CI] | judge ties | failed | position consistency | calls / tokens / s per verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(fmt(row))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    default = next((r for r in rows if r["judge"] == DEFAULT_JUDGE and r["set"] == "all"), None)
    if default is not None:
        print(f"agreement: {default['agreement']:.3f}")


if __name__ == "__main__":
    main()
