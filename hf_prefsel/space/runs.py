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
from .data import LoadedData, instruction_rows, short
from .views import Chart, TreeNode, coverage_chart, bar_chart, histogram_chart, short_label, treemap_html

Progress = Callable[[float, str], None]
T = TypeVar("T")

TACOS_PAPER = {"title": "TACOS: Open Tagging and Comparative Scoring for Instruction Fine-Tuning Data Selection", "arxiv": "2507.03673"}


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


def run_tacos(
    data: LoadedData,
    columns: dict[str, str | None],
    llm: LLMConfig,
    *,
    rows: int = 50,
    budget: int = 10,
    clusters: int = 8,
    strategy: str = "quota",
    passes: int = 1,
    swap: bool = False,
    seed: int = 0,
    judge_max_chars: int = 800,
    model_description: str = "",
    table_rows: int = 200,
    progress: Progress = _no_progress,
) -> RunResult:
    """Tag → normalize → cluster → comparative scoring → selection on the first `rows` rows (TACOS).

    Same stages and defaults as `hf-prefsel tacos`; explanations are skipped on the embedded model (the CLI's
    `--explanations auto`), and the judge sees at most `judge_max_chars` characters per text.
    """
    import datasets

    from ..cli.common import is_embedded
    from ..tacos import (ComparativeScorer, ComparativeScorerConfig, OpenTagger, TagClusterConfig, TagClusterer,
                         TagNormalizer, TagNormalizerConfig, plan_selection)

    start = time.monotonic()
    if budget < 1:
        raise ConfigError("The selection budget must be at least 1 row.")
    records = instruction_rows(data, columns, rows)
    ds = datasets.Dataset.from_list(records)
    tagger = OpenTagger(llm, explanations=not is_embedded(llm), on_bad_row="record")
    progress(0.02, "Tagging intents")
    ds = watch_calls(lambda: ds.map(tagger, batched=True, batch_size=8, desc="Tagging"),
                     llm, len(ds), progress, "Tagging intents", 0.02, 0.45)
    tag_failures = sum(bool(e) for e in ds["tags_error"])  # "" (or None) marks success
    if tag_failures == len(ds):
        reasons = Counter(str(e)[:120] for e in ds["tags_error"] if e).most_common(2)
        raise DataError(f"No row could be tagged ({'; '.join(r for r, _ in reasons)}). Check the model or raise the call budget.")

    progress(0.47, "Normalizing and clustering tags")
    normalizer = TagNormalizer(TagNormalizerConfig())
    ds = normalizer.fit_transform(ds, desc="Normalizing tags")
    vocabulary = normalizer.vocabulary
    if vocabulary.n_canonical == 0:
        raise DataError("Normalization kept no tag; try more rows.")
    k = max(1, min(int(clusters), vocabulary.n_canonical))
    clusterer = TagClusterer(TagClusterConfig(n_clusters=k, seed=seed)).fit(vocabulary)
    ds = clusterer.transform(ds)

    scorer = ComparativeScorer(llm, ComparativeScorerConfig(passes=passes, swap=swap, seed=seed, max_chars=judge_max_chars))
    n_calls = len(scorer.plan(ds)) * (2 if swap else 1)
    ds = watch_calls(lambda: scorer.score(ds, progress=False), llm, n_calls, progress, "Comparative scoring", 0.5, 0.95)
    progress(0.96, "Selecting")
    plan = plan_selection(ds["score"], ds["cluster_ids"], min(budget, len(ds)), strategy=strategy)  # type: ignore[arg-type]
    order = sorted(plan.indices)
    reason = dict(zip(plan.indices, plan.reasons))
    selected = ds.select(order).add_column("selection_reason", [reason[i] for i in order])
    usage_text, usage = _usage_line(llm)

    # --- views
    cluster_tags: dict[int, list[str]] = {}
    for tag, cid in (vocabulary.tag_clusters or {}).items():
        cluster_tags.setdefault(int(cid), []).append(tag)
    for cid in cluster_tags:
        cluster_tags[cid].sort(key=lambda t: -vocabulary.canonical_counts.get(t, 0))
    names = {cid: f"#{cid} {', '.join(tags[:2])}" for cid, tags in cluster_tags.items()}
    chosen = set(order)
    pool_per_cluster: Counter[int] = Counter()
    sel_per_cluster: Counter[int] = Counter()
    for i, ids in enumerate(ds["cluster_ids"]):
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
    for i, tags in enumerate(ds["canonical_tags"]):
        for t in tags or []:
            canon_rows[t] += 1
            canon_sel[t] += i in chosen
    root = TreeNode("all tag clusters", size=len(ds), selected=len(order))
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
    counts = {"rows_in": len(ds), "tag_failures": tag_failures, "raw_tags": vocabulary.n_raw,
              "canonical_tags": vocabulary.n_canonical, "clusters": clusterer.n_clusters, "pairs_judged": scorer.report.judged,
              "judge_failures": scorer.report.failed, "rows_out": len(selected), "llm_calls": usage["calls"],
              "cache_hits": usage["cache_hits"], "prompt_tokens": usage["prompt_tokens"],
              "completion_tokens": usage["completion_tokens"]}
    provenance = Provenance(
        method="TACOS", papers=[TACOS_PAPER], model=model_description or None, source=data.source,
        selection_budget=budget,
        parameters={"rows": len(ds), "clusters": k, "strategy": strategy, "passes": passes, "swap": swap, "seed": seed,
                    "explanations": tagger.explanations, "judge_max_chars": judge_max_chars},
        counts=counts,
    )
    summary = (
        f"### TACOS: selected {len(selected)} of {len(ds)} rows in {seconds:.1f} s\n"
        f"- tagging: {len(ds) - tag_failures}/{len(ds)} rows tagged; {vocabulary.n_raw} raw tags → "
        f"{vocabulary.n_canonical} canonical tags → {clusterer.n_clusters} clusters\n"
        f"- comparative scoring: {scorer.report}\n"
        f"- selection: {strategy} strategy, budget {budget}; {plan.n_quota} rows by cluster quota"
        f"{f', {len(order) - plan.n_quota} filled from the best remaining' if len(order) > plan.n_quota else ''}\n"
        f"- model: {model_description or 'n/a'}; {usage_text}"
    )
    return RunResult("TACOS", selected, _table(best, table_columns, table_rows), summary, charts, tree_html, provenance,
                     {"tag_vocabulary": vocabulary}, seconds)


