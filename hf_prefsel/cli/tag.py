"""`hf-prefsel tag`: add open intent tags to an instruction dataset and print them with the cost (TACOS stage A)."""

from __future__ import annotations

import argparse

from .common import (
    add_executor_arguments, add_llm_arguments, add_options, add_output_arguments, check_executor, check_output,
    config_from_args, executor_from_args, failed_exit, input_name, llm_from_args, load_data, print_summary, run_command,
    write_result,
)

# flag -> TacosConfig field: the tagging stage's options
OPTIONS = {
    "instruction_column": "instruction_column", "input_column": "input_column", "messages_column": "messages_column",
    "explanations": "explanations", "batch_size": "batch_size",
}


def add_data_arguments(parser: argparse.ArgumentParser, what: str = "rows") -> None:
    parser.add_argument("--data", required=True, help="a .jsonl/.json/.csv/.parquet file (or glob), a saved dataset folder, or a Hub id")
    parser.add_argument("--limit", type=int, default=None, help=f"use only the first N {what}")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    from ..tacos.pipeline import TacosConfig

    parser = parser or argparse.ArgumentParser(prog="tag_instructions.py", description=__doc__)
    add_data_arguments(parser)
    add_options(parser, TacosConfig, OPTIONS)
    parser.add_argument("--show", type=int, default=20, help="print the tags of this many rows")
    add_llm_arguments(parser)
    add_executor_arguments(parser)
    add_output_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..tacos.pipeline import TacosConfig, TacosPipeline

    config = config_from_args(TacosConfig, args, OPTIONS, ratio=1.0)
    check_output(args.output, [args.data])
    check_executor(args)
    ds = load_data(args.data, limit=args.limit)
    option = "messages_column" if config.messages_column else "instruction_column"
    column = getattr(config, option)
    if column not in ds.column_names:
        from ..errors import MissingColumnError

        raise MissingColumnError(column, ds.column_names, option=option)
    with llm_from_args(args) as llm, executor_from_args(args) as executor:
        result = TacosPipeline(llm, config).tag(ds, executor=executor, source=input_name(args.data))
    tagged = result.dataset
    column = config.messages_column or config.instruction_column
    for row in tagged.select(range(min(args.show, len(tagged)))):
        text = " ".join(str(row.get(column) or "").split())[:70]
        print(f"{text:<72} -> {row['tags'] or row['tags_error']}")
    print_summary(result)
    write_result(result, args)
    return failed_exit(result, args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(run, args)
