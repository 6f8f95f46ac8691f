#!/usr/bin/env python
"""Our default tagging pipeline against distilabel (the leading peer) on the same local servers.

(a) ours: `Dataset.map(OpenTagger(servers.config(...)), batched=True)` with every default as shipped
    (fresh request cache per run, so every row is paid for);
(b) peer: distilabel 1.5.3 as a competent user would set it up for the same task, driven through
    `../shared/bench/peer_bench.py` (its few-shot prompt, `/v1/completions`, 48 max tokens,
    temperature 0, one branch per server) **with** the stop sequence `"\\n"`. It runs in its own
    virtual environment (`--peer-python`, default `$PEER_PYTHON` or /work/peer-venv/bin/python,
    made with `python3.11 -m venv DIR && DIR/bin/pip install 'distilabel[openai]' httpx requests`).
Both tag the same first N LIMA instructions cut to 400 characters, against the same two one-thread
llama.cpp servers (`serve_local`). Runs alternate (a, b, b, a, a, b, ...) and medians are compared; each
line carries the 1-minute load average, since the machine's two cores are shared. A row is valid when
it holds a list of 3 to 6 unique tags (lowercased, whitespace collapsed) — the same test on both sides.
Last line: `ratio: X` = ours / peer rows/s.

`--ablation` instead measures each saving on its own against our default (stop sequence, grammar,
prefix reuse, answer prefill, queue depth, rows per call, few-shot length, interleaved prompt families
with and without prefix affinity): completion and evaluated prompt tokens per row, rows/s, validity and agreement with the
default's tags.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import datasets

from hf_prefsel.llm import LLMClient, LocalServers, serve_local
from hf_prefsel.llm.structured import extract_json
from hf_prefsel.tacos import OpenTagger
from hf_prefsel.tacos.tagger import PlainTags, tagging_prompt

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared")
DATA = os.path.join(SHARED, "data", "instructions", "lima_train_1k.jsonl")
PEER_BENCH = os.path.join(SHARED, "bench", "peer_bench.py")
PEER_PYTHON = os.environ.get("PEER_PYTHON", "/work/peer-venv/bin/python")


# -- data and the validity test ------------------------------------------------------------------------
def load_rows(path: str, n: int, max_chars: int) -> list[str]:
    """The first `n` instructions cut to `max_chars`, exactly as peer_bench.py loads them."""
    rows: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(str(json.loads(line)["instruction"])[:max_chars])
            if len(rows) == n:
                break
    return rows


def normalized(tags: Any) -> list[str] | None:
    """Unique tags, lowercased with whitespace collapsed, in order; None if `tags` is not a list of strings."""
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return None
    return list(dict.fromkeys(n for n in (" ".join(t.lower().split()) for t in tags) if n))


def is_valid(tags: Any) -> bool:
    """A valid list of 3 to 6 unique tags."""
    unique = normalized(tags)
    return unique is not None and 3 <= len(unique) <= 6


def peer_tags(text: str | None) -> list[str] | None:
    """The tag list in a peer reply: the first JSON value of the text, if it is a list of strings."""
    try:
        return normalized(extract_json(text or ""))
    except Exception:
        return None


def jaccard(a: list[str] | None, b: list[str] | None) -> float:
    sa, sb = set(a or ()), set(b or ())
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


# -- measuring ------------------------------------------------------------------------------------------
def measured(servers: LocalServers, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one timed job and add server CPU, prompt-cache figures and the load average to its result."""
    stats0, cpu0, load0 = servers.prefix_stats(), servers.cpu_seconds(), os.getloadavg()[0]
    result = run()
    stats1, cpu1 = servers.prefix_stats(), servers.cpu_seconds()
    result.update(server_cpu_s=cpu1 - cpu0, load=(load0 + os.getloadavg()[0]) / 2,
                  evaluated_tokens=stats1["evaluated_tokens"] - stats0["evaluated_tokens"],
                  prefix_hits=stats1["prefix_hits"] - stats0["prefix_hits"] + stats1["full_hits"] - stats0["full_hits"],
                  server_requests=stats1["requests"] - stats0["requests"])
    return result


def run_ours(servers: LocalServers, rows: list[str], workdir: str, *, config: dict | None = None,
             tagger: dict | None = None, tagger_class: type[OpenTagger] = OpenTagger) -> dict[str, Any]:
    """Our pipeline as shipped (plus `config`/`tagger` changes for the ablation), fresh request cache."""
    ds = datasets.Dataset.from_dict({"instruction": rows})
    cache = tempfile.mktemp(suffix=".sqlite", dir=workdir)
    start = time.perf_counter()
    mapper = tagger_class(servers.config(cache_path=cache, **(config or {})), **(tagger or {}))
    out = ds.map(mapper, batched=True, load_from_cache_file=False, keep_in_memory=True)
    wall = time.perf_counter() - start
    usage = mapper.usage.as_dict()
    mapper.client.close()
    return {"wall_s": wall, "tags": [normalized(t) for t in out["tags"]], "calls": usage["calls"],
            "completion_tokens": usage["completion_tokens"], "prompt_tokens": usage["prompt_tokens"],
            "repairs": usage["repairs"], "rows_fallback": usage["rows_fallback"], "failures": usage["failures"]}


