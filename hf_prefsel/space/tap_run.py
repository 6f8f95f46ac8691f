"""The TaP tab: a taxonomy → prompts per leaf → several responses → per-aspect judging → preference pairs.

Runs `TaPPipeline` as `hf-prefsel tap` does, sized for a demo: one prompt for each of `prompts` leaves spread over
the taxonomy, no crossing with the taxonomy's axes, short responses, scores without rationales on the embedded
model. Only shipped taxonomies (by name) or one built from the loaded data's label column are used: never a path.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..llm import LLMConfig
from ..options import build_config
from .data import LoadedData
from .runs import Progress, RunResult, _no_progress, _table, _usage_line, watch_calls
from ..viz import TreeNode, bar_chart, coverage_chart, histogram_chart, short_label, treemap_html

LABEL_COLUMNS = ("category", "scenario", "label", "topic", "domain")


def data_label_column(data: LoadedData | None) -> str | None:
    """The first label-like column of the loaded rows (a taxonomy can be built from it), if any."""
    if data is None:
        return None
    return next((c for c in LABEL_COLUMNS if c in data.columns
                 and sum(bool(isinstance(r.get(c), str) and r.get(c)) for r in data.rows[:200]) >= 2), None)


def load_taxonomy(choice: str, data: LoadedData | None, from_data: str) -> Any:
    """A shipped taxonomy by name, or one built from the loaded data's label column; nothing else."""
    from ..tap import Taxonomy

    if choice in Taxonomy.available():
        return Taxonomy.load(choice)
    if choice == from_data:
        column = data_label_column(data)
        if column is None:
            raise ConfigError(f"The loaded data has no label column ({', '.join(LABEL_COLUMNS)}) to build a taxonomy from; "
                              "pick a shipped taxonomy or load labelled data (e.g. the Auto-J sample set).")
        return Taxonomy.from_dataset(data.rows, [column], name=f"from-{column}", min_count=1, weight_by="uniform")
    raise ConfigError(f"Unknown taxonomy {choice!r}; pick one from the list.")


def taxonomy_nodes(taxonomy: Any, by_leaf: dict[str, tuple[int, int]], pairs_by_leaf: Counter, language: str) -> TreeNode:
    """The taxonomy as `TreeNode`s: size = prompt quota, selected = prompts generated (only the leaves used)."""

    def build(node: Any) -> TreeNode | None:
        if node.is_leaf:
            quota, got = by_leaf.get(node.id, (0, 0))
            if quota == 0:
                return None
            return TreeNode(node.name(language, ["en"]), size=quota, selected=got, note=f"{pairs_by_leaf.get(node.id, 0)} pairs kept")
        kids = [k for k in (build(c) for c in node.children) if k is not None]
        if not kids:
            return None
        return TreeNode(node.name(language, ["en"]), size=sum(k.size for k in kids), selected=sum(k.selected for k in kids), children=kids)

    root = TreeNode(f"taxonomy {taxonomy.name}")
    root.children = [k for k in (build(n) for n in taxonomy.nodes) if k is not None]
    root.size = sum(k.size for k in root.children)
    root.selected = sum(k.selected for k in root.children)
    return root


# The demo's sizing on top of TaPConfig's defaults: one prompt per leaf, no crossing with the axes, two top-up
# rounds, short replies (the CLI gives the same run with --per-leaf 1 --axes none --max-rounds 2 --prompt-max-tokens 200
# --response-max-tokens 160 --judge-max-tokens 120).
SPACE_TAP_SIZING = {"per_leaf": 1, "prompts.max_rounds": 2, "prompts.axes": [], "prompts.max_tokens": 200,
                    "responses.max_tokens": 160, "judge.max_tokens": 120, "judge.rationale": False}


def space_tap_config(prompts: int, responses_per_prompt: int, language: str, *, margin: float | None = None,
                     seed: int | None = None) -> Any:
    """The `TaPConfig` of a Space run: `SPACE_TAP_SIZING` plus the tab's options (config defaults for the rest)."""
    from ..tap import TaPConfig

    values: dict[str, Any] = {**SPACE_TAP_SIZING, "language": language, "max_leaves": prompts,
                              "responses.n_responses": responses_per_prompt}
    if margin is not None:
        values["pairs.margin"] = margin
    if seed is not None:
        values["prompts.seed"] = seed
    return build_config(TaPConfig, values)


