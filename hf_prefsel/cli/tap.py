"""`hf-prefsel tap`: generate multilingual SFT and preference data from a taxonomy (TaP), with a summary of what was made.

Stages: taxonomy → prompts per leaf (filtered, topped up to quota) → several responses per prompt → per-aspect judging
→ best-vs-worst pairs with a margin. Reruns are free up to where a run stopped: every LLM reply is in the request cache.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from .common import (
    add_llm_arguments, add_options, add_output_arguments, check_output, config_from_args, endpoint_token, failed_exit,
    llm_from_args, run_command, write_result,
)


def _floats(text: str) -> tuple[float, float]:
    parts = [float(p) for p in text.split(",")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError("give LOW,HIGH, e.g. 0.3,1.1")
    return parts[0], parts[1]


# flag -> TaPConfig field
OPTIONS = {
    "language": "language", "per_leaf": "per_leaf", "total": "total", "max_leaves": "max_leaves",
    "responses": "responses.n_responses", "margin": "pairs.margin", "overall": "judge.overall", "format": "pairs.format",
    "sft_min_score": "pairs.sft_min_score", "max_rounds": "prompts.max_rounds", "prompt_max_tokens": "prompts.max_tokens",
    "response_max_tokens": "responses.max_tokens", "judge_max_tokens": "judge.max_tokens", "rationale": "judge.rationale",
    "seed": "prompts.seed",
}


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    from ..tap import TaPConfig

    parser = parser or argparse.ArgumentParser(prog="tap_generate.py", description=__doc__)
    parser.add_argument("--taxonomy", default="default",
                        help="a shipped taxonomy name (default), a .yaml/.json file, a saved folder or a Hub repo id")
    add_options(parser.add_argument_group("method"), TaPConfig, OPTIONS)
    parser.add_argument("--leaves", default=None, help="comma-separated leaf ids to use")
    parser.add_argument("--axes", default=None, help="comma-separated axes to cross leaves with ('none' for none; default all)")
    parser.add_argument("--temperatures", type=_floats, default=None, metavar="LOW,HIGH",
                        help="response temperatures are spread over this range (default: 0.3,1.1)")
    parser.add_argument("--judge-endpoint", action="append", default=[], metavar="URL",
                        help="a separate judge model's endpoint (repeat for replicas); default: the generator")
    parser.add_argument("--judge-model", default=None, help="model name for the judge endpoint")
    parser.add_argument("--response-endpoint", action="append", default=[], metavar="URL",
                        help="another model to answer with; responses alternate between the models")
    parser.add_argument("--show", type=int, default=3, help="print this many pairs")
    add_llm_arguments(parser)
    add_output_arguments(parser, folder_only=True)
    return parser


def _config(args: argparse.Namespace, llm: Any = None) -> Any:
    """The `TaPConfig` of the options (checked before any server starts; response endpoints need `llm`'s cache)."""
    from ..llm import LLMConfig
    from ..tap import ResponseCandidate, TaPConfig

    fixed: dict[str, Any] = {}
    if args.leaves:
        fixed["leaves"] = [x.strip() for x in args.leaves.split(",") if x.strip()]
    if args.axes is not None:
        fixed["prompts.axes"] = [] if args.axes.strip().lower() == "none" else [a.strip() for a in args.axes.split(",") if a.strip()]
    if args.temperatures is not None:
        fixed["responses.temperatures"] = tuple(args.temperatures)
    config = config_from_args(TaPConfig, args, OPTIONS, **fixed)
    if args.response_endpoint and llm is not None:
        sources = [None] + [LLMConfig(endpoints=[url], cache=llm.cache, cache_path=llm.cache_path, token=endpoint_token(args))
                            for url in args.response_endpoint]
        lo, hi = config.responses.temperatures
        n = config.responses.n_responses
        temps = [lo] if n == 1 else [lo + (hi - lo) * i / (n - 1) for i in range(n)]
        config.responses.candidates = [ResponseCandidate(llm=sources[i % len(sources)], temperature=round(t, 3), seed=i)
                                       for i, t in enumerate(temps)]
    return config


def _short(value, width: int = 90) -> str:
    if isinstance(value, list):
        value = " ".join(m.get("content", "") for m in value)
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def run(args: argparse.Namespace) -> int:
    from ..llm import LLMConfig
    from ..tap import TaPPipeline, Taxonomy

    _config(args)  # every option checked before the taxonomy is read or a server starts
    check_output(args.output, folder_only=True)
    taxonomy = Taxonomy.load(args.taxonomy)
    start = time.monotonic()
    with llm_from_args(args) as llm:
        judge_llm = None
        if args.judge_endpoint:
            judge_llm = LLMConfig(endpoints=args.judge_endpoint, model=args.judge_model, cache=llm.cache,
                                  cache_path=llm.cache_path, token=endpoint_token(args))
        result = TaPPipeline(llm, _config(args, llm), judge_llm=judge_llm).run(taxonomy)
    elapsed = time.monotonic() - start
    print(result.report.format(result.taxonomy))
    print(f"wall time: {elapsed:.1f}s (including model start-up)")
    for row in result.preferences.select(range(min(args.show, len(result.preferences)))):
        print(f"\n[{row['leaf_id']}] margin {row['margin']:g}\n  prompt:   {_short(row['prompt'])}\n"
              f"  chosen:   {_short(row['chosen'])}\n  rejected: {_short(row['rejected'])}")
    print("\n" + result.summary_line())
    write_result(result, args)
    return failed_exit(result.run_report(), args)


def main(argv: list[str] | None = None) -> int:
    return run_command(run, build_parser().parse_args(argv))
