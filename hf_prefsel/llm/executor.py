"""Where a pipeline's per-row model stages run: in this process, or on a cluster.

A pipeline hands each per-row stage (a tagger, a judge's pair mapper, a generator) to an executor as a
`datasets` batched callable and gets back the dataset with the new columns, in input order, and what that
stage cost. Global stages (normalization, clustering, trees, samplers) always run in the driver process.
`LocalExecutor` is `Dataset.map`; `hf_prefsel.distributed.RayExecutor` runs the same callables on Ray actors across a cluster.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable, Protocol, runtime_checkable

from .client import get_client
from .usage import Usage

USAGE_KEYS = tuple(f.name for f in fields(Usage) if not f.name.startswith("_"))


@runtime_checkable
class Executor(Protocol):
    """Runs a batched row callable over a dataset."""

    def map(self, dataset: Any, fn: Callable[..., dict[str, list[Any]]], *, batch_size: int, desc: str) -> tuple[Any, dict[str, int]]:
        """The dataset with `fn`'s columns added (input order kept) and the LLM usage of this call."""
        ...


def usage_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """What was spent between two `Usage.as_dict()` snapshots, with `total_tokens`."""
    out = {k: after.get(k, 0) - before.get(k, 0) for k in USAGE_KEYS}
    out["total_tokens"] = out["prompt_tokens"] + out["completion_tokens"]
    return out


def add_usage(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Two usage dicts added key by key (missing keys count 0)."""
    keys = dict.fromkeys([*a, *b])
    return {k: a.get(k, 0) + b.get(k, 0) for k in keys}


def _usage_of(fn: Any) -> Usage | None:
    llm = getattr(fn, "llm", None)
    return get_client(llm).usage if llm is not None else None


class LocalExecutor:
    """`Dataset.map(batched=True)` in this process (the default).

    Args:
        num_proc (`int`, *optional*): worker processes for `Dataset.map`; usage is then counted from the
            request cache's point of view only in this process, so reports undercount calls made by workers.
    """

    def __init__(self, num_proc: int | None = None):
        self.num_proc = num_proc

    def map(self, dataset: Any, fn: Callable[..., dict[str, list[Any]]], *, batch_size: int, desc: str) -> tuple[Any, dict[str, int]]:
        usage = _usage_of(fn)
        before = usage.as_dict() if usage is not None else {}
        out = dataset.map(fn, batched=True, batch_size=batch_size, with_indices=True, desc=desc, num_proc=self.num_proc)
        after = usage.as_dict() if usage is not None else {}
        return out, usage_delta(before, after)

    def __repr__(self) -> str:
        return f"LocalExecutor(num_proc={self.num_proc})"


__all__ = ["Executor", "LocalExecutor", "USAGE_KEYS", "add_usage", "usage_delta"]
