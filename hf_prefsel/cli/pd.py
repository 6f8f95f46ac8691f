"""`hf-prefsel pd`: select preference pairs by preference divergence (PD) and write the kept subset.

Reads fine-grained preference data (our `preference_multiaspect` JSONL files, UltraFeedback, HelpSteer/HelpSteer2,
or pairwise data with an `aspect` column), splits it into single-aspect subsets D_k, scores every pair under the
other aspects, computes PD and keeps the `--ratio` share with the most negative PD (the most consensus).

Where the per-aspect rewards come from (pick one):

  --from-ratings              the ratings in the data, the paper's PD(rati.) (default)
  --reward-model PATH         an existing reward model: one for every aspect, or repeat as ASPECT=PATH;
                              `--output-index ASPECT=I` names the logit of each aspect of a multi-output model
  --train-proxy-rm BASE       train one length-debiased proxy reward model per aspect (TRL RewardTrainer)

`--scorer ratings|reward-model|proxy-rm` with `--model` is the older, equivalent spelling.

Examples:

  python dataset_scripts/pd_select.py --data ../shared/data/preference_multiaspect/sf_data2text_multiaspect.jsonl \\
      --ratio 0.3 --from-ratings --output out/sf_pd.jsonl
  python dataset_scripts/pd_select.py --data openbmb/UltraFeedback --ratio 0.3 --reward-model path/to/rm \\
      --output-index helpfulness=0 --output-index honesty=1 --output-index instruction_following=2 \\
      --output-index truthfulness=3 --output out/uf_pd.parquet --push-to-hub user/uf-pd
  python dataset_scripts/pd_select.py --data nvidia/HelpSteer2 --ratio 0.5 --train-proxy-rm Qwen/Qwen2.5-1.5B \\
      --lora --rm-epochs 1 --output out/helpsteer2_pd.parquet
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import ConfigError
from ..pd.pipeline import PDPipelineConfig
from .common import add_options, add_output_arguments, check_output, config_from_args, input_name, load_data, run_command

SCORERS = ("ratings", "reward-model", "proxy-rm")
# flag -> PDPipelineConfig field
SELECTION_OPTIONS = {
    "stratify_by_aspect": "stratify_by_aspect", "seed": "seed", "gamma": "divergence.gamma",
    "pair_mode": "split.pair_mode", "reference": "reference", "batch_size": "batch_size",
}
PROXY_OPTIONS = {
    "length_penalty": "proxy.length_penalty", "tau": "proxy.balance_temperature", "sample_ratio": "proxy.sample_ratio",
    "lora": "lora", "rm_max_length": "max_length", "rm_output_dir": "proxy.output_dir",
}


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The `pd` options; fills `parser` (e.g. a subcommand parser) or a new one."""
    parser = parser or argparse.ArgumentParser(prog="pd_select.py", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--data", required=True, nargs="+", metavar="PATH_OR_ID",
                        help="JSONL file(s) or a folder in our multi-aspect format, a .jsonl/.json/.csv/.parquet file "
                             "(glob allowed), a saved dataset folder, or a Hub dataset id (UltraFeedback, HelpSteer...)")
    parser.add_argument("--split", default="train", help="split of a Hub/local dataset (default: train)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N input rows")
    add_options(parser, PDPipelineConfig, {"ratio": "ratio", "budget": "budget"})

    source = parser.add_argument_group("per-aspect rewards (pick one; default --from-ratings)")
    pick = source.add_mutually_exclusive_group()
    pick.add_argument("--from-ratings", action="store_true",
                      help="use the ratings in the data as per-aspect rewards (the paper's PD(rati.))")
    pick.add_argument("--reward-model", action="append", default=[], metavar="PATH|ASPECT=PATH",
                      help="existing sequence-classification reward model(s): one path for all aspects, or repeat "
                           "as ASPECT=PATH, one per aspect")
    pick.add_argument("--train-proxy-rm", metavar="BASE_MODEL",
                      help="train one length-debiased proxy reward model per aspect from this base model")
    source.add_argument("--output-index", action="append", default=[], metavar="ASPECT=INDEX",
                        help="logit index of an aspect in a multi-output reward model (repeatable)")
    source.add_argument("--scorer", choices=SCORERS, default=None,
                        help="older spelling: ratings = --from-ratings, reward-model = --reward-model, "
                             "proxy-rm = --train-proxy-rm (the model then comes from --model)")
    source.add_argument("--model", action="append", default=[], metavar="PATH",
                        help="older spelling, with --scorer: the reward model(s) or the proxy base model")

    sel = parser.add_argument_group("PD and selection")
    add_options(sel, PDPipelineConfig, SELECTION_OPTIONS)
    sel.add_argument("--exclude-aspect", action="append", default=None, metavar="KEY",
                     help="rating key never used as an aspect label (repeatable; default: overall)")

    rm = parser.add_argument_group("proxy reward models (--train-proxy-rm)")
    add_options(rm, PDPipelineConfig, PROXY_OPTIONS, {"tau": "temperature of length-balanced sampling; 0 disables it"})
    rm.add_argument("--rm-epochs", type=float, default=1.0, help="epochs per reward model (default: 1)")
    rm.add_argument("--rm-max-steps", type=int, default=-1, help="steps per reward model, overrides epochs")
    rm.add_argument("--rm-batch-size", type=int, default=8, help="per-device batch size (default: 8)")
    rm.add_argument("--rm-lr", type=float, default=1e-4, help="learning rate (default: 1e-4)")
    rm.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")

    add_output_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def resolve_scorer(args: argparse.Namespace) -> tuple[str, list[str]]:
    """`(kind, models)` from the new flags or the older `--scorer`/`--model` spelling, refusing mixed signals."""
    chosen: dict[str, list[str]] = {}
    if args.from_ratings:
        chosen["ratings"] = []
    if args.reward_model:
        chosen["reward-model"] = list(args.reward_model)
    if args.train_proxy_rm:
        chosen["proxy-rm"] = [args.train_proxy_rm]
    if chosen and args.scorer and args.scorer not in chosen:
        flag = {"ratings": "--from-ratings", "reward-model": "--reward-model", "proxy-rm": "--train-proxy-rm"}
        raise ConfigError(f"--scorer {args.scorer} contradicts {flag[next(iter(chosen))]}; give one of them.")
    kind = next(iter(chosen), None) or args.scorer or "ratings"
    models = chosen.get(kind) or []
    if args.model:
        if models:
            raise ConfigError("Give the model once: with --reward-model/--train-proxy-rm, or with --model, not both.")
        if kind == "ratings":
            raise ConfigError("--model needs --scorer reward-model or proxy-rm; ratings need no model.")
        models = list(args.model)
    if kind == "reward-model" and not models:
        raise ConfigError("Reward-model scoring needs a model: --reward-model PATH (or ASPECT=PATH per aspect).")
    if kind == "proxy-rm":
        if len(models) != 1:
            raise ConfigError("Proxy reward models need one base model: --train-proxy-rm BASE_MODEL.")
    return kind, models


