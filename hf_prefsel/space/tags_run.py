"""The TAGS tab: knowledge concepts → knowledge tree → grounding → greedy tree-information selection.

The same stages and defaults as `hf-prefsel tags` (global sampler, key-term parent names, grounding threshold 0.8),
on at most `SpaceLimits.max_llm_rows` rows.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..hub import Provenance
from ..llm import LLMConfig
from .data import LoadedData, instruction_rows
from .runs import Progress, RunResult, _no_progress, _table, _usage_line, watch_calls
from .views import TreeNode, bar_chart, coverage_chart, short_label, treemap_html

TAGS_PAPER = {"title": "From Tags to Trees: Structuring Fine-Grained Knowledge for Controllable Data Selection in LLM "
                       "Instruction Tuning", "arxiv": "2601.13995"}


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


def run_tags(
    data: LoadedData,
    columns: dict[str, str | None],
    llm: LLMConfig,
    *,
    rows: int = 50,
    budget: int = 10,
    check_rounds: int = 0,
    tree_ratio: float = 0.1,
    ground_threshold: float = 0.8,
    seed: int = 0,
    model_description: str = "",
    table_rows: int = 200,
    progress: Progress = _no_progress,
) -> RunResult:
    """Concept tagging, knowledge tree, grounding, then the rows adding the most tree information (TAGS)."""
    import datasets

    from ..tags import (ConceptTagger, GlobalSamplerConfig, GroundingConfig, KnowledgeTree, KnowledgeTreeConfig,
                        canonicalize_concept, ground_dataset, select_from_dataset, tree_information)

    start = time.monotonic()
    if budget < 1:
        raise ConfigError("The selection budget must be at least 1 row.")
    ds = datasets.Dataset.from_list(instruction_rows(data, columns, rows))
    tagger = ConceptTagger(llm, check_rounds=check_rounds, on_bad_row="record")
    n_calls = len(ds) * (1 + check_rounds)
    ds = watch_calls(lambda: ds.map(tagger, batched=True, batch_size=8, desc="Concept tagging"),
                     llm, n_calls, progress, "Tagging knowledge concepts", 0.02, 0.8)
    failures = sum(bool(e) for e in ds["concepts_error"])  # "" (not None) marks success
    concepts = [c for row in ds["concepts"] for c in row or []]
    if not concepts:
        reasons = Counter(str(e)[:120] for e in ds["concepts_error"] if e).most_common(2)
        raise DataError(f"No row got a concept ({'; '.join(r for r, _ in reasons)}). Check the model or raise the call budget.")
    progress(0.82, "Building the knowledge tree")
    tree = KnowledgeTree.build(concepts, KnowledgeTreeConfig(ratio=tree_ratio, seed=seed))
    progress(0.9, "Grounding and selecting")
    ds, report = ground_dataset(ds, tree, GroundingConfig(threshold=ground_threshold))
    selected, result = select_from_dataset(ds, tree, GlobalSamplerConfig(budget=min(budget, len(ds))))
    picks = [int(i) for i in result.indices]
    rng = np.random.default_rng(seed)
    random_pick = rng.choice(len(ds), size=len(picks), replace=False) if picks else np.array([], dtype=int)
    random_info = float(tree_information(tree, ds["concept_leaves"], subset=random_pick)) if picks else 0.0
    usage_text, usage = _usage_line(llm)

    # --- views
    concept_counts = Counter(canonicalize_concept(c) for row in ds["concepts"] for c in set(row or []))
    chosen = set(picks)
    root = tree_nodes(tree, ds["concept_leaves"], chosen)
    branches = sorted(root.children, key=lambda n: -n.size)
    charts = [
        bar_chart("Top knowledge concepts", [(short_label(c, 26), n, "rows") for c, n in concept_counts.most_common(15)],
                  x_title="concept", y_title="rows", caption=f"{len(concept_counts)} distinct concepts from {len(ds) - failures} rows"),
        coverage_chart("Rows per top-level branch: selected vs pool",
                       [(short_label(b.name, 30), int(b.size), int(b.selected)) for b in branches],
                       x_title="branch of the knowledge tree",
                       caption=f"selected rows reach {sum(1 for b in branches if b.selected)} of {len(branches)} branches"),
        bar_chart("Tree information I(S) of the selection", [("TAGS selection", result.information, "I(S)"),
                                                             ("random pick, same size", random_info, "I(S)")],
                  x_title="", y_title="I(S)", caption="higher = the rows cover more of the tree, weighted by depth"),
    ]
    tree_html = treemap_html(root, title=f"Knowledge tree: {tree.n_leaves} concepts, {tree.n_nodes} nodes, depth {tree.depth} "
                                        "(box area = rows grounded under the node)", max_depth=3)
    gains = dict(zip(picks, (float(g) for g in result.gains)))
    table_data = []
    for rank, i in enumerate(picks, 1):
        row = ds[i]
        table_data.append({"pick": rank, "gain": gains[i], "instruction": row["instruction"], "output": row["output"],
                           "concepts": row["concepts"], "tree path": " › ".join(reversed(tree.path_names(row["concept_leaves"][0])[:-1]))
                           if row["concept_leaves"] else "", "id": row["id"]})
    table = _table(table_data, ["pick", "gain", "instruction", "output", "concepts", "tree path", "id"], table_rows)
    seconds = time.monotonic() - start
    counts = {"rows_in": len(ds), "concept_failures": failures, "unique_concepts": tree.n_leaves, "tree_nodes": tree.n_nodes,
              "tree_depth": tree.depth, "grounded_fraction": round(report.grounded_fraction, 4), "rows_out": len(picks),
              "information": round(result.information, 3), "random_information": round(random_info, 3),
              "llm_calls": usage["calls"], "cache_hits": usage["cache_hits"], "prompt_tokens": usage["prompt_tokens"],
              "completion_tokens": usage["completion_tokens"]}
    provenance = Provenance(method="TAGS", papers=[TAGS_PAPER], model=model_description or None, source=data.source,
                            selection_budget=budget, counts=counts,
                            parameters={"rows": len(ds), "check_rounds": check_rounds, "tree_ratio": tree_ratio,
                                        "ground_threshold": ground_threshold, "seed": seed})
    stopped = " (stopped early: no remaining row adds information)" if result.stopped_early else ""
    summary = (
        f"### TAGS: selected {len(picks)} of {len(ds)} rows in {seconds:.1f} s{stopped}\n"
        f"- concepts: {len(ds) - failures}/{len(ds)} rows tagged, {tree.n_leaves} distinct concepts\n"
        f"- knowledge tree: {tree.n_nodes} nodes, depth {tree.depth}, {len(branches)} top-level branches; grounding: {report}\n"
        f"- tree information I(S): {result.information:.2f} for the selection vs {random_info:.2f} for a random pick of the same size\n"
        f"- model: {model_description or 'n/a'}; {usage_text}"
    )
    return RunResult("TAGS", selected.add_column("pick", list(range(1, len(picks) + 1))), table, summary, charts,
                     tree_html, provenance, {"knowledge_tree": tree}, seconds)
