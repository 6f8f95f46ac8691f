"""The four method runs behind the Space's tabs, each bounded and reporting progress, each returning a `RunResult`.

A run calls the library exactly as the command line does (same classes, same defaults), on at most
`SpaceLimits.max_llm_rows` rows and `max_calls` LLM calls, and turns the outcome into what a person looks at:
a summary, a few charts, a tree, and a table of the selected rows with their scores.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import numpy as np

from ..errors import ConfigError, DataError
from ..hub import Provenance
from ..llm import LLMConfig
from ..options import build_config
from .data import LoadedData, instruction_rows, short
from ..viz import Chart, TreeNode, coverage_chart, bar_chart, histogram_chart, short_label, treemap_html

Progress = Callable[[float, str], None]
T = TypeVar("T")

def _no_progress(fraction: float, message: str) -> None:
    return None


@dataclass
class RunResult:
    """What one run produced, ready to show, download and push.

    Attributes:
        method (`str`): TACOS, TAGS, PD or TaP.
        dataset (`datasets.Dataset`): the output rows (selected rows, kept pairs, or generated pairs).
        table (`pandas.DataFrame`): the output rows as shown (short texts, scores first).
        summary (`str`): markdown.
        charts (`list[Chart]`): up to three charts.
        tree_html (`str`): the tree/taxonomy/cluster view.
        provenance (`Provenance`): what goes into the dataset card.
        artifacts (`dict`): artifacts pushed next to the data (tag vocabulary, knowledge tree, taxonomy).
        seconds (`float`): wall time of the run.
    """

    method: str
    dataset: Any
    table: Any
    summary: str
    charts: list[Chart] = field(default_factory=list)
    tree_html: str = ""
    provenance: Provenance | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def watch_calls(fn: Callable[[], T], llm: LLMConfig, total: int, progress: Progress, desc: str, lo: float, hi: float) -> T:
    """Run `fn` in a worker thread and report `lo..hi` progress from the client's call counters every 0.4 s.

    The library's LLM stages run whole batches at once; the counters are the only live signal of how far they are.
    """
    from .models import total_usage

    def done_calls() -> int:
        usage = total_usage()
        return usage.get("calls", 0) + usage.get("cache_hits", 0)

    base = done_calls()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"hf_prefsel-space-{desc}", daemon=True)
    worker.start()
    progress(lo, f"{desc}: 0/{total}")
    while worker.is_alive():
        worker.join(0.4)
        done = min(total, done_calls() - base)
        progress(lo + (hi - lo) * done / max(total, 1), f"{desc}: {done}/{total} model calls")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _usage_line(llm: LLMConfig, budget_calls: int | None = None) -> tuple[str, dict[str, int]]:
    from .models import budget_spent, total_usage

    usage = {"calls": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "failures": 0, **total_usage()}
    budget_calls = budget_calls or llm.max_calls
    budget = f" of {budget_calls}" if budget_calls else ""
    text = (f"{usage['calls']}{budget} LLM calls ({usage['cache_hits']} answered from the cache), "
            f"{usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} completion tokens, {usage['failures']} failed")
    if budget_spent():
        text += " — **the call budget was spent**; raise it and run again (paid replies are cached)"
    return text, usage


def _cell(value: Any) -> Any:
    """Numbers stay numbers (rounded), everything else becomes a short one-line string."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, int):
        return value
    return short(value, 200)


def _table(rows: list[dict[str, Any]], columns: list[str], limit: int):
    """The first `limit` rows as a DataFrame of display cells (downloads keep the full values)."""
    import pandas as pd

    return pd.DataFrame([{c: _cell(row.get(c)) for c in columns} for row in rows[:limit]], columns=columns)


# ---------------------------------------------------------------------------------------------------- TACOS


# Space option name -> TacosConfig field (the same fields the CLI exposes; defaults and meaning from the config)
TACOS_OPTIONS = {"budget": "budget", "clusters": "cluster.n_clusters", "strategy": "strategy", "passes": "judge.passes",
                 "swap": "judge.swap", "judge_max_chars": "judge.max_chars", "seed": "seed", "explanations": "explanations"}


