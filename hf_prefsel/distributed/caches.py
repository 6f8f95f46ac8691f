"""Moving paid replies between request-cache files: node caches into the driver's, and back out on resume.

Each cluster node keeps its workers' replies in a SQLite file on its own disk (WAL must not sit on a network
file system). These helpers read a file's replies and add them to another file without overwriting what the
destination already has, in one transaction (one commit per reply would cost a disk sync each).
"""

from __future__ import annotations

import glob
import os
import sqlite3
from typing import Iterable

from ..llm.cache import RequestCache
from ..llm.config import default_cache_path

# (key, text, prompt_tokens, completion_tokens, created): a row of RequestCache's `replies` table
ReplyRow = tuple[str, str, int, int, float]


def read_replies(path: str) -> list[ReplyRow]:
    """Every reply in the cache file at `path` (none if it does not exist)."""
    if not os.path.exists(path):
        return []
    conn = sqlite3.connect(path, timeout=60)
    try:
        return conn.execute("SELECT key, text, prompt_tokens, completion_tokens, created FROM replies").fetchall()
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):
            return []
        raise
    finally:
        conn.close()


def add_replies(path: str, rows: Iterable[ReplyRow]) -> int:
    """Add `rows` to the cache file at `path` (created if needed), keeping replies it already has; returns how many were new."""
    RequestCache(path).close()  # creates the file, WAL mode and table the way the client expects them
    conn = sqlite3.connect(path, timeout=60)
    try:
        with conn:
            before = conn.total_changes
            conn.executemany("INSERT OR IGNORE INTO replies VALUES (?, ?, ?, ?, ?)", list(rows))
            return conn.total_changes - before
    finally:
        conn.close()


def node_cache_root(root: str | None) -> str:
    """The folder of node caches on this machine: `root` (`~` expanded), or `ray_nodes/` next to its request cache."""
    return os.path.expanduser(root) if root else os.path.join(os.path.dirname(default_cache_path()), "ray_nodes")


def node_cache_files(root: str | None, run_id: str) -> list[str]:
    """The node cache files of one run on this machine."""
    return sorted(glob.glob(os.path.join(node_cache_root(root), run_id, "*.sqlite")))


def node_cache_path(root: str | None, run_id: str, node_id: str) -> str:
    """Where a node's workers keep their replies for one run."""
    return os.path.join(node_cache_root(root), run_id, f"{node_id}.sqlite")


def collect_run_replies(root: str | None, run_id: str) -> list[ReplyRow]:
    """All replies of one run kept on this machine."""
    rows: list[ReplyRow] = []
    for path in node_cache_files(root, run_id):
        rows.extend(read_replies(path))
    return rows


def drop_run_files(root: str | None, run_id: str) -> None:
    """Delete one run's node cache files (and their WAL side files) on this machine."""
    folder = os.path.join(node_cache_root(root), run_id)
    for path in glob.glob(os.path.join(folder, "*.sqlite*")):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(folder)
    except OSError:
        pass


__all__ = ["ReplyRow", "add_replies", "collect_run_replies", "drop_run_files", "node_cache_files", "node_cache_path",
           "node_cache_root", "read_replies"]
