"""`hf-prefsel tags`: concept tagging, knowledge tree, grounding and information-gain sampling (TAGS)."""

from __future__ import annotations

import argparse

from .common import (
    add_executor_arguments, add_llm_arguments, add_options, add_output_arguments, check_executor, check_output,
    config_from_args, executor_from_args, failed_exit, input_name, llm_from_args, load_data, print_summary, run_command,
    write_result,
)
from .tag import add_data_arguments

# flag -> TagsConfig field
OPTIONS = {
    "budget": "budget", "ratio": "ratio", "instruction_column": "instruction_column", "input_column": "input_column",
    "check_rounds": "check_rounds", "batch_size": "batch_size", "tree_ratio": "tree.ratio", "llm_names": "llm_names",
    "ground_threshold": "grounding.threshold", "quality_column": "quality_column", "mu": "sampler.mu", "seed": "seed",
}


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    from ..tags.pipeline import TagsConfig

    parser = parser or argparse.ArgumentParser(prog="tags_select.py", description=__doc__)
    add_data_arguments(parser)
    add_options(parser.add_argument_group("method"), TagsConfig, OPTIONS)
    for action in parser._actions:
        if action.dest == "budget":
            action.type = float  # whole rows, or the deprecated fraction spelling (see _budget_spelling)
    parser.add_argument("--target-data", "--target", dest="target",
                        help="a target-domain dataset: select to match its leaf distribution (KL-aligned)")
    parser.add_argument("--target-limit", type=int, default=None, help="use only the first N target rows")
    parser.add_argument("--save-tree", metavar="DIR", help="save the KnowledgeTree artifact to this folder")
    parser.add_argument("--tree-html", metavar="PATH", help="write the tree as a self-contained HTML picture")
    parser.add_argument("--push-tree-to", metavar="REPO", help="push the KnowledgeTree artifact to its own Hub repo")
    add_llm_arguments(parser)
    add_executor_arguments(parser)
    add_output_arguments(parser)
    return parser


def _budget_spelling(args: argparse.Namespace) -> None:
    """`--budget 0.05` (a fraction) is the older spelling of `--ratio 0.05`."""
    import warnings

    if args.budget is None:
        return
    value = float(args.budget)
    if 0 < value < 1 and args.ratio is None:
        warnings.warn("--budget with a fraction is deprecated; use --ratio 0.05 for a share of the rows.", FutureWarning)
        args.budget, args.ratio = None, value
    elif value.is_integer():
        args.budget = int(value)


def run(args: argparse.Namespace) -> int:
    import os

    from ..errors import ConfigError
    from ..tags.pipeline import TagsConfig, TagsPipeline

    _budget_spelling(args)
    config = config_from_args(TagsConfig, args, OPTIONS)
    check_output(args.output, [args.data])
    check_output(args.save_tree, [args.data], folder_only=True)
    if args.tree_html and not os.path.isdir(os.path.dirname(os.path.abspath(args.tree_html))):
        raise ConfigError(f"--tree-html {args.tree_html!r}: its folder does not exist; create it or pick another path.")
    check_executor(args)
    pool = load_data(args.data, limit=args.limit)
    target = load_data(args.target, limit=args.target_limit) if args.target else None
    config.check_columns(pool.column_names)
    with llm_from_args(args) as llm, executor_from_args(args) as executor:
        result = TagsPipeline(llm, config).run(pool, target=target, executor=executor, source=input_name(args.data))
    tree, counts = result.tree, result.report.counts
    print(f"\nknowledge tree: {tree.n_leaves} leaves, {tree.n_nodes} nodes, depth {tree.depth}; levels {tree.level_sizes()}")
    for name, leaves, children in tree.top_branches(5, 4):
        print(f"  {name} ({leaves} leaves): {', '.join(children)}")
    print(f"selection: {counts['selected']} rows, I(S) = {counts['information']:.2f} "
          f"(a random pick of the same size: {counts['random_information']:.2f})")
    if "kl_to_target" in counts:
        print(f"KL(target || selection) = {counts['kl_to_target']:.3f}")
    print_summary(result)
    if args.save_tree:
        print(f"tree saved to {tree.save_pretrained(args.save_tree)}")
    if args.tree_html:
        tree.to_html(args.tree_html)
        print(f"tree picture: {args.tree_html}")
    write_result(result, args)
    if args.push_tree_to:
        print(f"pushed the tree: {tree.push_to_hub(args.push_tree_to, private=args.private or None)}")
    return failed_exit(result, args)


def main(argv: list[str] | None = None) -> int:
    return run_command(run, build_parser().parse_args(argv))