def run_tap(
    data: LoadedData | None,
    instruction_column: str | None,
    llm: LLMConfig,
    *,
    taxonomy: str,
    from_data_label: str,
    prompts: int = 8,
    responses_per_prompt: int = 2,
    language: str = "en",
    margin: float = 2.0,
    seed: int = 0,
    table_rows: int = 200,
    progress: Progress = _no_progress,
) -> RunResult:
    """Generate `prompts` prompts (one per leaf), answer, judge and pair them (TaP)."""
    from ..tap import TaPPipeline

    start = time.monotonic()
    if prompts < 1 or responses_per_prompt < 2:
        raise ConfigError("TaP needs at least 1 prompt and 2 responses per prompt.")
    tax = load_taxonomy(taxonomy, data, from_data_label)
    if language not in tax.languages and tax.languages:
        raise ConfigError(f"The taxonomy {tax.name!r} has names in {', '.join(tax.languages)}, not {language!r}.")
    config = space_tap_config(min(prompts, tax.n_leaves), responses_per_prompt, language, margin=margin, seed=seed)
    # Each TaP stage gets its own client (own max_tokens), each enforcing max_calls: split the run's budget over the
    # three stages so the whole run stays within it.
    budget = llm.max_calls
    if budget:
        llm = llm.replace(max_calls=max(1, budget // 3))
    pipeline = TaPPipeline(llm, config)
    n_prompts = len(pipeline.plan(tax)[2])
    planned = n_prompts * (1 + 2 * responses_per_prompt)
    progress(0.02, f"Generating {n_prompts} prompts, {responses_per_prompt} responses each, and judging them")
    result = watch_calls(lambda: pipeline.run(tax), llm, planned, progress, "TaP (prompts → responses → judging)", 0.02, 0.95)
    report = result.report
    if len(result.prompts) == 0:
        reasons = ", ".join(f"{k} {v}" for k, v in report.prompts.drops.items() if v) or "no usable reply"
        raise DataError(f"No prompt survived generation ({reasons}). Raise the call budget or try another model.")
    usage_text, usage = _usage_line(llm, budget)

    # --- views
    by_leaf = report.prompts.by_leaf()
    prefs = result.preferences.to_list() if len(result.preferences) else []
    pairs_by_leaf = Counter(r.get("leaf_id") for r in prefs)
    leaf_names = {leaf.id: leaf.name(language, ["en"]) for leaf in result.taxonomy.leaves()}
    kept_prompts = {r.get("prompt_id") for r in prefs}
    margins, kept = [], []
    for row in result.ratings.to_list():
        overall = [resp["ratings"].get("overall") for resp in row["responses"] if resp.get("ratings")]
        overall = [o for o in overall if isinstance(o, (int, float))]
        if len(overall) >= 2:
            margins.append(max(overall) - min(overall))
            kept.append(row["id"] in kept_prompts)
    drop_reasons = Counter({k: v for k, v in (report.pairs.get("drops") or {}).items() if v})
    charts = [
        coverage_chart("Prompts per taxonomy leaf: generated vs quota",
                       [(short_label(leaf_names.get(k, k), 26), q, a) for k, (q, a) in by_leaf.items()],
                       x_title="taxonomy leaf", y_title="prompts", names=("generated", "missing"),
                       caption=f"{len(result.prompts)} of {sum(q for q, _ in by_leaf.values())} prompts kept after the language and duplicate filters"),
        histogram_chart(f"Best − worst overall score per prompt; pairs need a margin ≥ {margin:g}",
                        np.asarray(margins, dtype=float), np.asarray(kept, dtype=bool), bins=10,
                        x_title="score margin (bin centre)", y_title="prompts", names=("pair kept", "no pair")),
    ]
    if drop_reasons:
        charts.append(bar_chart("Why prompts gave no pair", [(r.replace("_", " "), n, "prompts") for r, n in drop_reasons.most_common()],
                                x_title="reason", y_title="prompts"))
    root = taxonomy_nodes(result.taxonomy, by_leaf, pairs_by_leaf, language)
    tree_html = treemap_html(root, title=f"Taxonomy {result.taxonomy.name}: the {len(by_leaf)} leaves used (box area = prompt quota)",
                             max_depth=3, unit="prompts", selected_word="generated")
    table_data = [{"margin": r.get("margin"), "leaf": leaf_names.get(r.get("leaf_id"), r.get("leaf_id")), "prompt": r.get("prompt"),
                   "chosen": r.get("chosen"), "rejected": r.get("rejected"), "chosen_score": r.get("chosen_score"),
                   "rejected_score": r.get("rejected_score")} for r in sorted(prefs, key=lambda r: -(r.get("margin") or 0))]
    table = _table(table_data, ["margin", "leaf", "prompt", "chosen", "rejected", "chosen_score", "rejected_score"], table_rows)
    seconds = time.monotonic() - start
    provenance = result.provenance()
    provenance.source = f"{provenance.source} ({'shipped' if taxonomy != from_data_label else data.source if data else ''})"
    responses = report.responses
    summary = (
        f"### TaP: {len(result.preferences)} preference pairs from {len(result.prompts)} prompts in {seconds:.1f} s\n"
        f"- taxonomy *{result.taxonomy.name}*: {report.leaves_used} of {report.leaves_total} leaves, language {language}\n"
        f"- prompts: {len(result.prompts)} kept of {sum(q for q, _ in by_leaf.values())} asked for; responses: "
        + ", ".join(f"{k} {v}" for k, v in responses.items() if isinstance(v, (int, float)))
        + f"\n- pairs: {len(result.preferences)} with overall margin ≥ {margin:g}; SFT rows: {len(result.sft)}\n"
        f"- model: {'; '.join(report.models.values())}; {usage_text}"
    )
    return RunResult("TaP", result.preferences, table, summary, charts, tree_html, provenance,
                     {"taxonomy": result.taxonomy}, seconds)