def run_peer(args: argparse.Namespace, servers: LocalServers, workdir: str) -> dict[str, Any]:
    """One distilabel run through peer_bench.py (its own interpreter; its wall excludes distilabel's import)."""
    out = tempfile.mktemp(suffix=".json", dir=workdir)
    cmd = [args.peer_python, args.peer_bench, "--data", args.data, "--n", str(args.rows), "--max-chars", str(args.max_chars),
           "--max-tokens", "48", "--temperature", "0.0", "--stop", "\\n", "--urls", *[u + "/v1" for u in servers.urls],
           "--skip-raw", "--skip-single", "--repeats", "1", "--json-out", out, "--workdir", workdir]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.peer_timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"peer_bench.py failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    with open(out) as fh:
        report = json.load(fh)
    label = f"dl-{len(servers.urls)}"
    summary = report["summary"][label]
    return {"wall_s": summary["median_wall_s"], "tags": [peer_tags(t) for t in report["texts"][label][0]],
            "completion_tokens": summary["median_completion_tokens"], "calls": args.rows, "failures": summary["failed"]}


def warm_up(servers: LocalServers, rows: list[str], workdir: str) -> None:
    """Load the model pages on every server before timing anything."""
    run_ours(servers, rows[: len(servers.urls)], workdir)


def describe(name: str, res: dict[str, Any], n: int) -> str:
    valid = sum(is_valid(t) for t in res["tags"])
    extra = "".join(f" {k}={res[k]}" for k in ("repairs", "rows_fallback", "failures") if res.get(k))
    return (f"{name:10s} wall={res['wall_s']:7.2f}s rows/s={n / res['wall_s']:.3f} valid={valid}/{n} "
            f"compl_tok/row={res['completion_tokens'] / n:5.1f} eval_prompt_tok/row={res['evaluated_tokens'] / n:5.1f} "
            f"prefix_hits={res['prefix_hits']}/{res['server_requests']} server_cpu_s/row={res['server_cpu_s'] / n:.3f} "
            f"load={res['load']:.1f}{extra}")


# -- (a) vs (b) ---------------------------------------------------------------------------------------------
def compare(args: argparse.Namespace, servers: LocalServers, rows: list[str], workdir: str) -> None:
    n = len(rows)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "peer": []}
    jobs = {"ours": lambda: run_ours(servers, rows, workdir), "peer": lambda: run_peer(args, servers, workdir)}
    for rep in range(args.repeats):
        for name in (("ours", "peer") if rep % 2 == 0 else ("peer", "ours")):
            res = measured(servers, jobs[name])
            runs[name].append(res)
            print(f"[rep {rep + 1}] {describe(name, res, n)}", flush=True)
    print()
    medians = {}
    for name, results in runs.items():
        wall = statistics.median(r["wall_s"] for r in results)
        valid = statistics.median(sum(is_valid(t) for t in r["tags"]) for r in results) / n
        cpu = statistics.median(r["server_cpu_s"] for r in results) / n
        toks = statistics.median(r["completion_tokens"] for r in results) / n
        medians[name] = n / wall
        who = "ours (OpenTagger defaults)" if name == "ours" else "peer (distilabel, stop '\\n')"
        print(f"{who:30s} {n / wall:.3f} rows/s  valid 3-6 unique tags: {valid:.1%}  completion tok/row {toks:.1f}  "
              f"server CPU s/row {cpu:.3f}  walls {[round(r['wall_s'], 1) for r in results]}  "
              f"loads {[round(r['load'], 1) for r in results]}")
    agree = statistics.mean(jaccard(a, b) for a, b in zip(runs["ours"][0]["tags"], runs["peer"][0]["tags"]))
    print(f"tag overlap ours vs peer (mean Jaccard, first runs): {agree:.2f}")
    print(f"ratio: {medians['ours'] / medians['peer']:.3f}")


# -- the savings one by one ---------------------------------------------------------------------------------
class UniquePrefixTagger(OpenTagger):
    """Measurement only: a per-row marker before the few-shot prefix, so no server can reuse any of it."""

    def build_messages(self, row: dict[str, Any]) -> list[dict[str, str]]:
        messages = super().build_messages(row)
        messages[0] = {"role": "system", "content": f"Request {abs(hash(row['instruction'])) % 10**8}. " + messages[0]["content"]}
        return messages


