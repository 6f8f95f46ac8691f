"""What every method's pipeline returns, and the selection vocabulary they share.

A run-unit (`TacosPipeline`, `TagsPipeline`, `PDPipeline`, `TaPPipeline`) returns a `MethodResult`: the output
dataset, its artifacts, a `RunReport` (counts, timings, the LLM usage *of this run*), and `provenance()`,
`save()` and `push_to_hub()`. Front-ends (CLI, Space, Ray) only display or write it, so they cannot drift.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from .errors import ConfigError

_DATA_SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class Method:
    """A method's identity, declared once per package (as `huggingface_hub` declares library metadata once).

    Args:
        name (`str`): short name used in reports and cards (`"TACOS"`).
        title (`str`), arxiv (`str`): the paper to cite.
        tags (`tuple[str, ...]`): Hub tags for dataset cards (lowercase, `[a-z0-9-]`).
    """

    name: str
    title: str
    arxiv: str
    tags: tuple[str, ...] = ()

    @property
    def paper(self) -> dict[str, str]:
        return {"title": self.title, "arxiv": self.arxiv}


def rows_to_keep(n: int, *, budget: int | None = None, ratio: float | None = None) -> int:
    """How many of `n` rows a selection keeps: `budget` rows, or `round(ratio * n)` (Python's round, as PD's
    `round(λ·N)`; at least 1 of a non-empty pool), never more than `n`. `check_size` validates the two."""
    if budget is not None:
        return min(int(budget), n)
    if ratio is None:
        raise ConfigError("Give the selection size: budget (rows) or ratio (a share in (0, 1]).")
    return min(n, max(1 if n else 0, int(round(ratio * n))))


def check_size(budget: Any, ratio: Any, *, owner: str) -> None:
    """The one meaning of "how much to keep": `budget` an int >= 1 of rows, or `ratio` a float in (0, 1]; not both."""
    if budget is not None and ratio is not None:
        raise ConfigError(f"{owner}: give budget (rows) or ratio (a share), not both.")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1):
        raise ConfigError(f"{owner}: budget is a number of rows, an integer >= 1; got {budget!r}. "
                          "For a share of the rows give a ratio instead (e.g. 0.05).")
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float))
                              or not (0 < float(ratio) <= 1) or math.isnan(float(ratio))):
        raise ConfigError(f"{owner}: ratio is a share of the pool in (0, 1]; got {ratio!r}.")


def largest_remainder(weights: Sequence[float] | np.ndarray, total: int, *, even_when_zero: bool = False) -> np.ndarray:
    """Split the integer `total` over `weights` proportionally, rounding by largest remainder (ties: lower index).

    The parts are non-negative integers summing to `total`. A 1e-9 slack keeps an exact share such as 2.9999999999
    from losing its unit to float error. All-zero weights give zeros, or an even split with `even_when_zero`.
    Every quota in the library (TaP leaf quotas, TAGS aligned quotas, PD per-aspect budgets) comes from here.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or total <= 0:
        return np.zeros(w.size, dtype=np.int64)
    if w.sum() <= 0:
        if not even_when_zero:
            return np.zeros(w.size, dtype=np.int64)
        w = np.ones(w.size)
    exact = w * (total / w.sum())
    parts = np.floor(exact + 1e-9).astype(np.int64)
    short = int(total - parts.sum())
    if short > 0:
        order = np.argsort(-(exact - parts), kind="stable")
        parts[order[:short]] += 1
    return parts