def run_tacos(
    data: LoadedData,
    columns: dict[str, str | None],
    llm: LLMConfig,
    *,
    rows: int = 50,
    table_rows: int = 200,
    progress: Progress = _no_progress,
    **options: Any,
) -> RunResult:
    """`TacosPipeline` on the first `rows` rows, then the views. `options` are `TACOS_OPTIONS` names (config defaults
    for those not given)."""
    import datasets

    from ..tacos.pipeline import TacosConfig, TacosPipeline

    start = time.monotonic()
    config = build_config(TacosConfig, _paths(options, TACOS_OPTIONS))
    ds = datasets.Dataset.from_list(instruction_rows(data, columns, rows))
    planned = len(ds) * (2 + (1 if config.judge.swap else 0)) * config.judge.passes
    pipeline = TacosPipeline(llm, config)
    result = watch_calls(lambda: pipeline.run(ds, progress=False, source=data.source), llm, planned, progress,
                         "Tagging and comparative scoring", 0.02, 0.95)
    usage_text, _ = _usage_line(llm)
    selected, pool, vocabulary, counts = result.dataset, result.pool, result.vocabulary, result.report.counts
    chosen = {i for i, sid in enumerate(pool["id"]) if sid in set(selected["id"])}

    # --- views
    cluster_tags: dict[int, list[str]] = {}
    for tag, cid in (vocabulary.tag_clusters or {}).items():
        cluster_tags.setdefault(int(cid), []).append(tag)
    for cid in cluster_tags:
        cluster_tags[cid].sort(key=lambda t: -vocabulary.canonical_counts.get(t, 0))
    names = {cid: f"#{cid} {', '.join(tags[:2])}" for cid, tags in cluster_tags.items()}
    pool_per_cluster: Counter[int] = Counter()
    sel_per_cluster: Counter[int] = Counter()
    for i, ids in enumerate(pool["cluster_ids"]):
        for cid in ids or []:
            pool_per_cluster[cid] += 1
            sel_per_cluster[cid] += i in chosen
    raw_top = sorted(vocabulary.raw_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:15]
    canon_top = list(vocabulary.canonical_counts.items())[:15]
    charts = [
        bar_chart("Top raw tags (before normalization)", [(short_label(t, 24), n, "raw") for t, n in raw_top],
                  x_title="tag", y_title="rows", caption=f"{vocabulary.n_raw} distinct raw tags"),
        bar_chart("Top canonical tags (after normalization)", [(short_label(t, 24), n, "canonical") for t, n in canon_top],
                  x_title="tag", y_title="rows", caption=f"{vocabulary.n_canonical} canonical tags after "
                  + ", ".join(f"{s.name.replace('_', ' ')} {s.unique_before}→{s.unique_after}" for s in vocabulary.steps if s.enabled)),
        coverage_chart("Cluster sizes and selected rows", [(short_label(names.get(c, f'#{c}'), 30), pool_per_cluster[c], sel_per_cluster[c])
                                                            for c in sorted(pool_per_cluster, key=lambda c: -pool_per_cluster[c])],
                       x_title="tag cluster", caption=f"selected rows cover {sum(1 for c in sel_per_cluster if sel_per_cluster[c])} of "
                       f"{len(pool_per_cluster)} clusters (a row counts in the cluster of each of its tags)"),
    ]
    canon_rows: Counter[str] = Counter()
    canon_sel: Counter[str] = Counter()
    for i, tags in enumerate(pool["canonical_tags"]):
        for t in tags or []:
            canon_rows[t] += 1
            canon_sel[t] += i in chosen
    root = TreeNode("all tag clusters", size=len(pool), selected=len(selected))
    for cid, tags in sorted(cluster_tags.items()):
        node = TreeNode(names.get(cid, f"#{cid}"), size=pool_per_cluster[cid], selected=sel_per_cluster[cid])
        node.children = [TreeNode(t, size=canon_rows[t], selected=canon_sel[t]) for t in tags if canon_rows[t]]
        root.children.append(node)
    tree_html = treemap_html(root, title="Tag clusters → canonical tags (rows per tag)")

    table_columns = ["score", "pairs judged", "why", "instruction", "output", "canonical tags", "clusters", "id"]
    best = [{**r, "pairs judged": r["n_comparisons"], "why": r["selection_reason"], "canonical tags": r["canonical_tags"],
             "clusters": r["cluster_ids"]}
            for r in sorted(selected.to_list(), key=lambda r: -(r["score"] if r["score"] == r["score"] else -1))]
    seconds = time.monotonic() - start
    notes = "".join(f"\n- note: {n}" for n in result.report.notes)
    summary = (
        f"### TACOS: selected {len(selected)} of {counts['rows_in']} rows in {seconds:.1f} s\n"
        f"- tagging: {counts['rows_in'] - counts['tag_failures']}/{counts['rows_in']} rows tagged; {counts['raw_tags']} raw tags → "
        f"{counts['canonical_tags']} canonical tags → {counts['clusters']} clusters\n"
        f"- comparative scoring: {counts['pairs_judged']} pairs judged, {counts['judge_failures']} failed, "
        f"{counts['unscored']} rows unscored\n"
        f"- selection: {config.strategy} strategy, budget {config.budget}\n"
        f"- model: {'; '.join(result.report.models.values())}; {usage_text}{notes}"
    )
    return RunResult("TACOS", selected, _table(best, table_columns, table_rows), summary, charts, tree_html,
                     result.provenance(), dict(result.artifacts), seconds)


