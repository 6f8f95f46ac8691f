"""`hf-prefsel tap`: generate multilingual SFT and preference data from a taxonomy (TaP), with a summary of what was made.

Stages: taxonomy → prompts per leaf (filtered, topped up to quota) → several responses per prompt → per-aspect judging
→ best-vs-worst pairs with a margin. Reruns are free up to where a run stopped: every LLM reply is in the request cache.
"""

from __future__ import annotations

import argparse
import os
import time

from .common import add_llm_arguments, add_output_arguments, endpoint_token, llm_from_args


def _floats(text: str) -> tuple[float, float]:
    parts = [float(p) for p in text.split(",")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError("give LOW,HIGH, e.g. 0.3,1.1")
    return parts[0], parts[1]


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="tap_generate.py", description=__doc__)
    parser.add_argument("--taxonomy", default="default",
                        help="a shipped taxonomy name (default), a .yaml/.json file, a saved folder or a Hub repo id")
    parser.add_argument("--language", default="en", help="language of prompts and responses, e.g. en, zh")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--per-leaf", type=int, default=None, help="prompts per taxonomy leaf (default 2)")
    size.add_argument("--total", type=int, default=None, help="prompts overall, split top-down by the weights")
    parser.add_argument("--responses", type=int, default=2, help="responses per prompt")
    parser.add_argument("--max-leaves", type=int, default=None, help="use only K leaves, spread over the tree")
    parser.add_argument("--leaves", default=None, help="comma-separated leaf ids to use")
    parser.add_argument("--axes", default=None, help="comma-separated axes to cross leaves with ('none' for none; default all)")
    parser.add_argument("--margin", type=float, default=2.0, help="keep a pair only if its overall scores differ by this much (delta)")
    parser.add_argument("--temperatures", type=_floats, default=(0.3, 1.1), metavar="LOW,HIGH",
                        help="response temperatures are spread over this range")
    parser.add_argument("--overall", choices=["judge", "mean"], default="judge",
                        help="overall score: the judge's own, or the mean of the aspect scores")
    parser.add_argument("--format", choices=["standard", "conversational"], default="standard", help="TRL dataset layout")
    parser.add_argument("--sft-min-score", type=float, default=None,
                        help="SFT rows = best response of every prompt scoring at least this (default: chosen side of kept pairs)")
    parser.add_argument("--max-rounds", type=int, default=3, help="prompt top-up rounds per unit")
    parser.add_argument("--prompt-max-tokens", type=int, default=200)
    parser.add_argument("--response-max-tokens", type=int, default=160)
    parser.add_argument("--judge-max-tokens", type=int, default=120)
    parser.add_argument("--rationale", action="store_true",
                        help="the judge also writes a one-sentence rationale (about doubles judging tokens)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of prompt generation")
    parser.add_argument("--judge-endpoint", action="append", default=[], metavar="URL",
                        help="a separate judge model's endpoint (repeat for replicas); default: the generator")
    parser.add_argument("--judge-model", default=None, help="model name for the judge endpoint")
    parser.add_argument("--response-endpoint", action="append", default=[], metavar="URL",
                        help="another model to answer with; responses alternate between the models")
    parser.add_argument("--show", type=int, default=3, help="print this many pairs")
    add_llm_arguments(parser)
    add_output_arguments(parser)
    for action in parser._actions:  # TaP writes a folder, not one file
        if "--output" in action.option_strings:
            action.help = "a folder for preferences/sft/ratings/prompts .jsonl, report.json, taxonomy/ and taxonomy.html"
    return parser


def _configs(args: argparse.Namespace, llm):
    from ..llm import LLMConfig
    from ..tap import JudgeConfig, PairConfig, PromptGenerationConfig, ResponseCandidate, ResponseGenerationConfig, TaPConfig

    candidates = None
    if args.response_endpoint:
        sources = [None] + [
            LLMConfig(endpoints=[url], cache=llm.cache, cache_path=llm.cache_path, token=endpoint_token(args))
            for url in args.response_endpoint
        ]
        lo, hi = args.temperatures
        n = args.responses
        temps = [lo] if n == 1 else [lo + (hi - lo) * i / (n - 1) for i in range(n)]
        candidates = [ResponseCandidate(llm=sources[i % len(sources)], temperature=round(t, 3), seed=i)
                      for i, t in enumerate(temps)]
    axes = None if args.axes is None else ([] if args.axes.strip().lower() == "none" else
                                            [a.strip() for a in args.axes.split(",") if a.strip()])
    return TaPConfig(
        language=args.language,
        per_leaf=args.per_leaf,
        total=args.total,
        max_leaves=args.max_leaves,
        leaves=[x.strip() for x in args.leaves.split(",")] if args.leaves else None,
        prompts=PromptGenerationConfig(max_rounds=args.max_rounds, seed=args.seed, max_tokens=args.prompt_max_tokens, axes=axes),
        responses=ResponseGenerationConfig(n_responses=args.responses, temperatures=tuple(args.temperatures),
                                           candidates=candidates, max_tokens=args.response_max_tokens),
        judge=JudgeConfig(overall=args.overall, rationale=args.rationale, max_tokens=args.judge_max_tokens),
        pairs=PairConfig(margin=args.margin, sft_min_score=args.sft_min_score, format=args.format),
    )


def _short(value, width: int = 90) -> str:
    if isinstance(value, list):
        value = " ".join(m.get("content", "") for m in value)
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..llm import LLMConfig
    from ..tap import TaPPipeline, Taxonomy

    if args.output and os.path.splitext(args.output)[1].lower() in (".jsonl", ".json", ".parquet", ".csv"):
        raise ConfigError(
            f"--output {args.output!r} looks like a file, but TaP writes several datasets (preferences, sft, ratings, "
            "prompts), a report and the taxonomy: pass a folder, e.g. --output out/tap_zh."
        )
    taxonomy = Taxonomy.load(args.taxonomy)
    start = time.monotonic()
    with llm_from_args(args) as llm:
        judge_llm = None
        if args.judge_endpoint:
            judge_llm = LLMConfig(endpoints=args.judge_endpoint, model=args.judge_model, cache=llm.cache,
                                  cache_path=llm.cache_path, token=endpoint_token(args))
        config = _configs(args, llm)
        result = TaPPipeline(llm, config, judge_llm=judge_llm).run(taxonomy)
    elapsed = time.monotonic() - start
    print(result.report.format(result.taxonomy))
    print(f"wall time: {elapsed:.1f}s (including model start-up)")
    for row in result.preferences.select(range(min(args.show, len(result.preferences)))):
        print(f"\n[{row['leaf_id']}] margin {row['margin']:g}\n  prompt:   {_short(row['prompt'])}\n"
              f"  chosen:   {_short(row['chosen'])}\n  rejected: {_short(row['rejected'])}")
    if args.output:
        print(f"\nwrote {result.save(args.output)}")
    if args.push_to_hub:
        print(f"pushed {result.push_to_hub(args.push_to_hub, private=args.private or None)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
