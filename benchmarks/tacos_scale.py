"""Scale benchmark of TACOS tag normalization + clustering on synthetic tag occurrences.

Goal (issue 3): 1M tag occurrences drawn from ~50k unique raw tags, normalization + clustering in <= 2 min and
<= 4 GB on 2 cores.

The vocabulary is built from real labels: the category/taxonomy labels of ../shared/data/taxonomy/
category_taxonomies.jsonl and the instruction categories of ../shared/data/instructions/ (Auto-J scenarios, FLASK
domains, Arena-Hard topic clusters, ...). Compound labels are split into topics ("Docker Deployment &
Configuration" -> "docker deployment", "configuration"), topics are combined with task intents ("code generation",
"explaining general", ...) into compound concepts, and every concept gets the surface variants an LLM tagger
produces: case, snake_case, hyphens, plural/singular, "X of Y" reordering, "X request"/"X task" suffixes. Concept
frequency is Zipfian, tags per sample follow the distribution the TACOS authors report for Alpaca (1-8 tags, mode
3), and 3% of concepts always bring a parent tag along (what association aggregation should merge).

Usage:
    python benchmarks/tacos_scale.py            # 1M occurrences
    python benchmarks/tacos_scale.py --quick    # 50k occurrences, for tests

Prints one line per step (wall seconds, peak RSS during the step) and, last, the headline
`tacos_scale_total_seconds: <value>` (normalization + clustering, data generation excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from _measure import Steps

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_DATA = REPO.parent / "shared" / "data"

# Tags per sample on Alpaca before normalization, as reported by the TACOS authors (1..8 tags).
TAGS_PER_SAMPLE = np.array([1890, 17443, 26191, 5348, 933, 141, 32, 22], dtype=np.float64)

TASKS = [
    "code generation", "code explanation", "debugging", "explanation", "advice", "analysis", "summarization",
    "translation", "writing", "question answering", "recommendation", "comparison", "calculation", "definition",
    "classification", "brainstorming", "planning", "tutorial", "information retrieval", "problem solving",
    "data analysis", "creative writing", "rewriting", "fact checking", "list generation", "opinion",
    "troubleshooting", "instruction", "example generation", "optimization",
]


# ------------------------------------------------------------------------------------------------ measurement








# ------------------------------------------------------------------------------------------------ synthetic data


def _load_labels(data_dir: Path) -> list[str]:
    labels: list[str] = []
    tax = data_dir / "taxonomy" / "category_taxonomies.jsonl"
    skip_taxonomies = {"alpaca_eval_source_dataset"}
    with open(tax, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["taxonomy"] not in skip_taxonomies:
                labels.append(row["label"])
    for name in ("autoj_scenario_classification.jsonl", "flask_eval_skills.jsonl", "instructionwild_v2_user.jsonl"):
        path = data_dir / "instructions" / name
        if path.exists():
            with open(path, encoding="utf-8") as f:
                labels.extend(json.loads(line)["category"] or "" for line in f)
    out = []
    for label in dict.fromkeys(labels):
        if not label or not label.isascii() or label in ("default", "Other", "-1") or "http" in label:
            continue
        out.append(label)
    return out


def _topics(labels: list[str]) -> list[str]:
    """Atomic topic phrases from real labels: split compounds on '&', 'and', ',', '/'; snake_case -> words."""
    topics: dict[str, None] = {}
    for label in labels:
        for part in re.split(r"\s*(?:&|,|/|\band\b|\bwith\b|\bin\b|\bfor\b)\s*", label.replace("_", " ")):
            words = re.sub(r"[^\w+#.' -]", " ", part).lower().split()
            if 1 <= len(words) <= 4:
                topics[" ".join(words)] = None
    return list(topics)


def _plural(phrase: str) -> str:
    head, _, last = phrase.rpartition(" ")
    if last.endswith("s") and not last.endswith("ss"):
        new = last[:-1]
    elif last.endswith(("ch", "sh", "x", "ss")):
        new = last + "es"
    elif last.endswith("y") and len(last) > 2 and last[-2] not in "aeiou":
        new = last[:-1] + "ies"
    else:
        new = last + "s"
    return f"{head} {new}" if head else new


def _variants(concept: str) -> list[str]:
    """Surface forms an LLM tagger emits for one concept, most common first."""
    words = concept.split()
    forms = [
        concept,
        concept.title(),
        concept.capitalize(),
        "_".join(words),
        "-".join(words),
        _plural(concept),
        _plural(concept).title(),
        concept + " request",
        concept.title() + " Task",
    ]
    if len(words) >= 2:
        forms.append(f"{words[-1]} of {' '.join(words[:-1])}")
    forms.append(concept.upper())
    return list(dict.fromkeys(forms))


def build_corpus(n_occurrences: int, data_dir: Path, seed: int = 0, n_concepts: int = 9000) -> tuple[Any, dict]:
    """A `datasets.Dataset` with a `tags` column (plus `response_chars`) and a summary dict."""
    import datasets
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    labels = _load_labels(data_dir)
    topics = _topics(labels)
    tasks = TASKS + [t for t in topics if len(t.split()) <= 2][:40]
    concepts = list(dict.fromkeys(topics + TASKS))
    compounds = [f"{topic} {task}" for topic in topics for task in tasks if len(topic.split()) <= 2]
    rng.shuffle(compounds)
    concepts = list(dict.fromkeys(concepts + compounds))[:n_concepts]
    n_c = len(concepts)

    variant_lists = [_variants(c) for c in concepts]
    offsets = np.cumsum([0] + [len(v) for v in variant_lists])
    raw_strings = [v for vs in variant_lists for v in vs]
    raw_dedup: dict[str, int] = {}
    raw_index = np.array([raw_dedup.setdefault(s, len(raw_dedup)) for s in raw_strings], dtype=np.int64)
    dictionary = list(raw_dedup)

    # Zipfian concept popularity (s = 1.05), shuffled so popular concepts are not the first labels.
    popularity = 1.0 / np.arange(1, n_c + 1) ** 1.05
    popularity = popularity[rng.permutation(n_c)]
    popularity /= popularity.sum()

    per_sample_p = TAGS_PER_SAMPLE / TAGS_PER_SAMPLE.sum()
    mean_tags = float((np.arange(1, 9) * per_sample_p).sum())
    n_samples = int(n_occurrences / (mean_tags * 1.02))
    k = rng.choice(np.arange(1, 9), size=n_samples, p=per_sample_p)
    slots = int(k.sum())
    sample_of_slot = np.repeat(np.arange(n_samples), k)
    concept_of_slot = rng.choice(n_c, size=slots, p=popularity)

    # 3% of concepts always come with a parent concept (a frequent base concept).
    has_parent = rng.random(n_c) < 0.03
    base_ids = np.arange(min(len(topics), n_c))
    parent = np.where(has_parent, rng.choice(base_ids, size=n_c), -1)
    extra = parent[concept_of_slot] >= 0

    # Variant choice: the first (canonical lowercase) form half the time, the rest geometrically rarer. A parent
    # tag brought along by its child is the generic tag a tagger spells consistently: always its first form.
    n_var = np.diff(offsets)[concept_of_slot]
    u = rng.random(len(concept_of_slot))
    var = np.where(u < 0.5, 0, np.minimum(rng.geometric(0.35, size=len(u)), n_var - 1))
    raw_of_slot = raw_index[offsets[concept_of_slot] + var]
    sample_of_slot = np.concatenate([sample_of_slot, sample_of_slot[extra]])
    raw_of_slot = np.concatenate([raw_of_slot, raw_index[offsets[parent[concept_of_slot[extra]]]]])

    order = np.argsort(sample_of_slot, kind="stable")
    sample_of_slot, raw_of_slot = sample_of_slot[order], raw_of_slot[order]
    counts = np.bincount(sample_of_slot, minlength=n_samples)
    list_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    values = pa.DictionaryArray.from_arrays(pa.array(raw_of_slot.astype(np.int32)), pa.array(dictionary))
    tags = pa.ListArray.from_arrays(pa.array(list_offsets), values.cast(pa.string()))
    response_chars = rng.integers(20, 2000, size=n_samples)
    table = pa.table({"tags": tags, "response_chars": pa.array(response_chars)})
    ds = datasets.Dataset(datasets.table.InMemoryTable(table))
    summary = {
        "samples": n_samples,
        "occurrences": len(raw_of_slot),
        "unique_raw_tags_used": int(len(np.unique(raw_of_slot))),
        "vocabulary_size": len(dictionary),
        "concepts": n_c,
        "real_labels": len(labels),
    }
    return ds, summary


# ------------------------------------------------------------------------------------------------ benchmark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run (50k occurrences) for tests")
    parser.add_argument("--occurrences", type=int, default=None, help="tag occurrences (default 1M, quick 50k)")
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("HF_PREFSEL_SHARED_DATA", DEFAULT_DATA)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="embedding batch size (default: the tag embedder's 256)"
    )
    args = parser.parse_args(argv)
    n_occ = args.occurrences or (50_000 if args.quick else 1_000_000)

    import datasets

    datasets.disable_progress_bars()
    from hf_prefsel.tacos.cluster import (
        TagClusterConfig,
        TagClusterer,
        cluster_members,
        column_values,
        label_set_dedup_indices,
    )
    from hf_prefsel.tacos.normalize import TagNormalizer, TagNormalizerConfig, tag_embedder

    print(f"tacos_scale: {n_occ:,} tag occurrences, K={args.clusters}, {os.cpu_count()} CPUs", flush=True)
    t0 = time.perf_counter()
    ds, summary = build_corpus(n_occ, args.data_dir, seed=args.seed, n_concepts=1500 if args.quick else 9000)
    print(f"data: {json.dumps(summary)} ({time.perf_counter() - t0:.1f} s, not counted)", flush=True)

    steps = Steps()
    embedder = tag_embedder()
    if args.batch_size:
        embedder.batch_size = args.batch_size
    steps.run("load embedder", lambda: embedder.encode(["warm up"]))
    normalizer = TagNormalizer(TagNormalizerConfig(), embedder=embedder)
    steps.run("normalize.fit", lambda: normalizer.fit(ds))
    vocab = normalizer.vocabulary
    for s in vocab.steps:
        print(f"  {s.name:<26} {s.unique_before:>8,} -> {s.unique_after:>8,} tags  {s.seconds:7.2f} s", flush=True)
    ds = steps.run("normalize.transform (map)", lambda: normalizer.transform(ds))
    clusterer = TagClusterer(TagClusterConfig(n_clusters=args.clusters, seed=args.seed), embedder=embedder)
    steps.run("cluster.fit (embed+kmeans)", lambda: clusterer.fit(vocab))
    ds = steps.run("cluster.assign (map)", lambda: clusterer.transform(ds))
    label_sets = steps.run("read cluster_ids column", lambda: column_values(ds, "cluster_ids"))
    lengths = column_values(ds, "response_chars")
    kept = steps.run("label-set dedup", lambda: label_set_dedup_indices(label_sets, lengths))
    members = steps.run("cluster membership", lambda: cluster_members(label_sets))

    total = sum(row[1] for row in steps.rows)
    cpu_total = sum(row[2] for row in steps.rows)
    peak = max(row[3] for row in steps.rows)
    print(
        f"summary: {vocab.n_raw:,} raw tags -> {vocab.n_canonical:,} canonical, {len(members)} clusters, "
        f"{len(kept):,} label-set representatives of {summary['samples']:,} samples; total {total:.1f} s wall, "
        f"{cpu_total:.1f} s CPU; peak RSS {peak:.0f} MB",
        flush=True,
    )
    print(f"tacos_scale_total_seconds: {total:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
