#!/usr/bin/env python
"""Overhead of our LLM pipeline over a raw async client, on the same endpoint and the same requests.

(a) raw: `huggingface_hub.AsyncInferenceClient.chat_completion` at concurrency c, requests spread
    round-robin over the replicas, nothing else;
(b) ours: `Dataset.map(OpenTagger(...), batched=True)` at concurrency c — prompt building,
    schema dialect, validation, request cache writes, usage accounting, the sync face.
Both send identical chat requests (few-shot messages, the llama.cpp schema form, same max_tokens)
to local llama.cpp servers with the embedded Gemma 3 270M (two one-thread replicas by default).
Runs alternate (a, b, b, a, a, b, ...) and the medians are compared; each run also reports the servers'
CPU seconds, which tells extra work per request apart from the shared machine's contention. Last line:
`ratio: X` = b / a rows/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time

import datasets
from huggingface_hub import AsyncInferenceClient

from hf_prefsel.llm import serve_local
from hf_prefsel.llm.structured import chat_response_format, schema_of
from hf_prefsel.tacos import OpenTagger

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "instructions", "lima_train_1k.jsonl")


async def raw_run(urls: list[str], prompts: list[list[dict]], schema: dict, concurrency: int, max_tokens: int) -> tuple[float, int]:
    clients = [AsyncInferenceClient(base_url=u, timeout=600) for u in urls]
    semaphore = asyncio.Semaphore(concurrency)
    tokens = 0

    async def one(i: int, messages: list[dict]) -> None:
        nonlocal tokens
        async with semaphore:
            out = await clients[i % len(clients)].chat_completion(
                messages, max_tokens=max_tokens, temperature=0.0,
                response_format=chat_response_format("llama_cpp_python", schema),
            )
            tokens += out.usage.completion_tokens

    start = time.perf_counter()
    await asyncio.gather(*(one(i, m) for i, m in enumerate(prompts)))
    elapsed = time.perf_counter() - start
    for c in clients:
        await c.close()
    return elapsed, tokens


def ours_run(servers, ds: datasets.Dataset, concurrency: int, max_tokens: int, cache_dir: str, k: int) -> tuple[float, int]:
    # constrain="always": the same schema-constrained requests as the raw client (our default on llama-cpp-python
    # generates freely first, which would make this a comparison of different work, not of overhead)
    config = servers.config(route="chat", max_concurrency=concurrency, max_tokens=max_tokens, constrain="always",
                            cache_path=os.path.join(cache_dir, f"run{k}.sqlite"), repair_attempts=0)
    tagger = OpenTagger(config, explanations=False, input_column=None)
    start = time.perf_counter()
    ds.map(tagger, batched=True, batch_size=len(ds), load_from_cache_file=False, keep_in_memory=True)
    elapsed = time.perf_counter() - start
    return elapsed, tagger.usage.completion_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--quick", action="store_true", help="8 rows, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeats = 8, 1
    with open(args.data) as fh:
        rows = [json.loads(line) for _, line in zip(range(args.rows), fh)]
    queries = [" ".join(r["instruction"].split())[:600] for r in rows]
    tagger = OpenTagger(explanations=False, input_column=None)
    prompts = [tagger.build_messages({"instruction": q}) for q in queries]
    schema = schema_of(tagger.output_type)
    ds = datasets.Dataset.from_dict({"instruction": queries})
    raw, ours = [], []
    with serve_local(args.replicas, n_threads=1) as servers, tempfile.TemporaryDirectory() as cache_dir:
        print(f"{args.rows} rows, {args.replicas} replicas, concurrency {args.concurrency}, max_tokens {args.max_tokens}")
        asyncio.run(raw_run(servers.urls, prompts[:2], schema, args.concurrency, args.max_tokens))  # warm-up
        jobs = {"raw": lambda: asyncio.run(raw_run(servers.urls, prompts, schema, args.concurrency, args.max_tokens)),
                "ours": lambda: ours_run(servers, ds, args.concurrency, args.max_tokens, cache_dir, len(ours))}
        for k in range(args.repeats):
            line = [f"run {k}:"]
            for name in ("raw", "ours") if k % 2 == 0 else ("ours", "raw"):  # alternate, so drift hits both
                client0, server0 = time.process_time(), servers.cpu_seconds()
                seconds, tokens = jobs[name]()
                client, server = time.process_time() - client0, servers.cpu_seconds() - server0
                (raw if name == "raw" else ours).append((seconds, tokens, server))
                # client CPU competes with the one-thread servers for the 2 cores; server CPU is the work the
                # requests cost, which identical requests should cost both sides alike
                line.append(f"{name} {seconds:.1f}s ({tokens} tok, client CPU {client:.2f}s, server CPU {server:.1f}s)")
            print("  ".join(line) + f"  load {os.getloadavg()[0]:.1f}", flush=True)
    for name, runs in (("raw AsyncInferenceClient", raw), ("hf_prefsel Dataset.map", ours)):
        seconds = statistics.median(r[0] for r in runs)
        tokens = statistics.median(r[1] for r in runs)
        server = statistics.median(r[2] for r in runs)
        print(f"{name}: {args.rows / seconds:.3f} requests/s, {tokens / seconds:.1f} completion tokens/s, "
              f"server CPU {server / args.rows:.3f} s/request")
    ratio = statistics.median(r[0] for r in raw) / statistics.median(o[0] for o in ours)
    print(f"ratio: {ratio:.3f}")


if __name__ == "__main__":
    sys.exit(main())
