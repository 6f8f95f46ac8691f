#!/usr/bin/env python
"""Our tagging pipeline against distilabel 1.5.3 on batching servers, both at their library defaults.

(a) the batching test server (`tests/llm/batching_server.py`: a model of continuous batching with N slots, a step
    time growing slowly with the batch, a queue beyond the slots, `/props` reporting the slots) with 32 and 128
    slots; every reply costs the same `--tokens` decode steps on both sides, so rows/s measures how well each
    side keeps the slots busy, against the server's peak (every slot busy all the time);
(b) the embedded model behind `serve_local(backend=...)` (default xllamacpp: llama.cpp's server with parallel
    slots), with real replies: valid rows (a list of 3 to 6 unique tags) per second count.
Ours: `Dataset.map(OpenTagger(config), batched=True)` with nothing tuned (fresh request cache per run;
`LLMConfig(endpoints=[url])` on the test server, `servers.config()` on the embedded one). Peer: distilabel's
`OpenAILLM` with its defaults (`LoadDataFromDicts` and `Task` batches of 50), driven by
`../shared/bench/peer_bench.py` with its few-shot prompt and the stop sequence `\\n` (interpreter:
`--peer-python`, any with `distilabel[openai]==1.5.3`, `httpx` and `requests`). Runs alternate (ours, peer, peer,
ours, ...) and medians are compared. `--backends` instead compares our pipeline on the two embedded backends.
Last line: `ratio: X` = ours / peer rows/s on the 128-slot test server.
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

from hf_prefsel.llm import LLMConfig, serve_local
from hf_prefsel.tacos import OpenTagger

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, HERE)
from llm.batching_server import BatchingServer  # noqa: E402
from peer_tagging import DATA, PEER_BENCH, is_valid, load_rows, normalized, peer_tags  # noqa: E402


def run_ours(config: LLMConfig, rows: list[str]) -> dict[str, Any]:
    ds = datasets.Dataset.from_dict({"instruction": rows})
    tagger = OpenTagger(config)
    start = time.perf_counter()
    out = ds.map(tagger, batched=True, load_from_cache_file=False, keep_in_memory=True)
    wall = time.perf_counter() - start
    limits = tagger.client.replica_limits()
    tagger.client.close()
    return {"wall_s": wall, "tags": [normalized(t) for t in out["tags"]], "calls": tagger.usage.calls,
            "completion_tokens": tagger.usage.completion_tokens, "failures": tagger.usage.failures, "limits": limits}


def run_peer(args: argparse.Namespace, urls: list[str], rows: int, workdir: str) -> dict[str, Any]:
    """One distilabel run at its defaults (batches of 50) through peer_bench.py, one pipeline branch per server (its
    `OpenAILLM` takes one URL); its wall excludes distilabel's imports."""
    out = tempfile.mktemp(suffix=".json", dir=workdir)
    cmd = [args.peer_python, args.peer_bench, "--data", args.data, "--n", str(rows), "--max-chars", str(args.max_chars),
           "--max-tokens", "48", "--temperature", "0.0", "--stop", "\\n", "--urls", *[u + "/v1" for u in urls], "--skip-raw",
           "--repeats", "1", "--input-batch-size", "50", "--load-batch-size", "50", "--json-out", out, "--workdir", workdir]
    cmd += ["--skip-single"] if len(urls) > 1 else []
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.peer_timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"peer_bench.py failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    with open(out) as fh:
        report = json.load(fh)
    label = f"dl-{len(urls)}"
    summary = report["summary"][label]
    return {"wall_s": summary["median_wall_s"], "tags": [peer_tags(t) for t in report["texts"][label][0]],
            "completion_tokens": summary["median_completion_tokens"], "failures": summary["failed"]}


