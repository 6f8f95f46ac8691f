"""Reaching a Ray cluster and finding where workers may run.

`ray.init(address=...)` at an address where no cluster listens did not return within 150 s (ray 2.60), so
the address is checked with a plain TCP connection first, and connecting is bounded by a timeout.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import ClusterUnavailableError, ConfigError, DependencyError


def import_ray() -> Any:
    """The `ray` module, or a `DependencyError` naming the extra."""
    try:
        import ray
    except ImportError as exc:
        raise DependencyError("ray[data]", "ray", "Running on a Ray cluster") from exc
    return ray


def parse_address(address: str) -> tuple[str, int]:
    """`(host, port)` of a cluster address: `host:port` (the head's GCS port) or `ray://host:port` (Ray Client)."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
        if not address:
            raise ConfigError("address='auto' needs RAY_ADDRESS set; pass the head node's address instead, e.g. '10.0.0.5:6379'.")
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ConfigError(f"Ray address {address!r} is not host:port; pass e.g. '10.0.0.5:6379' (the head's --port) or 'ray://10.0.0.5:10001'.")
    return parts.hostname, port


def check_address(address: str, timeout: float = 3.0) -> None:
    """Raise `ClusterUnavailableError` within `timeout` seconds if nothing listens at `address`."""
    host, port = parse_address(address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ClusterUnavailableError(
            f"No Ray cluster answers at {host}:{port} ({type(exc).__name__}: {exc}). Start one with "
            f"`ray start --head --port {port}` on the head node, or pass the address it printed."
        ) from exc


def connect(address: str, *, timeout: float = 60.0) -> bool:
    """Connect this process to the cluster at `address`; returns whether this call made the connection.

    An existing connection to the same cluster (`ray.init` called before) is kept and `False` returned.

    Raises:
        `ClusterUnavailableError`: nothing listens there, or Ray did not connect within `timeout` seconds.
    """
    ray = import_ray()
    check_address(address)
    if address == "auto":
        address = os.environ["RAY_ADDRESS"]
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if "://" not in address and parse_address(current)[1] != parse_address(address)[1]:
            raise ConfigError(f"This process is already connected to the Ray cluster at {current}, not {address}; "
                              "call `ray.shutdown()` first, or pass that address.")
        return False
    outcome: dict[str, BaseException | None] = {}

    def init() -> None:
        quiet = logging.getLogger("ray._private.worker")
        quiet.addFilter(_not_main_thread_note)
        try:
            ray.init(address=address, log_to_driver=False, logging_level="WARNING", configure_logging=True)
            outcome["error"] = None
        except BaseException as exc:  # reported to the caller below
            outcome["error"] = exc
        finally:
            quiet.removeFilter(_not_main_thread_note)

    thread = threading.Thread(target=init, name="hf_prefsel-ray-init", daemon=True)
    thread.start()
    thread.join(timeout)
    if "error" not in outcome:
        raise ClusterUnavailableError(
            f"Something listens at {address} but Ray did not connect within {timeout:.0f} s. Check that it is a Ray head "
            "node's GCS port (the `--port` of `ray start --head`, 6379 by default), that this machine runs the same "
            "Ray and Python versions, and that RAY_AUTH_MODE/RAY_AUTH_TOKEN match the cluster's."
        )
    if outcome["error"] is not None:
        raise ClusterUnavailableError(f"Could not connect to the Ray cluster at {address}: {outcome['error']}") from outcome["error"]
    return True


def _not_main_thread_note(record: logging.LogRecord) -> bool:
    """Drop Ray's warning that `ray.init` outside the main thread sets no SIGTERM handler: connecting runs in a
    thread only to bound its time, and a driver process keeps its own signal handling."""
    return "SIGTERM handler is not set" not in record.getMessage()


@dataclass(frozen=True)
class NodeSlots:
    """A node that may run workers, and how many."""

    node_id: str
    address: str
    slots: int


def worker_nodes(resource: str | None, workers_per_node: int | None) -> list[NodeSlots]:
    """Alive nodes that may host workers: those offering `resource` (one worker per unit) if any node does,
    else every alive node, `workers_per_node` each (default 1)."""
    ray = import_ray()
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if resource:
        offering = [n for n in alive if n.get("Resources", {}).get(resource, 0) >= 1]
        if offering:
            return [NodeSlots(n["NodeID"], n["NodeManagerAddress"],
                              workers_per_node or int(n["Resources"][resource])) for n in offering]
    return [NodeSlots(n["NodeID"], n["NodeManagerAddress"], workers_per_node or 1) for n in alive]


def uses_resource(resource: str | None) -> bool:
    """Whether some alive node offers `resource` (workers then reserve one unit each)."""
    ray = import_ray()
    return bool(resource) and any(n.get("Alive") and n.get("Resources", {}).get(resource, 0) >= 1 for n in ray.nodes())


__all__ = ["NodeSlots", "check_address", "connect", "import_ray", "parse_address", "uses_resource", "worker_nodes"]
