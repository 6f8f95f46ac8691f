"""What prompt generation produced: per-unit counts, the drop reasons, and the realized vs specified composition."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .taxonomy import Taxonomy

DROP_REASONS: dict[str, str] = {
    "too_short": "shorter than min_chars",
    "too_long": "longer than max_chars",
    "language": "not in the target language (wrong script, or another language detected with confidence)",
    "copied_example": "a (near) copy of one of the few-shot examples in the generation prompt",
    "duplicate": "exactly the same text as a prompt already accepted",
    "near_duplicate": "too similar to a prompt already accepted (embedding or character n-gram cosine)",
    "over_quota": "valid, but its unit already had enough prompts",
}


@dataclass
class UnitReport:
    """What happened to one unit: quota, prompts kept, requests made (`calls`, repairs not counted), candidates
    dropped by reason."""

    key: str
    leaf_id: str
    axes: dict[str, str]
    quota: int
    accepted: int = 0
    calls: int = 0
    failed_calls: int = 0
    candidates: int = 0
    drops: Counter = field(default_factory=Counter)
    rounds: int = 0

    @property
    def missing(self) -> int:
        return max(0, self.quota - self.accepted)


@dataclass
class PromptGenerationReport:
    """Specified vs realized composition and the drop reasons of a prompt generation run.

    Args:
        language (`str`): the target language.
        units (`list[UnitReport]`): one per unit, in generation order.
        dedup (`str`): the near-duplicate method used.
        usage (`dict[str, int]`): LLM calls and tokens spent by this stage.
    """

    language: str
    units: list[UnitReport]
    dedup: str = "none"
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def quota(self) -> int:
        return sum(u.quota for u in self.units)

    @property
    def accepted(self) -> int:
        return sum(u.accepted for u in self.units)

    @property
    def drops(self) -> Counter:
        total: Counter = Counter()
        for u in self.units:
            total.update(u.drops)
        return total

    def by_leaf(self) -> dict[str, tuple[int, int]]:
        """leaf id → (quota, prompts kept)."""
        out: dict[str, list[int]] = {}
        for u in self.units:
            q = out.setdefault(u.leaf_id, [0, 0])
            q[0] += u.quota
            q[1] += u.accepted
        return {k: (v[0], v[1]) for k, v in out.items()}

    def by_axis(self) -> dict[str, dict[str, tuple[int, int]]]:
        """axis id → value id → (quota, prompts kept)."""
        out: dict[str, dict[str, list[int]]] = {}
        for u in self.units:
            for axis, value in u.axes.items():
                q = out.setdefault(axis, {}).setdefault(value, [0, 0])
                q[0] += u.quota
                q[1] += u.accepted
        return {a: {v: (q[0], q[1]) for v, q in vals.items()} for a, vals in out.items()}

    def by_top_level(self, taxonomy: Taxonomy) -> dict[str, tuple[int, int]]:
        """top-level node id → (quota, prompts kept)."""
        out: dict[str, list[int]] = {}
        for leaf, (q, a) in self.by_leaf().items():
            top = taxonomy.path(leaf)[0].id
            entry = out.setdefault(top, [0, 0])
            entry[0] += q
            entry[1] += a
        return {k: (v[0], v[1]) for k, v in out.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "dedup": self.dedup,
            "quota": self.quota,
            "accepted": self.accepted,
            "drops": dict(self.drops),
            "requests": sum(u.calls for u in self.units),
            "failed_calls": sum(u.failed_calls for u in self.units),
            "unfilled_units": sum(1 for u in self.units if u.missing),
            "by_leaf": {k: {"quota": q, "accepted": a} for k, (q, a) in self.by_leaf().items()},
            "by_axis": {ax: {v: {"quota": q, "accepted": a} for v, (q, a) in vals.items()} for ax, vals in self.by_axis().items()},
            "usage": dict(self.usage),
        }

    def format(self, taxonomy: Taxonomy | None = None) -> str:
        """A short text table: composition per leaf and axis value (kept/quota) and drop counts."""
        lines = [f"prompts kept {self.accepted}/{self.quota} ({self.language}, dedup: {self.dedup})"]
        for leaf, (q, a) in self.by_leaf().items():
            name = " > ".join(taxonomy.path_names(leaf, self.language)) if taxonomy is not None else leaf
            flag = "" if a >= q else "  (short)"
            lines.append(f"  {a:>3}/{q:<3} {name}{flag}")
        for axis, values in self.by_axis().items():
            lines.append(f"  {axis}: " + ", ".join(f"{v} {a}/{q}" for v, (q, a) in values.items()))
        drops = self.drops
        lines.append("  dropped: " + (", ".join(f"{k} {drops[k]}" for k in DROP_REASONS if drops.get(k)) or "none"))
        failed = sum(u.failed_calls for u in self.units)
        lines.append(f"  requests: {sum(u.calls for u in self.units)} ({failed} failed after repairs)")
        return "\n".join(lines)


__all__ = ["DROP_REASONS", "PromptGenerationReport", "UnitReport"]