def _is_multiaspect(paths: Sequence[str]) -> bool:
    """Whether `paths` are our `preference_multiaspect` JSONL files (or folders of them), read by our adapter."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            if any(os.path.exists(os.path.join(path, m)) for m in ("state.json", "dataset_dict.json")):
                return False  # a `save_to_disk` folder
            files.extend(sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".jsonl")))
        elif os.path.isfile(path) and path.endswith(".jsonl"):
            files.append(path)
        else:
            return False
    if not files:
        return False
    with open(files[0], encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(row, dict) and "prompt" in row and isinstance(row.get("responses"), list)
    return False


def pd_config(args: argparse.Namespace) -> PDPipelineConfig:
    """The `PDPipelineConfig` of the parsed options (checked before any data is read)."""
    kind, models = resolve_scorer(args)
    fixed: dict[str, Any] = {"scorer": kind}
    if kind == "reward-model":
        fixed["reward_models"] = models
        fixed["output_index"] = {k: int(v) for k, v in _pairs_arg(args.output_index, "--output-index").items()}
    elif kind == "proxy-rm":
        fixed["proxy_base_model"] = models[0]
        training_args: dict[str, Any] = {
            "num_train_epochs": args.rm_epochs, "max_steps": args.rm_max_steps,
            "per_device_train_batch_size": args.rm_batch_size, "learning_rate": args.rm_lr,
            "max_length": args.rm_max_length or 1024, "logging_steps": 10, "disable_tqdm": args.no_progress,
        }
        if args.cpu:
            training_args["use_cpu"] = True
        fixed["proxy.training_args"] = training_args
        if args.tau is not None and args.tau <= 0:
            fixed["proxy.balance_temperature"] = None
    if args.exclude_aspect:
        fixed["split.exclude_aspects"] = tuple(args.exclude_aspect)
    return config_from_args(PDPipelineConfig, args, {**SELECTION_OPTIONS, **PROXY_OPTIONS, "ratio": "ratio",
                                                     "budget": "budget"}, **fixed)


def load_pairs(args: argparse.Namespace, config: PDPipelineConfig) -> Any:
    """Read `--data` and build the pairs with the matching adapter; returns a `PairSet`."""
    from ..pd import load_multiaspect_jsonl
    from ..pd.pipeline import PDPipeline

    pipeline = PDPipeline(config)
    if _is_multiaspect(args.data):
        return load_multiaspect_jsonl(args.data, pipeline.split_config(), limit=args.limit)
    import datasets

    parts = [load_data(path, split=args.split) for path in args.data]
    ds = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    if args.limit is not None:
        ds = ds.select(range(min(args.limit, len(ds))))
    return pipeline.pairs(ds)


def _pairs_arg(values: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for value in values:
        if "=" not in value:
            raise ConfigError(f"{what} must look like ASPECT=VALUE, got {value!r}.")
        key, _, val = value.partition("=")
        out[key.strip()] = val.strip()
    return out


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def _distribution(values: np.ndarray, span: float) -> str:
    """Mean, quantiles and an 8-bin histogram over [-span, span] of PD values, on one line."""
    if not len(values):
        return "empty"
    qs = np.quantile(values, [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    counts, _ = np.histogram(np.clip(values, -span, span), bins=8, range=(-span, span))
    return (f"mean {values.mean():.3f}; min {qs[0]:.3f} q10 {qs[1]:.3f} q25 {qs[2]:.3f} median {qs[3]:.3f} "
            f"q75 {qs[4]:.3f} q90 {qs[5]:.3f} max {qs[6]:.3f}; histogram over [{-span:g}, {span:g}] in 8 bins: "
            + " ".join(str(int(c)) for c in counts))


def summarize(result: Any, args: argparse.Namespace) -> None:
    """Print the run summary."""
    from ..pd.divergence import reference_conflict_rate
    from ..pd.schema import float_column

    pairs, divergence, kept, info = result.pairs, result.divergence, result.dataset, result.scorer_info
    ds = result.scored
    reference = result.parameters.get("reference") or (args.reference or "overall")
    pool_pd, kept_pd = float_column(ds, "pd"), float_column(kept, "pd")
    pool_ref, n_ref = reference_conflict_rate(ds, reference)
    kept_ref, n_kept_ref = reference_conflict_rate(kept, reference)
    per_aspect = pairs.pairs_per_aspect()
    kept_per_aspect = {a: 0 for a in per_aspect}
    kept_per_aspect.update(result.report.counts.get("kept_per_aspect", {}))
    counts = result.report.counts
    print("== PD selection summary ==")
    print(f"rows read: {pairs.bad_rows.rows_in}   pairs: {len(ds)}")
    print("pairs per aspect: " + ", ".join(f"{a}={n}" for a, n in per_aspect.items()))
    if pairs.bad_rows.total:
        print("bad rows by reason: " + ", ".join(f"{r}={n}" for r, n in sorted(pairs.bad_rows.counts.items())))
    else:
        print("bad rows by reason: none")
    for note in result.report.notes:
        print(f"warning: {note}")
    model = info.get("model")
    print(f"scorer: {info.get('scorer')}" + (f" ({', '.join(model)})" if model else ""))
    for key in ("rm_train_pairs", "rm_train_loss", "rm_longer_winner_share"):
        if key in info:
            print(f"{key}: {json.dumps(info[key])}")
    print("PD scales q_k': " + ", ".join(f"{a}={_fmt(v)}" for a, v in divergence.scales.items()))
    if any(divergence.missing.values()):
        print("pairs without a gap (count 0 in PD): " + json.dumps(divergence.missing))
    span = float(max(1, len(divergence.aspects) - 1))
    print(f"PD distribution, pool: {_distribution(pool_pd, span)}")
    print(f"PD distribution, kept: {_distribution(kept_pd, span)}")
    print(f"conflict rate (PD > 0): pool {_fmt(counts.get('conflict_rate_pool'))} -> kept {_fmt(counts.get('conflict_rate_kept'))}")
    if n_ref:
        print(f"conflict with {reference!r} rating: pool {_fmt(pool_ref)} ({n_ref} pairs) "
              f"-> kept {_fmt(kept_ref)} ({n_kept_ref} pairs)")
    print("kept per aspect: " + ", ".join(f"{a}={n}" for a, n in kept_per_aspect.items()))
    how = "stratified by aspect" if result.parameters.get("stratify_by_aspect") else "global ranking"
    size = f"ratio {result.parameters['ratio']}" if result.parameters.get("budget") is None else f"budget {result.parameters['budget']}"
    print(f"kept: {len(kept)} of {len(ds)} pairs ({size}, {how})")


@contextlib.contextmanager
def _progress(enabled: bool, with_models: bool) -> Iterator[None]:
    """Turn the `datasets` progress bars (used by our adapters and scorers too) and, when models are loaded, the
    `transformers` ones off for the run, then restore them."""
    from datasets.utils import disable_progress_bars, enable_progress_bars, is_progress_bar_enabled

    switches = [(is_progress_bar_enabled, disable_progress_bars, enable_progress_bars)]
    if with_models:  # importing transformers costs a second; the ratings path never needs it
        from transformers.utils import logging as hf_logging

        switches.append((hf_logging.is_progress_bar_enabled, hf_logging.disable_progress_bar,
                         hf_logging.enable_progress_bar))
    restore = []
    if not enabled:
        for is_enabled, disable, enable in switches:
            if is_enabled():
                disable()
                restore.append(enable)
    try:
        yield
    finally:
        for enable in restore:
            enable()


def run(args: argparse.Namespace) -> int:
    """Load, score, compute PD, select, summarize, write. Returns the exit code (2 on a usage or data error)."""
    from ..pd.pipeline import PDPipeline

    start = time.monotonic()
    config = pd_config(args)
    check_output(args.output, list(args.data))
    with _progress(not args.no_progress, with_models=config.scorer != "ratings"):
        pairs = load_pairs(args, config)
        if len(pairs.pairs) == 0:
            print(pairs.bad_rows.summary(), file=sys.stderr)
            raise ConfigError("No pairs could be built from --data; see the bad-row report above.")
        if config.scorer == "proxy-rm":
            print(f"Training {len(set(pairs.pairs['aspect']))} proxy reward model(s) from {config.proxy_base_model}...",
                  file=sys.stderr)
        result = PDPipeline(config).run(pairs, progress=not args.no_progress,
                                        source=" ".join(input_name(p) for p in args.data))
        summarize(result, args)
        if not args.output and not args.push_to_hub:
            print("no --output or --push-to-hub given: nothing written")
        else:
            from .common import write_result

            write_result(result, args)
    print(f"done in {time.monotonic() - start:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(run, build_parser().parse_args(argv))
