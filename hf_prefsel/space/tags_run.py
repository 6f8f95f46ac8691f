"""The TAGS tab: knowledge concepts → knowledge tree → grounding → greedy tree-information selection.

The same stages and defaults as `hf-prefsel tags` (global sampler, key-term parent names, grounding threshold 0.8),
on at most `SpaceLimits.max_llm_rows` rows.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np

from ..llm import LLMConfig
from ..options import build_config
from .data import LoadedData, instruction_rows
from .runs import Progress, RunResult, _no_progress, _paths, _table, _usage_line, watch_calls
from ..viz import TreeNode, bar_chart, coverage_chart, short_label, treemap_html

def tree_nodes(tree: Any, leaves_per_row: list[list[int]], chosen: set[int]) -> TreeNode:
    """The knowledge tree as `TreeNode`s sized by rows grounded under each node (and how many were selected)."""
    rows_at = np.zeros(tree.n_nodes, dtype=np.int64)
    sel_at = np.zeros(tree.n_nodes, dtype=np.int64)
    for i, leaves in enumerate(leaves_per_row):
        nodes = {n for leaf in leaves or [] for n in tree.path(leaf)}
        for n in nodes:
            rows_at[n] += 1
            sel_at[n] += i in chosen
    leaf_counts = tree.leaf_counts()

    def build(node: int) -> TreeNode:
        kids = [build(int(c)) for c in tree.children(node) if rows_at[int(c)] > 0]
        note = f"{int(leaf_counts[node])} concepts" if kids else "concept"
        return TreeNode(tree.names[node], size=float(rows_at[node]), selected=float(sel_at[node]), children=kids, note=note)

    return build(int(tree.root))


# Space option name -> TagsConfig field
TAGS_OPTIONS = {"budget": "budget", "check_rounds": "check_rounds", "tree_ratio": "tree.ratio",
                "ground_threshold": "grounding.threshold", "seed": "seed"}


def run_tags(
    data: LoadedData,
    columns: dict[str, str | None],
    llm: LLMConfig,
    *,
    rows: int = 50,
    table_rows: int = 200,
    progress: Progress = _no_progress,
    **options: Any,
) -> RunResult:
    """`TagsPipeline` on the first `rows` rows, then the views. `options` are `TAGS_OPTIONS` names."""
    import datasets

    from ..tags import canonicalize_concept
    from ..tags.pipeline import TagsConfig, TagsPipeline

    start = time.monotonic()
    config = build_config(TagsConfig, _paths(options, TAGS_OPTIONS))
    ds = datasets.Dataset.from_list(instruction_rows(data, columns, rows))
    n_calls = len(ds) * (1 + config.check_rounds)
    result = watch_calls(lambda: TagsPipeline(llm, config).run(ds, progress=False, source=data.source), llm, n_calls,
                         progress, "Tagging knowledge concepts, building the tree, selecting", 0.02, 0.95)
    usage_text, _ = _usage_line(llm)
    pool, tree, selection, counts = result.pool, result.tree, result.selection, result.report.counts
    picks = [int(i) for i in selection.indices]

    # --- views
    concept_counts = Counter(canonicalize_concept(c) for row in pool["concepts"] for c in set(row or []))
    root = tree_nodes(tree, pool["concept_leaves"], set(picks))
    branches = sorted(root.children, key=lambda n: -n.size)
    charts = [
        bar_chart("Top knowledge concepts", [(short_label(c, 26), n, "rows") for c, n in concept_counts.most_common(15)],
                  x_title="concept", y_title="rows",
                  caption=f"{len(concept_counts)} distinct concepts from {counts['rows_in'] - counts['concept_failures']} rows"),
        coverage_chart("Rows per top-level branch: selected vs pool",
                       [(short_label(b.name, 30), int(b.size), int(b.selected)) for b in branches],
                       x_title="branch of the knowledge tree",
                       caption=f"selected rows reach {sum(1 for b in branches if b.selected)} of {len(branches)} branches"),
        bar_chart("Tree information I(S) of the selection", [("TAGS selection", counts["information"], "I(S)"),
                                                             ("random pick, same size", counts["random_information"], "I(S)")],
                  x_title="", y_title="I(S)", caption="higher = the rows cover more of the tree, weighted by depth"),
    ]
    tree_html = treemap_html(root, title=f"Knowledge tree: {tree.n_leaves} concepts, {tree.n_nodes} nodes, depth {tree.depth} "
                                        "(box area = rows grounded under the node)", max_depth=3)
    gains = dict(zip(picks, (float(g) for g in selection.gains)))
    table_data = []
    for rank, i in enumerate(picks, 1):
        row = pool[i]
        table_data.append({"pick": rank, "gain": gains[i], "instruction": row["instruction"], "output": row["output"],
                           "concepts": row["concepts"], "tree path": " › ".join(reversed(tree.path_names(row["concept_leaves"][0])[:-1]))
                           if row["concept_leaves"] else "", "id": row["id"]})
    table = _table(table_data, ["pick", "gain", "instruction", "output", "concepts", "tree path", "id"], table_rows)
    seconds = time.monotonic() - start
    notes = "".join(f"\n- {n}" for n in result.report.notes)
    summary = (
        f"### TAGS: selected {len(picks)} of {counts['rows_in']} rows in {seconds:.1f} s\n"
        f"- concepts: {counts['rows_in'] - counts['concept_failures']}/{counts['rows_in']} rows tagged, {tree.n_leaves} distinct concepts\n"
        f"- knowledge tree: {tree.n_nodes} nodes, depth {tree.depth}, {len(branches)} top-level branches\n"
        f"- tree information I(S): {counts['information']:.2f} for the selection vs {counts['random_information']:.2f} "
        f"for a random pick of the same size\n"
        f"- model: {'; '.join(result.report.models.values())}; {usage_text}{notes}"
    )
    return RunResult("TAGS", result.dataset, table, summary, charts, tree_html, result.provenance(),
                     dict(result.artifacts), seconds)
