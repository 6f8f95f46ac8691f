"""Fixtures for the Space tests: `python spaces/app.py` launched on a free 127.0.0.1 port, stopped afterwards.

The app runs as a real subprocess (as on a Space), with its own request cache, the Hub switched off (so the
"Hub unreachable" path is deterministic) and small limits so the limit messages can be reached with small files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from shared_data import shared_path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "spaces" / "app.py"

# Small caps for the tests; the browser test overrides nothing else.
TEST_LIMITS = {
    "HF_PREFSEL_SPACE_MAX_ROWS": "300",
    "HF_PREFSEL_SPACE_MAX_UPLOAD_MB": "1",
    "HF_PREFSEL_SPACE_MAX_LLM_ROWS": "60",
}


def shared(*parts: str) -> Path:
    """A file under ../shared/data: skips locally, fails in CI, when absent."""
    return Path(shared_path(*parts))


def write_jsonl_sample(src: Path, dest: Path, n: int, keys: tuple[str, ...] | None = None) -> Path:
    """The first `n` rows of a shared JSONL file, written to `dest` at test time (never into the repo)."""
    with open(src, encoding="utf-8") as fh, open(dest, "w", encoding="utf-8") as out:
        for _, line in zip(range(n), fh):
            row = json.loads(line)
            if keys:
                row = {k: row.get(k) for k in keys}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return dest


class RunningApp:
    """A launched `spaces/app.py`: its URL, process and log file."""

    def __init__(self, url: str, proc: subprocess.Popen, log: Path):
        self.url, self.proc, self.log = url, proc, log

    def children(self) -> list[int]:
        """PIDs whose parent is the app (its llama.cpp servers, once started)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the app turns it into a clean exit that stops its model servers
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def launch_app(tmp: Path, extra_env: dict[str, str] | None = None, timeout: float = 120.0) -> RunningApp:
    """Start the app on a free port and wait until it answers HTTP 200."""
    from hf_prefsel.llm import free_port

    port = free_port()
    env = {**os.environ, **TEST_LIMITS, "HF_PREFSEL_CACHE": str(tmp / "cache"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp / "gradio"),
           **(extra_env or {})}
    env.pop("SPACE_ID", None)
    log = tmp / "app.log"
    proc = subprocess.Popen([sys.executable, str(APP), "--port", str(port)], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env=env, cwd=str(ROOT), start_new_session=True)
    app = RunningApp(f"http://127.0.0.1:{port}/", proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"The app exited with code {proc.returncode}:\n{app.log_text()[-3000:]}")
        try:
            if httpx.get(app.url, timeout=2).status_code == 200:
                return app
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    app.stop()
    raise RuntimeError(f"The app did not answer within {timeout:.0f} s:\n{app.log_text()[-3000:]}")


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[RunningApp]:
    """The app, launched once per test module."""
    running = launch_app(tmp_path_factory.mktemp("space_app"))
    yield running
    running.stop()


@pytest.fixture
def client(app):
    """A fresh `gradio_client.Client` (its own session, so its own loaded data)."""
    from gradio_client import Client

    return Client(app.url, verbose=False)


def judge_or_tags(body: dict) -> str | None:
    """Fake replies: a pairwise judgement for the TACOS judge, a concept list for TAGS, else tags (fault server)."""
    messages = body.get("messages") or [{"content": body.get("prompt", "")}]
    text = messages[-1]["content"]
    system = messages[0]["content"]
    if "[Sample 1]" in text:
        seed = sum(map(ord, text)) % 50
        return json.dumps({"analysis": "both answer; the first is clearer", "score_1": 40 + seed, "score_2": 60 - seed // 2})
    if "strict judge" in system:  # TaP judge: scores vary with the answer, so some margins reach 2
        base = 3 + sum(map(ord, text)) % 6
        return json.dumps({"overall": base, "helpfulness": base, "correctness": min(10, base + 1),
                           "instruction_following": base, "harmlessness": 9, "fluency": max(1, base - 1)})
    if "Count: " in text:  # TaP prompt writer: n distinct English prompts on the topic
        n = int(text.split("Count: ", 1)[1].split()[0])
        topic = text.split("\n", 1)[0].split(": ", 1)[-1]
        return json.dumps({"topic": topic, "prompts": [
            f"Question {i + 1} about {topic}: what is one practical thing a beginner should know, and why does it matter?"
            for i in range(n)]})
    if "helpful, honest and harmless" in system:  # TaP responses
        style = ("It depends on the details, but start simple." if (body.get("temperature") or 0) < 0.7
                 else "Honestly I would just search the web for it.")
        return f"Here is a short answer to your request. {text[:60]} {style}"
    if "knowledge concepts" in system or "knowledge-concept" in system:
        words = [w.strip(".,!?'\"():").lower() for w in text.split()]
        words = [w for w in words if len(w) > 3][:3] or ["misc"]
        return json.dumps([f"{w} basics" for w in words])
    return None


@pytest.fixture(scope="session")
def space_helpers():
    """Helpers for the tests (importlib mode gives test modules no import path to this file)."""

    class Helpers:
        shared_path = staticmethod(shared)
        write_jsonl = staticmethod(write_jsonl_sample)
        fake_replies = staticmethod(judge_or_tags)
        launch = staticmethod(launch_app)

    return Helpers