# ---------------------------------------------------------------------------------------------------- PD


def run_pd(
    data: LoadedData,
    *,
    ratio: float = 0.3,
    rows: int = 5000,
    stratify_by_aspect: bool = False,
    pair_mode: str = "one_per_prompt",
    gamma: float = 0.9,
    seed: int = 0,
    table_rows: int = 200,
    progress: Progress = _no_progress,
) -> RunResult:
    """Preference divergence from the ratings in the data (the paper's PD(rati.)), then keep the `ratio` share
    with the most negative PD. Needs no model: the ratings are the per-aspect rewards."""
    import datasets

    from ..pd import (PAPER, AspectSplitConfig, PDConfig, RatingsScorer, compute_pd, conflict_rate, from_multi_response,
                      select_indices_by_pd, to_pairs)

    start = time.monotonic()
    if not 0 < ratio <= 1:
        raise ConfigError(f"The ratio must be in (0, 1], got {ratio}.")
    if data.kind != "preferences":
        raise DataError(
            "PD needs preference data: rows with a prompt and several rated responses "
            "(`{prompt, responses: [{text, ratings: {aspect: score}}]}`), UltraFeedback/HelpSteer rows, or "
            "prompt/chosen/rejected pairs with an aspect column. Pick a ratings sample set or upload such a file."
        )
    records = data.rows[:rows]
    split = AspectSplitConfig(pair_mode=pair_mode, seed=seed)  # type: ignore[arg-type]
    progress(0.05, "Building single-aspect pairs")
    if {"prompt", "responses"} <= set(data.columns):
        has_prefs = any(isinstance(r.get("meta"), dict) and isinstance(r["meta"].get("pairwise_preferences"), list)
                        for r in records)
        pairs = from_multi_response(records, config=split, preferences_key="meta.pairwise_preferences" if has_prefs else None)
    else:
        pairs = to_pairs(datasets.Dataset.from_list(records), split)
    if len(pairs.pairs) == 0:
        raise DataError("No pair could be built: " + pairs.bad_rows.summary())
    progress(0.5, "Computing preference divergence")
    result = compute_pd(pairs.pairs, RatingsScorer(), PDConfig(gamma=gamma, progress=False))
    scored = result.dataset
    idx = select_indices_by_pd(scored, ratio=ratio, stratify_by_aspect=stratify_by_aspect, seed=seed)
    kept = scored.select(idx)
    progress(0.9, "Drawing")
    pd_values = np.asarray(scored["pd"], dtype=float)
    is_kept = np.zeros(len(scored), dtype=bool)
    is_kept[np.asarray(idx, dtype=int)] = True
    cut = float(np.nanmax(pd_values[is_kept])) if is_kept.any() else float("nan")
    aspects_pool = Counter(scored["aspect"])
    aspects_kept = Counter(kept["aspect"])
    pool_conflict, kept_conflict = conflict_rate(pd_values), conflict_rate(pd_values[is_kept])
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
    counts = {"rows_in": pairs.bad_rows.rows_in, "pairs": len(scored), "rows_out": len(kept),
              **{f"bad_{k}": v for k, v in pairs.bad_rows.counts.items()}}
    if not np.isnan(pool_conflict):
        counts["conflict_rate_pool"] = round(float(pool_conflict), 4)
    if not np.isnan(kept_conflict):
        counts["conflict_rate_kept"] = round(float(kept_conflict), 4)
    provenance = Provenance(method="PD", papers=[dict(PAPER)], source=data.source, selection_budget=ratio, counts=counts,
                            parameters={"ratio": ratio, "gamma": gamma, "stratify_by_aspect": stratify_by_aspect,
                                        "pair_mode": pair_mode, "seed": seed, "scorer": "ratings"})
    bad = ", ".join(f"{k} {v}" for k, v in sorted(pairs.bad_rows.counts.items())) or "none"
    warn = ("\n- **only one aspect**: PD needs other aspects and is 0 everywhere, so the selection is a seeded random draw"
            if len(result.aspects) < 2 else "")
    summary = (
        f"### PD: kept {len(kept)} of {len(scored)} pairs in {seconds:.1f} s\n"
        f"- {pairs.bad_rows.rows_in} rows → {len(scored)} single-aspect pairs over {len(result.aspects)} aspects "
        f"({', '.join(result.aspects)}); skipped: {bad}\n"
        f"- conflict rate (PD > 0): pool {pool_conflict:.1%} → kept {kept_conflict:.1%}\n"
        f"- per-aspect rewards: the ratings in the data (PD(rati.)); no LLM calls{warn}"
    )
    return RunResult("PD", kept, table, summary, charts, tree_html, provenance, {}, seconds)
