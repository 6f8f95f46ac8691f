"""`hf-prefsel tacos`: tag, normalize, cluster, score comparatively and select (TACOS) end to end."""

from __future__ import annotations

import argparse
import time

import numpy as np

from .common import (
    add_llm_arguments, add_output_arguments, describe_model, llm_from_args, load_data, print_summary, usage_counts,
)
from .tag import add_explanations_argument, wants_explanations

PAPER = {"title": "TACOS: Open Tagging and Comparative Scoring for Instruction Fine-Tuning Data Selection", "arxiv": "2507.03673"}


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="tacos_select.py", description=__doc__)
    parser.add_argument("--data", required=True, help="a .jsonl/.csv/.parquet file (or glob), a saved dataset folder, or a Hub id")
    parser.add_argument("--budget", type=int, required=True, help="number of rows to select")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N rows")
    data = parser.add_argument_group("columns")
    data.add_argument("--instruction-column", default="instruction")
    data.add_argument("--input-column", default="input")
    data.add_argument("--response-column", default="output")
    method = parser.add_argument_group("method")
    method.add_argument("--clusters", type=int, default=50, help="K of the tag K-Means (paper: 50)")
    method.add_argument("--strategy", choices=["quota", "global"], default="quota",
                        help="quota: budget/K per cluster, smallest clusters first (released code); global: top-k")
    method.add_argument("--dedup", action="store_true", help="keep one row (longest response) per identical cluster-label set")
    method.add_argument("--swap", action="store_true", help="judge each pair in both orders and report position bias")
    method.add_argument("--passes", type=int, default=1, help="comparisons per sample")
    method.add_argument("--aggregate", choices=["mean", "bradley_terry"], default="mean")
    method.add_argument("--judge-max-chars", type=int, default=800,
                        help="cut each instruction and response shown to the judge to this many characters")
    add_explanations_argument(method)
    method.add_argument("--released-normalization", action="store_true",
                        help="only frequency filtering + rule aggregation, as the released code runs")
    method.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16, help="rows per map batch sent to the tagger at once")
    parser.add_argument("--save-vocabulary", metavar="DIR", help="also save the TagVocabulary artifact to this folder")
    add_llm_arguments(parser)
    add_output_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..hub import Provenance, push_dataset, save_dataset
    from ..tacos import (
        ComparativeScorer,
        ComparativeScorerConfig,
        OpenTagger,
        SelectionConfig,
        TagClusterConfig,
        TagClusterer,
        TagNormalizer,
        TagNormalizerConfig,
        dedup_by_label_set,
        select_dataset,
    )

    timings: dict[str, float] = {}
    ds = load_data(args.data, limit=args.limit)
    rows_in = len(ds)
    with llm_from_args(args) as llm:
        tagger = OpenTagger(llm, instruction_column=args.instruction_column, input_column=args.input_column,
                            explanations=wants_explanations(args, llm), on_bad_row="record")
        start = time.monotonic()
        ds = ds.map(tagger, batched=True, batch_size=args.batch_size, desc="Tagging")
        timings["tagging"] = time.monotonic() - start
        tag_failures = sum(bool(e) for e in ds["tags_error"])

        start = time.monotonic()
        norm_config = TagNormalizerConfig.released_code() if args.released_normalization else TagNormalizerConfig()
        normalizer = TagNormalizer(norm_config)
        ds = normalizer.fit_transform(ds, desc="Normalizing tags")
        vocabulary = normalizer.vocabulary
        clusterer = TagClusterer(TagClusterConfig(n_clusters=args.clusters, seed=args.seed)).fit(vocabulary)
        ds = clusterer.transform(ds)
        if args.dedup:
            ds = dedup_by_label_set(ds, response_column=args.response_column)
        timings["normalize+cluster"] = time.monotonic() - start

        scorer = ComparativeScorer(llm, ComparativeScorerConfig(
            instruction_column=args.instruction_column, input_column=args.input_column,
            response_column=args.response_column, passes=args.passes, swap=args.swap,
            aggregate=args.aggregate, seed=args.seed, max_chars=args.judge_max_chars,
        ))
        start = time.monotonic()
        ds = scorer.score(ds)
        timings["scoring"] = time.monotonic() - start
        selected = select_dataset(ds, SelectionConfig(budget=args.budget, strategy=args.strategy))
        usage = tagger.client.usage.as_dict()
        model = describe_model(llm)

    print("\n" + vocabulary.report(top=10))
    print(f"\nclusters: {clusterer.n_clusters}  rows after dedup: {len(ds)}" if args.dedup else f"\nclusters: {clusterer.n_clusters}")
    print(f"scoring: {scorer.report}")
    print("\nselected (best first):")
    # numpy, not Dataset.sort: datasets 5.2 passes pyarrow a deprecated sort option (a FutureWarning in the output)
    best = np.argsort(-np.asarray(selected["score"], dtype=float), kind="stable")[:10]
    for row in selected.select(best):
        text = " ".join(str(row[args.instruction_column]).split())[:70]
        print(f"  {row['score']:5.1f}  {text:<72} {row['canonical_tags']}")
    summary = {
        "rows_in": rows_in, "tag_failures": tag_failures, "raw_tags": vocabulary.n_raw,
        "canonical_tags": vocabulary.n_canonical, "clusters": clusterer.n_clusters, "pairs_judged": scorer.report.judged,
        "judge_failures": scorer.report.failed, "selected": len(selected), **usage_counts(usage),
    }
    if scorer.report.position_bias_rate is not None:
        summary["position_bias_rate"] = round(scorer.report.position_bias_rate, 4)
    print_summary(summary, timings, model)

    provenance = Provenance(
        method="TACOS", papers=[PAPER], model=model, source=args.data, selection_budget=args.budget,
        parameters={k: v for k, v in vars(args).items() if k in (
            "clusters", "strategy", "dedup", "swap", "passes", "aggregate", "released_normalization", "seed", "limit")},
        counts={**summary, "rows_out": len(selected)},
    )
    if args.save_vocabulary:
        print(f"vocabulary saved to {vocabulary.save_pretrained(args.save_vocabulary)}")
    if args.output:
        print(f"wrote {save_dataset(selected, args.output, provenance)}")
    if args.push_to_hub:
        url = push_dataset(selected, args.push_to_hub, provenance, artifacts={"tag_vocabulary": vocabulary},
                           private=args.private or None)
        print(f"pushed {url}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