@dataclass
class RunReport:
    """What a run did and cost.

    Args:
        counts (`dict[str, int | float]`): rows in/out, failures and the method's own figures.
        seconds (`dict[str, float]`): wall time per stage.
        usage (`dict[str, dict[str, int]]`): LLM calls, cache hits and tokens per stage and `"total"`, counted
            for this run only (a shared client's earlier calls are not included).
        models (`dict[str, str]`): which model did what (token-free, URL-free descriptions).
        notes (`list[str]`): things a person should know (e.g. rows that could not be scored).
    """

    counts: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_usage(self, stage: str, usage: Mapping[str, int]) -> None:
        """Record a stage's usage and keep `"total"` the sum of all stages."""
        from .llm.executor import add_usage

        self.usage[stage] = add_usage(self.usage.get(stage, {}), dict(usage))
        total: dict[str, int] = {}
        for name, u in self.usage.items():
            if name != "total":
                total = add_usage(total, u)
        self.usage["total"] = total

    @property
    def total_usage(self) -> dict[str, int]:
        return self.usage.get("total", {})

    def cost_counts(self) -> dict[str, int]:
        """The LLM cost figures every summary and card reports, with one naming everywhere (none for a run that
        called no model)."""
        if not self.usage:
            return {}
        u = self.total_usage
        return {"llm_calls": u.get("calls", 0), "cache_hits": u.get("cache_hits", 0),
                "prompt_tokens": u.get("prompt_tokens", 0), "completion_tokens": u.get("completion_tokens", 0),
                "llm_failures": u.get("failures", 0)}

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "seconds": self.seconds, "usage": self.usage, "models": self.models,
                "notes": self.notes}


@dataclass
class MethodResult:
    """Base of every pipeline result.

    Args:
        dataset (`datasets.Dataset`): the output rows (selected rows, kept pairs, generated pairs).
        report (`RunReport`).
        parameters (`dict`): the run's configuration, JSON-safe, for cards.
        source (`str`, *optional*): the input as the user named it (a Hub id or a file name).
        artifacts (`dict[str, Any]`): artifacts saved and pushed next to the data (vocabulary, tree, taxonomy).
        budget (`int | float`, *optional*): the selection size asked for (rows, or a share).
    """

    method: ClassVar[Method]

    dataset: Any
    report: RunReport
    parameters: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)
    budget: int | float | None = None

    def provenance(self) -> Any:
        """A `Provenance` for the dataset card: method, paper, parameters, models, counts and this run's cost."""
        from .hub import Provenance

        return Provenance(
            method=self.method.name, papers=[self.method.paper], parameters=self.parameters,
            model="; ".join(f"{k}: {v}" for k, v in self.report.models.items()) or None, source=self.source,
            counts={**{k: v for k, v in self.report.counts.items() if _is_number(v)}, **self.report.cost_counts()},
            selection_budget=self.budget,
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the result. A path ending in `.jsonl`/`.json`/`.parquet` gets the data (and its card next to it,
        as `save_dataset` does); any other path is a folder with the data (`data.jsonl` + `README.md`), each
        artifact in its own subfolder, and `report.json`."""
        from .hub import save_dataset

        out = Path(path)
        if out.suffix.lower() in _DATA_SUFFIXES:
            return save_dataset(self.dataset, out, self.provenance())
        out.mkdir(parents=True, exist_ok=True)
        save_dataset(self.dataset, out / "data.jsonl", self.provenance())
        for name, artifact in self.artifacts.items():
            artifact.save_pretrained(out / name)
        report = json.dumps(self.report.to_dict(), ensure_ascii=False, indent=2, default=str)
        tmp = out / ".report.json.tmp"
        tmp.write_text(report, encoding="utf-8")
        os.replace(tmp, out / "report.json")
        return out

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | None = None,
                    local_copy: Any = None) -> str:
        """Push the data, its card and the artifacts (under `artifacts/<name>/`) to a Hub dataset repo.

        Args:
            local_copy: where the data is kept if the push fails (`push_dataset`'s argument: by default a new
                folder in the current directory, named in the error; `False` keeps nothing).

        Returns:
            `str`: the URL of the last commit.
        """
        from .hub import push_dataset

        return push_dataset(self.dataset, repo_id, self.provenance(), artifacts=self.artifacts, private=private,
                            token=token, local_copy=local_copy)

    def summary_line(self) -> str:
        """`summary: key=value ...` of the counts and the cost (scripts and tests parse it)."""
        counts = {**self.report.counts, **self.report.cost_counts()}
        return "summary: " + "  ".join(f"{k}={v}" for k, v in counts.items() if not isinstance(v, (dict, list)))


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) and not (
        isinstance(value, float) and math.isnan(value))


__all__ = ["Method", "MethodResult", "RunReport", "check_size", "largest_remainder", "rows_to_keep"]
