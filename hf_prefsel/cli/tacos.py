"""`hf-prefsel tacos`: tag, normalize, cluster, score comparatively and select (TACOS) end to end."""

from __future__ import annotations

import argparse

from .common import (
    add_executor_arguments, add_llm_arguments, add_options, add_output_arguments, check_executor, check_output,
    config_from_args, executor_from_args, failed_exit, input_name, llm_from_args, load_data, print_summary, run_command,
    write_result,
)
from .tag import OPTIONS as TAG_OPTIONS, add_data_arguments

# flag -> TacosConfig field
OPTIONS = {
    "budget": "budget", "ratio": "ratio", **TAG_OPTIONS, "response_column": "response_column",
    "clusters": "cluster.n_clusters", "strategy": "strategy", "dedup": "dedup", "swap": "judge.swap",
    "passes": "judge.passes", "aggregate": "judge.aggregate", "judge_max_chars": "judge.max_chars", "scorer": "scorer",
    "released_normalization": "released_normalization", "alpha": "normalizer.alpha", "seed": "seed",
}


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    from ..tacos.pipeline import TacosConfig

    parser = parser or argparse.ArgumentParser(prog="tacos_select.py", description=__doc__)
    add_data_arguments(parser)
    add_options(parser.add_argument_group("method"), TacosConfig, OPTIONS)
    parser.add_argument("--save-vocabulary", metavar="DIR", help="also save the TagVocabulary artifact to this folder")
    add_llm_arguments(parser)
    add_executor_arguments(parser)
    add_output_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..tacos.pipeline import TacosConfig, TacosPipeline, top_rows

    config = config_from_args(TacosConfig, args, OPTIONS)
    check_output(args.output, [args.data])
    check_output(args.save_vocabulary, [args.data], folder_only=True)
    check_executor(args)
    ds = load_data(args.data, limit=args.limit)
    config.check_columns(ds.column_names)
    with llm_from_args(args) as llm, executor_from_args(args) as executor:
        result = TacosPipeline(llm, config).run(ds, executor=executor, source=input_name(args.data))
    print("\n" + result.vocabulary.report(top=10))
    print(f"\nclusters: {result.report.counts['clusters']}")
    selected = result.dataset
    print("\nselected (best first):")
    for row in selected.select(top_rows(selected)):
        text = " ".join(str(row[config.instruction_column]).split())[:70]
        print(f"  {row['score']:5.1f}  {text:<72} {row['canonical_tags']}")
    print_summary(result)
    if args.save_vocabulary:
        print(f"vocabulary saved to {result.vocabulary.save_pretrained(args.save_vocabulary)}")
    write_result(result, args)
    return failed_exit(result, args)


def main(argv: list[str] | None = None) -> int:
    return run_command(run, build_parser().parse_args(argv))
