"""`hf-prefsel tag`: add open intent tags to an instruction dataset and print them with the cost."""

from __future__ import annotations

import argparse
import time

from .common import add_llm_arguments, add_output_arguments, describe_model, is_embedded, llm_from_args, load_data


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="tag_instructions.py", description=__doc__)
    parser.add_argument("--data", required=True, help="a .jsonl/.csv/.parquet file, a saved dataset folder, or a Hub id")
    parser.add_argument("--limit", type=int, default=None, help="tag only the first N rows")
    parser.add_argument("--instruction-column", default="instruction")
    parser.add_argument("--input-column", default="input")
    parser.add_argument("--messages-column", default=None, help="tag the user turns of this chat column instead")
    add_explanations_argument(parser)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--show", type=int, default=20, help="print the tags of this many rows")
    add_llm_arguments(parser)
    add_output_arguments(parser)
    return parser


def add_explanations_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--explanations", choices=["auto", "yes", "no"], default="auto",
                        help="ask the tagger for an explanation per tag (auto: not on the embedded 270M model, "
                             "where explanations cost most of the tokens)")


def wants_explanations(args: argparse.Namespace, llm) -> bool:
    return args.explanations == "yes" or (args.explanations == "auto" and not is_embedded(llm))


def run(args: argparse.Namespace) -> int:
    from ..hub import Provenance, push_dataset, save_dataset
    from ..tacos import OpenTagger

    ds = load_data(args.data, limit=args.limit)
    with llm_from_args(args) as llm:
        tagger = OpenTagger(
            llm, instruction_column=args.instruction_column, input_column=args.input_column,
            messages_column=args.messages_column, explanations=wants_explanations(args, llm), on_bad_row="record",
        )
        start = time.monotonic()
        tagged = ds.map(tagger, batched=True, batch_size=args.batch_size, desc="Tagging")
        elapsed = time.monotonic() - start
        usage = tagger.usage.as_dict()
        model = describe_model(llm)
    for row in tagged.select(range(min(args.show, len(tagged)))):
        text = " ".join(str(row.get(args.instruction_column) or "").split())[:70]
        print(f"{text:<72} -> {row['tags'] or row['tags_error']}")
    failed = sum(bool(e) for e in tagged["tags_error"])
    print(f"\nrows: {len(tagged)}  tagged: {len(tagged) - failed}  failed: {failed}  time: {elapsed:.1f}s  model: {model}")
    print(f"usage: {usage}")
    provenance = Provenance(
        method="open intent tagging (TACOS stage A)",
        papers=[{"title": "TACOS: Open Tagging and Comparative Scoring for Instruction Fine-Tuning Data Selection", "arxiv": "2507.03673"}],
        parameters={"instruction_column": args.instruction_column, "input_column": args.input_column},
        model=model, source=args.data,
        counts={"rows_in": len(ds), "rows_out": len(tagged), "failures": failed, **{f"llm_{k}": v for k, v in usage.items()}},
    )
    if args.output:
        print(f"wrote {save_dataset(tagged, args.output, provenance)}")
    if args.push_to_hub:
        print(f"pushed {push_dataset(tagged, args.push_to_hub, provenance, private=args.private or None)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