def _paths(options: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """`{config path: value}` for the given Space options (an unknown name is a programming error, said plainly)."""
    unknown = set(options) - set(names)
    if unknown:
        raise ConfigError(f"Unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(names)}.")
    return {names[k]: v for k, v in options.items() if v is not None}


# ---------------------------------------------------------------------------------------------------- PD


# Space option name -> PDPipelineConfig field
PD_OPTIONS = {"ratio": "ratio", "stratify_by_aspect": "stratify_by_aspect", "pair_mode": "split.pair_mode",
              "gamma": "divergence.gamma", "seed": "seed"}


def run_pd(
    data: LoadedData,
    *,
    rows: int = 5000,
    table_rows: int = 200,
    progress: Progress = _no_progress,
    **options: Any,
) -> RunResult:
    """`PDPipeline` on the ratings in the data (the paper's PD(rati.); no model), then the views."""
    from ..pd.pipeline import PDPipeline, PDPipelineConfig

    start = time.monotonic()
    config = build_config(PDPipelineConfig, _paths(options, PD_OPTIONS))
    if data.kind != "preferences":
        raise DataError(
            "PD needs preference data: rows with a prompt and several rated responses "
            "(`{prompt, responses: [{text, ratings: {aspect: score}}]}`), UltraFeedback/HelpSteer rows, or "
            "prompt/chosen/rejected pairs with an aspect column. Pick a ratings sample set or upload such a file."
        )
    records = data.rows[:rows]
    progress(0.05, "Building single-aspect pairs and computing preference divergence")
    pipeline = PDPipeline(config)
    source: Any = records
    if not {"prompt", "responses"} <= set(data.columns):
        import datasets

        source = datasets.Dataset.from_list(records)
    result = pipeline.run(source, progress=False, source=data.source)
    scored, kept, pairs, divergence = result.scored, result.dataset, result.pairs, result.divergence
    progress(0.9, "Drawing")
    pd_values = np.asarray(scored["pd"], dtype=float)
    kept_ids = set(kept["pair_id"])
    is_kept = np.array([pid in kept_ids for pid in scored["pair_id"]], dtype=bool)
    cut = float(np.nanmax(pd_values[is_kept])) if is_kept.any() else float("nan")
    aspects_pool = Counter(scored["aspect"])
    aspects_kept = Counter(kept["aspect"])
    ratio = config.ratio if config.ratio is not None else len(kept) / max(len(scored), 1)
    charts = [
        histogram_chart(f"PD of all {len(scored)} pairs; kept = the {ratio:.0%} most negative (cut at PD ≤ {cut:+.2f})",
                        pd_values, is_kept, x_title="preference divergence (bin centre)",
                        caption="negative PD: the other aspects agree with the pair's label; positive: they conflict"),
        coverage_chart("Pairs per aspect: kept vs pool", [(a, n, aspects_kept.get(a, 0)) for a, n in aspects_pool.most_common()],
                       x_title="aspect of the pair's label"),
    ]
    root = TreeNode("all pairs", size=len(scored), selected=len(kept))
    for aspect, n in aspects_pool.most_common():
        node = TreeNode(aspect, size=n, selected=aspects_kept.get(aspect, 0))
        prompts = Counter(r for r, a in zip(scored["prompt"], scored["aspect"]) if a == aspect)
        prompts_kept = Counter(r for r, a in zip(kept["prompt"], kept["aspect"]) if a == aspect)
        node.children = [TreeNode(short_label(p, 60), size=c, selected=prompts_kept.get(p, 0)) for p, c in prompts.most_common(40)]
        root.children.append(node)
    tree_html = treemap_html(root, title="Aspects → prompts (pairs per prompt)", unit="pairs")
    kept_rows = sorted(kept.to_list(), key=lambda r: r["pd"])
    table = _table(kept_rows, ["pd", "aspect", "reward_margin", "pd_num_aspects", "prompt", "chosen", "rejected", "pair_id"], table_rows)
    seconds = time.monotonic() - start
    counts = result.report.counts
    bad = ", ".join(f"{k} {v}" for k, v in sorted(pairs.bad_rows.counts.items())) or "none"
    warn = "".join(f"\n- **{note}**" for note in result.report.notes)
    rate = lambda key: f"{counts[key]:.1%}" if key in counts else "n/a"  # noqa: E731
    summary = (
        f"### PD: kept {len(kept)} of {len(scored)} pairs in {seconds:.1f} s\n"
        f"- {pairs.bad_rows.rows_in} rows → {len(scored)} single-aspect pairs over {len(divergence.aspects)} aspects "
        f"({', '.join(divergence.aspects)}); skipped: {bad}\n"
        f"- conflict rate (PD > 0): pool {rate('conflict_rate_pool')} → kept {rate('conflict_rate_kept')}\n"
        f"- per-aspect rewards: the ratings in the data (PD(rati.)); no LLM calls{warn}"
    )
    return RunResult("PD", kept, table, summary, charts, tree_html, result.provenance(), {}, seconds)