def with_server_cpu(servers: Any, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`run()`'s result plus the CPU seconds the embedded servers spent on it (robust to a busy machine)."""
    cpu = servers.cpu_seconds()
    result = run()
    result["server_cpu_s"] = servers.cpu_seconds() - cpu
    return result


def alternate(jobs: dict[str, Callable[[], dict[str, Any]]], repeats: int, n: int, label: str) -> dict[str, float]:
    """Run the jobs alternately (a, b, b, a, ...), print each run and the medians; return median rows/s per job."""
    names = list(jobs)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else names[::-1]:
            load = os.getloadavg()[0]
            res = jobs[name]()
            res["load"] = (load + os.getloadavg()[0]) / 2
            runs[name].append(res)
            valid = sum(is_valid(t) for t in res["tags"])
            extra = f" limits={res['limits']}" if "limits" in res else ""
            extra += f" server_cpu_s/row={res['server_cpu_s'] / n:.3f}" if "server_cpu_s" in res else ""
            print(f"[{label} rep {rep + 1}] {name:8s} wall={res['wall_s']:7.2f}s rows/s={n / res['wall_s']:7.2f} "
                  f"valid={valid}/{n} failures={res['failures']} load={res['load']:.1f}{extra}", flush=True)
    medians = {}
    for name, results in runs.items():
        wall = statistics.median(r["wall_s"] for r in results)
        valid = statistics.median(sum(is_valid(t) for t in r["tags"]) for r in results)
        medians[name] = n / wall
        cpu = (f"  server CPU s/row {statistics.median(r['server_cpu_s'] for r in results) / n:.3f}"
               if "server_cpu_s" in results[0] else "")
        print(f"{label}: {name:8s} {n / wall:7.2f} rows/s  valid rows/s {valid / wall:7.2f} ({valid / n:.1%} valid)  "
              f"walls {[round(r['wall_s'], 2) for r in results]}{cpu}", flush=True)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int, nargs="*", default=[32, 128], help="test-server slot counts")
    parser.add_argument("--test-rows", type=int, default=512, help="rows per run on the test server")
    parser.add_argument("--step", type=float, default=0.1, help="test server: seconds per decode step of one sequence")
    parser.add_argument("--growth", type=float, default=0.02, help="test server: step time growth per extra sequence")
    parser.add_argument("--tokens", type=int, default=8, help="test server: decode steps per reply")
    parser.add_argument("--embedded-rows", type=int, default=64)
    parser.add_argument("--embedded-backend", default="xllamacpp", choices=["xllamacpp", "llama_cpp_python"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-chars", type=int, default=400)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON", sys.executable))
    parser.add_argument("--peer-bench", default=PEER_BENCH)
    parser.add_argument("--peer-timeout", type=float, default=1800)
    parser.add_argument("--skip-test-server", action="store_true")
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--backends", action="store_true", help="compare our pipeline on both embedded backends instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        def fresh(**kw: Any) -> dict[str, Any]:
            return {"cache_path": tempfile.mktemp(suffix=".sqlite", dir=workdir), **kw}

        if args.backends:
            rows = load_rows(args.data, args.embedded_rows, args.max_chars)
            with serve_local(backend="xllamacpp") as batching, serve_local(backend="llama_cpp_python") as single:
                print(f"embedded backends, {len(rows)} rows, load {os.getloadavg()[0]:.1f}", flush=True)
                for servers in (batching, single):
                    run_ours(servers.config(**fresh()), rows[:4])  # warm up
                jobs = {name: (lambda s=s: with_server_cpu(s, lambda: run_ours(s.config(**fresh()), rows)))
                        for name, s in (("xllamacpp", batching), ("llama_cpp_python", single))}
                medians = alternate(jobs, args.repeats, len(rows), "backends")
                print(f"ratio: {medians['xllamacpp'] / medians['llama_cpp_python']:.3f}")
            return

        ratio = None
        if not args.skip_embedded:
            rows = load_rows(args.data, args.embedded_rows, args.max_chars)
            with serve_local(backend=args.embedded_backend) as servers:
                print(f"(b) embedded {args.embedded_backend}: {servers.urls}, {len(rows)} rows, "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
                run_ours(servers.config(**fresh()), rows[:4])  # warm up
                jobs = {"ours": lambda: with_server_cpu(servers, lambda: run_ours(servers.config(**fresh()), rows)),
                        "peer": lambda: with_server_cpu(servers, lambda: run_peer(args, servers.urls, len(rows), workdir))}
                medians = alternate(jobs, args.repeats, len(rows), "embedded")
                print(f"embedded ratio (ours / peer rows/s): {medians['ours'] / medians['peer']:.3f}", flush=True)
        if not args.skip_test_server:
            rows = load_rows(args.data, args.test_rows, args.max_chars)
            for slots in args.slots:
                with BatchingServer(slots, step=args.step, growth=args.growth, tokens=args.tokens,
                                    report="llama_cpp") as server:
                    label = f"(a) {slots} slots"
                    print(f"{label}: peak {server.peak_rate:.2f} rows/s, {len(rows)} rows", flush=True)
                    jobs = {"ours": lambda: run_ours(LLMConfig(endpoints=[server.url], **fresh()), rows),
                            "peer": lambda: run_peer(args, [server.url], len(rows), workdir)}
                    medians = alternate(jobs, args.repeats, len(rows), label)
                    print(f"{label}: ours / peak {medians['ours'] / server.peak_rate:.3f}, "
                          f"peer / peak {medians['peer'] / server.peak_rate:.3f}, "
                          f"ours / peer {medians['ours'] / medians['peer']:.3f}", flush=True)
                    ratio = medians["ours"] / medians["peer"]
        if ratio is not None:
            print(f"ratio: {ratio:.3f}")


if __name__ == "__main__":
    main()