def run_families(servers: LocalServers, rows: list[str], workdir: str, *, reuse: bool) -> dict[str, Any]:
    """Two prompt families (two few-shot prefixes) interleaved, as when two stages share the servers."""
    config = servers.config(cache_path=tempfile.mktemp(suffix=".sqlite", dir=workdir), prefix_reuse=reuse)
    client = LLMClient(config)
    families = [tagging_prompt(False), tagging_prompt(False, 4, system=False)]
    prompts = [families[i % 2].messages(" ".join(q.split())) for i, q in enumerate(rows)]
    start = time.perf_counter()
    results = client.run_structured(prompts, PlainTags, overrides={"max_tokens": 48})
    wall = time.perf_counter() - start
    usage = client.usage.as_dict()
    client.close()
    return {"wall_s": wall, "tags": [normalized(r.value) if r.ok else None for r in results], "calls": usage["calls"],
            "completion_tokens": usage["completion_tokens"], "repairs": usage["repairs"], "failures": usage["failures"]}


def ablation(args: argparse.Namespace, servers: LocalServers, rows: list[str], workdir: str) -> None:
    variants: dict[str, Callable[[], dict[str, Any]]] = {
        "default": lambda: run_ours(servers, rows, workdir),
        "no-stop": lambda: run_ours(servers, rows, workdir, config={"end_at_answer": False}),
        "grammar": lambda: run_ours(servers, rows, workdir, config={"constrain": "always"}),
        "no-repair": lambda: run_ours(servers, rows, workdir, config={"repair_attempts": 0}),
        "no-prefix": lambda: run_ours(servers, rows, workdir, tagger_class=UniquePrefixTagger),
        "no-prefill": lambda: run_ours(servers, rows, workdir, config={"prefill": False}),
        "depth1": lambda: run_ours(servers, rows, workdir, config={"max_concurrency": len(servers.urls)}),
        "rows4": lambda: run_ours(servers, rows, workdir, tagger={"rows_per_call": 4}),
        "examples3": lambda: run_ours(servers, rows, workdir, tagger={"n_examples": 3}),
        "examples4": lambda: run_ours(servers, rows, workdir, tagger={"n_examples": 4}),
        "2fam-aff": lambda: run_families(servers, rows, workdir, reuse=True),
        "2fam-rr": lambda: run_families(servers, rows, workdir, reuse=False),
    }
    chosen = args.variants or list(variants)
    n = len(rows)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in chosen}
    for rep in range(args.repeats):
        for name in (chosen if rep % 2 == 0 else chosen[::-1]):
            res = measured(servers, variants[name])
            runs[name].append(res)
            print(f"[rep {rep + 1}] {describe(name, res, n)}", flush=True)
    reference = runs["default"][0]["tags"] if "default" in runs else None
    print(f"\n{'variant':10s} {'rows/s':>7s} {'valid':>6s} {'compl/row':>9s} {'evalp/row':>9s} {'cpu/row':>8s} "
          f"{'calls':>5s} {'agree':>5s} {'same':>5s}")
    for name, results in runs.items():
        wall = statistics.median(r["wall_s"] for r in results)
        med = lambda key: statistics.median(r[key] for r in results) / n  # noqa: E731
        valid = statistics.median(sum(is_valid(t) for t in r["tags"]) for r in results) / n
        agree = same = float("nan")
        if reference is not None:
            agree = statistics.mean(jaccard(a, b) for a, b in zip(results[0]["tags"], reference))
            same = statistics.mean(set(a or ()) == set(b or ()) for a, b in zip(results[0]["tags"], reference))
        print(f"{name:10s} {n / wall:7.3f} {valid:6.1%} {med('completion_tokens'):9.1f} {med('evaluated_tokens'):9.1f} "
              f"{med('server_cpu_s'):8.3f} {statistics.median(r['calls'] for r in results):5.0f} {agree:5.2f} {same:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--max-chars", type=int, default=400, help="instructions are cut to this, on both sides")
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--peer-python", default=PEER_PYTHON, help="python of a venv with distilabel[openai]")
    parser.add_argument("--peer-bench", default=PEER_BENCH)
    parser.add_argument("--peer-timeout", type=float, default=1800)
    parser.add_argument("--ablation", action="store_true", help="measure each saving against our default instead")
    parser.add_argument("--variants", nargs="*", help="ablation variants to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="16 rows, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeats = 16, 1
    if not args.ablation and not os.path.exists(args.peer_python):
        sys.exit(f"No peer interpreter at {args.peer_python}: create a venv with distilabel[openai] (see --help).")
    rows = load_rows(args.data, args.rows, args.max_chars)
    with serve_local(args.replicas, n_threads=1) as servers, tempfile.TemporaryDirectory() as workdir:
        print(f"{len(rows)} rows (<= {args.max_chars} chars), {args.replicas} one-thread llama.cpp replicas, "
              f"{args.repeats} repeats, load {os.getloadavg()[0]:.1f}", flush=True)
        warm_up(servers, rows, workdir)
        (ablation if args.ablation else compare)(args, servers, rows, workdir)


if __name__ == "__main__":
    main()
