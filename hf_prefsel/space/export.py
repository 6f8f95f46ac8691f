"""Downloads and Hub pushes of a run's result, with its dataset card; tokens are used, never shown or logged."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

from ..errors import ConfigError, HfPrefselError
from ..hub import push_dataset, save_dataset
from ..llm.redact import redact
from .runs import RunResult

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def write_downloads(result: RunResult, root: str | None = None, *, keep_seconds: float = 3600.0) -> list[str]:
    """Write the result as JSONL and Parquet (each with its `<name>.README.md` card) into a fresh folder under `root`.

    Folders under `root` older than `keep_seconds` are deleted first (Gradio has copied them to its own cache by then),
    so a long-running Space does not fill its disk. Returns the three paths: JSONL, Parquet, card.
    """
    if root is not None:
        cutoff = time.time() - keep_seconds
        for old in Path(root).glob("run_*"):
            try:
                if old.stat().st_mtime < cutoff:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
    folder = Path(tempfile.mkdtemp(prefix="run_" if root else "hf_prefsel_space_", dir=root))
    stem = f"{result.method.lower()}_result"
    jsonl = save_dataset(result.dataset, folder / f"{stem}.jsonl", result.provenance)
    parquet = save_dataset(result.dataset, folder / f"{stem}.parquet", result.provenance)
    card = folder / f"{stem}.README.md"
    return [str(jsonl), str(parquet), str(card)]


def check_repo_id(repo_id: str) -> str:
    repo_id = (repo_id or "").strip()
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise ConfigError(f"{repo_id!r} is not a dataset repo id; write it as 'your-name/dataset-name'.")
    return repo_id


def push_result(result: RunResult, repo_id: str, token: str | None, *, private: bool = True) -> str:
    """Push the result, its card and its artifacts to a Hub dataset repo; returns the commit URL.

    Raises `ConfigError` without a token or with a malformed repo id, and `HfPrefselError` with a message free of the
    token when the push fails.
    """
    repo_id = check_repo_id(repo_id)
    token = (token or "").strip() or None
    if token is None:
        raise ConfigError("Sign in with Hugging Face or paste a write token to push.")
    if result.provenance is None:
        raise ConfigError("This result has no provenance to put in a dataset card.")
    try:
        # local_copy=False: the result stays in the visitor's session; a public Space must not pile up copies on disk
        return push_dataset(result.dataset, repo_id, result.provenance, artifacts=result.artifacts, private=private,
                            token=token, local_copy=False)
    except HfPrefselError as exc:
        raise HfPrefselError(redact(exc, secrets=[token], limit=None)) from None
    except Exception as exc:  # HTTP errors from the Hub (401, 403, 404...), summarized without the request
        raise HfPrefselError(f"The push to {repo_id!r} failed: {type(exc).__name__}: {redact(exc, secrets=[token], limit=300)}") from None
