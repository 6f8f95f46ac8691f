"""The model a Space run talks to: the embedded Gemma 3 270M (started once per app process) or an endpoint URL."""

from __future__ import annotations

import atexit
import ipaddress
import os
import socket
import threading
from typing import Callable
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..llm import LLMConfig, LocalServers, serve_local, shared_clients

EMBEDDED = "Embedded Gemma 3 270M (CPU, in this Space)"
ENDPOINT = "My endpoint (TGI / vLLM / llama.cpp / OpenAI-compatible URL)"
MODEL_CHOICES = (EMBEDDED, ENDPOINT)


def reset_usage() -> None:
    """Zero the counters of every client, so the next run's `max_calls` budget and its report start from zero.

    Safe because the app runs LLM methods one at a time (one queue slot shared by the LLM tabs).
    """
    for client in shared_clients():
        client.usage.reset()


def total_usage() -> dict[str, int]:
    """Calls, cache hits, tokens and failures summed over every client since the last `reset_usage`."""
    total: dict[str, int] = {}
    for client in shared_clients():
        for key, value in client.usage.as_dict().items():
            total[key] = total.get(key, 0) + value
    return total


def budget_spent() -> bool:
    """Whether some client reached its `max_calls` since the last `reset_usage` (later calls were refused)."""
    return any(c.budget.max_calls is not None and c.usage.calls >= c.budget.max_calls for c in shared_clients())


def check_endpoint_url(url: str) -> str:
    """An http(s) base URL without credentials in it (they would end up in messages and dataset cards)."""
    url = (url or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{url!r} is not an http(s) URL; give the server's base URL, e.g. 'https://my-endpoint.example/v1'.")
    if parts.username or parts.password:
        raise ConfigError("Do not put credentials in the endpoint URL.")
    if os.environ.get("SPACE_ID") and not _public_host(parts.hostname):
        raise ConfigError(
            f"{parts.hostname!r} is not a public internet address: this Space, hosted on Hugging Face, only calls "
            "public endpoints (so visitors cannot reach its own network). Run the app locally to use a private one."
        )
    if parts.path.endswith("/v1"):
        url = url[: -len("/v1")]
    return url


def _public_host(host: str) -> bool:
    """Whether every address `host` resolves to is globally routable (not loopback, private, link-local, ...).

    Hugging Face sets `SPACE_ID` in a hosted Space, whose visitors type the URL: without this check they
    could make the Space call its own localhost servers or the cloud's metadata address. A name that
    resolves differently at request time is not covered (DNS rebinding); the check is a first line, not a sandbox.
    """
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_global for a in addresses)


class ModelProvider:
    """Hands out an `LLMConfig` per run; the embedded model's llama.cpp servers start on first use and are shared.

    Starting the servers takes a few seconds, so it happens once per app process (under a lock, so two first
    requests do not start two sets) and the servers stop when the process exits.

    Args:
        replicas (`int`, defaults to `$HF_PREFSEL_SPACE_LOCAL_REPLICAS` or 2): one-thread server replicas.
        cache_path (`str`, *optional*): request cache file; by default the library's cache.
    """

    def __init__(self, replicas: int | None = None, cache_path: str | None = None):
        self.replicas = replicas or int(os.environ.get("HF_PREFSEL_SPACE_LOCAL_REPLICAS", "2"))
        self.cache_path = cache_path
        self._servers: LocalServers | None = None
        self._lock = threading.Lock()
        self._atexit = False

    @property
    def local_running(self) -> bool:
        return self._servers is not None

    def local_servers(self, notify: Callable[[str], None] | None = None) -> LocalServers:
        """The running embedded-model servers, started now if needed."""
        with self._lock:
            if self._servers is None:
                if notify:
                    notify("Starting the embedded Gemma 3 270M (first run only, a few seconds)...")
                self._servers = serve_local(self.replicas, n_threads=1)
                if not self._atexit:
                    atexit.register(self.close)
                    self._atexit = True
        return self._servers

    def config(
        self,
        choice: str,
        *,
        endpoint: str | None = None,
        model: str | None = None,
        max_calls: int | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> LLMConfig:
        """The `LLMConfig` for one run, with every client's counters zeroed (so `max_calls` bounds this run only).

        Runs that share a config share the process's client (`get_client`), hence its usage counters; the app runs
        LLM methods one at a time, and each run starts from zero.
        """
        common = {"max_calls": max_calls, "cache": True, "cache_path": self.cache_path}
        if choice == ENDPOINT:
            url = check_endpoint_url(endpoint or "")
            # token=False: a visitor's URL (even a Hugging Face one they own) must never receive the Space's token
            config = LLMConfig(endpoints=[url], model=(model or "").strip() or None, token=False, max_concurrency=4,
                               timeout=60.0, **common)
        elif choice == EMBEDDED:
            config = self.local_servers(notify).config(**common)
        else:
            raise ConfigError(f"Unknown model choice {choice!r}.")
        reset_usage()
        return config

    def close(self) -> None:
        """Stop the embedded-model servers (also registered to run at exit)."""
        with self._lock:
            if self._servers is not None:
                self._servers.close()
                self._servers = None
