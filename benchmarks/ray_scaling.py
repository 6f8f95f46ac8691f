#!/usr/bin/env python
"""One process vs a Ray cluster, tagging the same rows against the same endpoints, where the endpoints are the wall.

The endpoints are fake llama.cpp-style servers (separate processes) that answer every request after a fixed
`--latency` and decode at most `--slots` requests at once (reported in `/props`, as llama.cpp does), so neither
side can go faster than endpoints x slots / latency rows/s. Both sides run `OpenTagger` with
`max_concurrency = endpoints x slots` and a fresh request cache per run:

  single: `LocalExecutor` (`Dataset.map(batched=True)` in this process);
  ray:    `RayExecutor` on a two-node loopback cluster this script starts (or `--address` of a running one).

Ray's time includes starting its workers and merging the node caches back; connecting to the cluster once is
reported apart, and the start-up overhead is what one batch costs Ray beyond one process. Per size it prints
rows/s of both and their ratio; then the break-even size (the smallest at which Ray reaches 0.95 of one process:
with the endpoints as the wall it cannot do better than match it) and, last, `ratio: X` = Ray rows/s / single
rows/s at the largest size.

    python benchmarks/ray_scaling.py                 # 2k, 10k and 50k rows (~25 minutes)
    python benchmarks/ray_scaling.py --sizes 2000    # a quick look
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import datasets

from hf_prefsel.distributed import RayExecutor
from hf_prefsel.distributed.loopback import LoopbackCluster
from hf_prefsel.llm import LLMConfig, free_port
from hf_prefsel.llm.executor import LocalExecutor
from hf_prefsel.tacos import OpenTagger


def serve_fake(port: int, latency: float, slots: int) -> None:
    """A llama.cpp-style endpoint: `slots` requests decoded at once, each taking `latency` seconds."""
    gate = threading.BoundedSemaphore(slots)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, payload: object) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/props":
                self._send({"total_slots": slots})
            elif self.path == "/v1/models":
                self._send({"object": "list", "data": [{"id": "fake.gguf", "owned_by": "llamacpp"}]})
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            text = body.get("prompt") or body["messages"][-1]["content"]
            word = (text.rsplit("Input:", 1)[-1].split() or ["empty"])[0].lower().strip(".,!?")
            reply = json.dumps([{"tag": f"topic {word}", "explanation": "the first word"}])
            with gate:
                time.sleep(latency)
            usage = {"prompt_tokens": 200, "completion_tokens": 20, "total_tokens": 220}
            if self.path.endswith("/chat/completions"):
                choice = {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
                self._send({"id": "x", "object": "chat.completion", "model": "fake", "choices": [choice], "usage": usage})
            else:
                choice = {"index": 0, "text": reply, "finish_reason": "stop"}
                self._send({"id": "x", "object": "text_completion", "model": "fake", "choices": [choice], "usage": usage})

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def wait_port(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the fake endpoint on port {port} did not start") from None
            time.sleep(0.1)


def rows(n: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"instruction": [f"Word{i} asks about item {i}" for i in range(n)], "input": [""] * n})


def check(out: datasets.Dataset, n: int) -> None:
    assert len(out) == n and out["tags"][n - 1] == [f"topic word{n - 1}"], "wrong or misordered rows"
    assert set(out["tags_error"]) == {""}, "some rows failed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,10000,50000", help="comma-separated row counts")
    parser.add_argument("--endpoints", type=int, default=2)
    parser.add_argument("--slots", type=int, default=8, help="requests each endpoint decodes at once")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per request")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--nodes", type=int, default=2, help="loopback nodes to start (ignored with --address)")
    parser.add_argument("--workers-per-node", type=int, default=2)
    parser.add_argument("--address", help="an existing cluster's head instead of a loopback one")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    datasets.disable_progress_bars()

    ports = [free_port() for _ in range(args.endpoints)]
    spawn = multiprocessing.get_context("spawn")
    servers = [spawn.Process(target=serve_fake, args=(p, args.latency, args.slots), daemon=True) for p in ports]
    for server in servers:
        server.start()
    for port in ports:
        wait_port(port)
    total = args.endpoints * args.slots
    wall = total / args.latency
    print(f"endpoints: {args.endpoints} x {args.slots} slots at {args.latency * 1000:.0f} ms -> at most {wall:.0f} rows/s; "
          f"max_concurrency {total}, batch size {args.batch_size}", flush=True)

    cluster = None
    start = time.monotonic()
    if args.address is None:
        cluster = LoopbackCluster(slots=args.workers_per_node)
        cluster.start(nodes=args.nodes)
        address = cluster.address
    else:
        address = args.address
    work = tempfile.mkdtemp(prefix="ray_scaling_")
    executor = RayExecutor(address, checkpoint_dir=os.path.join(work, "runs"), node_cache_dir=os.path.join(work, "nodes"),
                           progress=False)
    executor.connect()  # now, so the runs below time work, not connecting
    print(f"cluster: {'started and ' if cluster else ''}connected in {time.monotonic() - start:.1f} s", flush=True)

    def config(tag: str) -> LLMConfig:
        return LLMConfig(endpoints=[f"http://127.0.0.1:{p}" for p in ports], max_concurrency=total,
                         cache_path=os.path.join(work, f"{tag}.sqlite"), max_retries=2, timeout=60)

    def timed(run, n: int, tag: str) -> float:
        ds = rows(n)
        t = time.perf_counter()
        out, _ = run(ds, OpenTagger(config(f"{tag}{n}")), batch_size=args.batch_size, desc=tag)
        seconds = time.perf_counter() - t
        check(out, n)
        return seconds

    results = []
    try:
        one_single, one_ray = timed(LocalExecutor().map, args.batch_size, "single-one"), timed(executor.map, args.batch_size, "ray-one")
        print(f"start-up overhead: {one_ray - one_single:.1f} s (one batch of {args.batch_size} rows: ray {one_ray:.1f} s, "
              f"single {one_single:.1f} s)", flush=True)
        for n in sizes:
            single = timed(LocalExecutor().map, n, "single")
            ray_s = timed(executor.map, n, "ray")
            report = executor.last_run
            results.append((n, n / single, n / ray_s))
            print(f"{n:>6} rows | single {n / single:6.1f} rows/s ({single:6.1f} s) | ray {n / ray_s:6.1f} rows/s "
                  f"({ray_s:6.1f} s; {report.workers} workers, setup {report.setup_seconds:.1f} s, merge "
                  f"{report.merge_seconds:.1f} s) | ratio {single / ray_s:.3f}", flush=True)
    finally:
        executor.close()
        if cluster is not None:
            cluster.stop()
        for server in servers:
            server.terminate()
    # against a shared wall Ray can at best match one process, so break-even is where it comes within 5 %
    even = next((n for n, s, r in results if r >= 0.95 * s), None)
    print(f"break-even (ray >= 0.95 x single): {f'{even} rows' if even else 'not reached at these sizes'}")
    n, single_rate, ray_rate = results[-1]
    print(f"ratio: {ray_rate / single_rate:.3f}")


if __name__ == "__main__":
    main()
