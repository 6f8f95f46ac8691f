"""Taxonomy trees from other sources: a TAGS knowledge tree, or label columns of a tagged dataset.

Each function returns the top-level `TaxonomyNode`s; `Taxonomy.from_knowledge_tree` and `Taxonomy.from_dataset`
wrap them into a validated `Taxonomy` (their docstrings give the options).
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections import Counter
from typing import Any, Sequence

from ..errors import ConfigError, DataError, MissingColumnError
from .taxonomy_nodes import TaxonomyNode


def slug(text: str) -> str:
    """An id-safe slug; non-ASCII names (e.g. Chinese) keep a short hash so ids stay unique and stable."""
    ascii_part = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40]
    if ascii_part and ascii_part.replace("_", "").isascii() and len(ascii_part) >= max(1, len(text) // 3):
        return ascii_part
    return (ascii_part[:20] + "_" if ascii_part else "n") + hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def knowledge_tree_nodes(tree: Any, *, language: str, max_depth: int | None, weight_by: str) -> list[TaxonomyNode]:
    """Top-level nodes from a `KnowledgeTree` or its `to_dict()`, cut at `max_depth` below the root."""
    data = tree.to_dict() if hasattr(tree, "to_dict") else tree
    try:
        names = [str(n) for n in data["names"]]
        parents = [int(p) for p in data["parents"]]
    except (KeyError, TypeError) as exc:
        raise DataError("from_knowledge_tree needs a KnowledgeTree or a dict with 'names' and 'parents'.") from exc
    if weight_by not in ("concepts", "uniform"):
        raise ConfigError(f"weight_by must be 'concepts' or 'uniform', got {weight_by!r}.")
    if max_depth is not None and max_depth < 1:
        raise ConfigError(f"max_depth must be >= 1 (1 = the root's children are the leaves), got {max_depth}.")
    roots = [i for i, p in enumerate(parents) if p < 0]
    if len(roots) != 1:
        raise DataError(f"A knowledge tree has exactly one root; found {len(roots)}.")
    children: dict[int, list[int]] = {}
    for i, p in enumerate(parents):
        if p >= 0:
            children.setdefault(p, []).append(i)
    concepts = [0] * len(names)

    def count(i: int) -> int:
        kids = children.get(i, [])
        concepts[i] = 1 if not kids else sum(count(c) for c in kids)
        return concepts[i]

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(names) + 100))
    count(roots[0])

    def build(i: int, depth: int) -> TaxonomyNode:
        kids = children.get(i, [])
        deeper = [] if (max_depth is not None and depth >= max_depth) else kids
        return TaxonomyNode(
            id=f"{slug(names[i])}-{i}",
            names={language: names[i]},
            weight=float(concepts[i]) if weight_by == "concepts" else 1.0,
            children=[build(c, depth + 1) for c in sorted(deeper, key=lambda c: -concepts[c])],
        )

    top = [build(c, 1) for c in sorted(children.get(roots[0], []), key=lambda c: -concepts[c])]
    return top or [build(roots[0], 1)]


def dataset_nodes(
    data: Any,
    columns: Sequence[str],
    *,
    language: str,
    min_count: int,
    max_leaves: int | None,
    weight_by: str,
) -> list[TaxonomyNode]:
    """Top-level nodes from label columns of tagged rows (coarse column first; one list column = flat tags)."""
    if not columns:
        raise ConfigError("from_dataset needs at least one label column.")
    if weight_by not in ("count", "uniform"):
        raise ConfigError(f"weight_by must be 'count' or 'uniform', got {weight_by!r}.")
    rows = data
    if hasattr(data, "column_names"):  # a `datasets.Dataset`: check, then read only the label columns
        for col in columns:
            if col not in data.column_names:
                raise MissingColumnError(col, data.column_names, option="columns")
        rows = data.select_columns(list(columns))
    counts: Counter = Counter()
    for row in rows:
        values = [row.get(c) for c in columns]
        if len(columns) == 1 and isinstance(values[0], list):
            for tag in values[0]:
                if isinstance(tag, str) and tag.strip():
                    counts[(" ".join(tag.split()),)] += 1
            continue
        path: list[str] = []
        for v in values:
            if not isinstance(v, str) or not v.strip():
                break
            path.append(" ".join(v.split()))
        if path:
            counts[tuple(path)] += 1
    counts = Counter({p: c for p, c in counts.items() if c >= min_count})
    if max_leaves is not None:
        counts = Counter(dict(counts.most_common(max_leaves)))
    if not counts:
        raise DataError(f"No labels found in columns {list(columns)} (with min_count={min_count}).")

    tree: dict = {}
    for path, c in counts.items():
        level = tree
        for part in path:
            entry = level.setdefault(part, {"count": 0, "children": {}})
            entry["count"] += c
            level = entry["children"]
    used: Counter = Counter()

    def build(label: str, entry: dict, prefix: str) -> TaxonomyNode:
        base = f"{prefix}{slug(label)}"
        used[base] += 1
        node_id = base if used[base] == 1 else f"{base}-{used[base]}"
        kids = sorted(entry["children"].items(), key=lambda kv: -kv[1]["count"])
        return TaxonomyNode(
            id=node_id,
            names={language: label},
            weight=float(entry["count"]) if weight_by == "count" else 1.0,
            children=[build(k, v, f"{node_id}.") for k, v in kids],
        )

    return [build(k, v, "") for k, v in sorted(tree.items(), key=lambda kv: -kv[1]["count"])]


__all__ = ["dataset_nodes", "knowledge_tree_nodes", "slug"]
