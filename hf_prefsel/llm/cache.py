"""A persistent request cache: a rerun or a resumed run never pays twice for the same call.

SQLite in WAL mode: each reply is committed as soon as it arrives, so a process killed
mid-run loses only the requests in flight, and several processes (`num_proc > 1`) can
share one file. The file holds every prompt and reply, so it is private: created 0600 in a 0700 folder.

The cache is the source of truth for results: it also records that requests failed (`note_failures`), and
`identity` changes then, so a `datasets` map result that holds failed rows is never reused (see `LLMMapper`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CachedReply:
    text: str
    prompt_tokens: int
    completion_tokens: int


def request_key(payload: dict[str, Any]) -> str:
    """A stable hash of everything that determines a reply (model, prompt, params, schema)."""
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class RequestCache:
    """Key → reply store in one SQLite file, safe across threads, processes and kills."""

    def __init__(self, path: str):
        self.path = path
        _make_private(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
        self._set_up()

    def _set_up(self, attempts: int = 50) -> None:
        # Switching a new file to WAL takes an exclusive lock that SQLite does not wait for (the busy
        # timeout does not cover it), so `num_proc` workers opening the same new file race: retry briefly.
        for attempt in range(attempts):
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
                    "prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, created REAL NOT NULL)"
                )
                self._conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
                # a new file gets a new id, so results fingerprinted against a deleted cache are not taken for its own
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('instance', ?)", (uuid.uuid4().hex,))
                self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('failures', '0')")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def get(self, key: str) -> CachedReply | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT text, prompt_tokens, completion_tokens FROM replies WHERE key = ?", (key,)
            ).fetchone()
        return CachedReply(*row) if row else None

    def put(self, key: str, reply: CachedReply) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?)",
                (key, reply.text, reply.prompt_tokens, reply.completion_tokens, time.time()),
            )

    def identity(self) -> str:
        """This file's id and its count of recorded failures: it changes whenever a request failed."""
        with self._lock:
            rows = dict(self._conn.execute("SELECT name, value FROM meta").fetchall())
        return f"{rows.get('instance', '')}:{rows.get('failures', '0')}"

    def note_failures(self, count: int = 1) -> None:
        """Record that `count` requests failed (endpoint errors, a spent budget), so results holding them are
        not reused: a rerun asks for those rows again and gets the rest from this cache."""
        with self._lock:
            self._conn.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE name = 'failures'", (int(count),)
            )

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _make_private(path: str) -> None:
    """Create `path`'s folder 0700 (when we create it) and the file 0600; tighten an existing group- or
    world-readable cache file of ours (older versions created them 0644), with its WAL and shared-memory files."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, path + "-wal", path + "-shm"):
        try:
            info = os.stat(name)
        except FileNotFoundError:
            continue
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(name, stat.S_IMODE(info.st_mode) & 0o700)
