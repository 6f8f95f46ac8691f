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
from collections import Counter
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import ConfigError, HfPrefselError
from .common import add_output_arguments, load_data

SCORERS = ("ratings", "reward-model", "proxy-rm")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The `pd` options; fills `parser` (e.g. a subcommand parser) or a new one."""
    parser = parser or argparse.ArgumentParser(prog="pd_select.py", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--data", required=True, nargs="+", metavar="PATH_OR_ID",
                        help="JSONL file(s) or a folder in our multi-aspect format, a .jsonl/.json/.csv/.parquet file "
                             "(glob allowed), a saved dataset folder, or a Hub dataset id (UltraFeedback, HelpSteer...)")
    parser.add_argument("--split", default="train", help="split of a Hub/local dataset (default: train)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N input rows")
    parser.add_argument("--ratio", type=float, default=0.3, help="share of pairs to keep, λ (default: 0.3)")

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
    sel.add_argument("--stratify-by-aspect", action="store_true", help="keep λ of every aspect instead of ranking globally")
    sel.add_argument("--seed", type=int, default=0, help="seed of the D_k split, tie-breaking and RM training (default: 0)")
    sel.add_argument("--gamma", type=float, default=0.9, help="quantile γ of the gap scales (default: 0.9)")
    sel.add_argument("--pair-mode", choices=("one_per_prompt", "all_pairs"), default="one_per_prompt",
                    help="one pair per prompt (prompt-disjoint D_k) or every response pair (default: one_per_prompt)")
    sel.add_argument("--exclude-aspect", action="append", default=None, metavar="KEY",
                    help="rating key never used as an aspect label (repeatable; default: overall)")
    sel.add_argument("--reference", default="overall",
                    help="rating key used to report conflicts with a holistic judgement (default: overall)")
    sel.add_argument("--batch-size", type=int, default=8, help="reward-model scoring batch size (default: 8)")

    rm = parser.add_argument_group("proxy reward models (--train-proxy-rm)")
    rm.add_argument("--length-penalty", type=float, default=0.005, help="ρ per token (default: 0.005)")
    rm.add_argument("--tau", type=float, default=1.0, help="temperature of length-balanced sampling; 0 disables it")
    rm.add_argument("--sample-ratio", type=float, default=1.0, help="p_r, share of D_k used for training (default: 1)")
    rm.add_argument("--lora", action="store_true", help="train LoRA adapters (peft) instead of the full model")
    rm.add_argument("--rm-epochs", type=float, default=1.0, help="epochs per reward model (default: 1)")
    rm.add_argument("--rm-max-steps", type=int, default=-1, help="steps per reward model, overrides epochs")
    rm.add_argument("--rm-batch-size", type=int, default=8, help="per-device batch size (default: 8)")
    rm.add_argument("--rm-lr", type=float, default=1e-4, help="learning rate (default: 1e-4)")
    rm.add_argument("--rm-max-length", type=int, default=1024, help="max tokens per sequence, training and scoring")
    rm.add_argument("--rm-output-dir", help="save each aspect's reward model under this folder")
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


def load_pairs(args: argparse.Namespace) -> Any:
    """Read `--data` and build the pairs with the matching adapter; returns a `PairSet`."""
    from ..pd import AspectSplitConfig, load_multiaspect_jsonl, to_pairs

    split_config = AspectSplitConfig(
        pair_mode=args.pair_mode,
        seed=args.seed,
        exclude_aspects=tuple(args.exclude_aspect) if args.exclude_aspect else ("overall",),
    )
    if _is_multiaspect(args.data):
        return load_multiaspect_jsonl(args.data, split_config, limit=args.limit)
    import datasets

    parts = [load_data(path, split=args.split) for path in args.data]
    ds = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    if args.limit is not None:
        ds = ds.select(range(min(args.limit, len(ds))))
    return to_pairs(ds, split_config)


def _pairs_arg(values: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for value in values:
        if "=" not in value:
            raise ConfigError(f"{what} must look like ASPECT=VALUE, got {value!r}.")
        key, _, val = value.partition("=")
        out[key.strip()] = val.strip()
    return out


def build_scorer(args: argparse.Namespace, pairs: Any, kind: str, models: list[str]) -> tuple[Any, dict]:
    """The per-aspect scorer, and facts about it for the summary and the dataset card."""
    from ..pd import RatingsScorer

    if kind == "ratings":
        return RatingsScorer(), {"scorer": "ratings"}
    if kind == "reward-model":
        from ..pd import RewardModelScorer

        if all("=" in m for m in models):
            spec: Any = _pairs_arg(models, "--reward-model")
        elif len(models) == 1:
            spec = models[0]
        else:
            raise ConfigError("Give --reward-model once (one model for all aspects) or as ASPECT=PATH for every aspect.")
        index = {k: int(v) for k, v in _pairs_arg(args.output_index, "--output-index").items()}
        scorer = RewardModelScorer(spec, output_index=index or None, batch_size=args.batch_size,
                                   max_length=args.rm_max_length)
        return scorer, {"scorer": "reward-model", "model": models}
    from ..pd import ProxyRMConfig, train_proxy_reward_models

    training_args: dict[str, Any] = {
        "num_train_epochs": args.rm_epochs,
        "max_steps": args.rm_max_steps,
        "per_device_train_batch_size": args.rm_batch_size,
        "learning_rate": args.rm_lr,
        "max_length": args.rm_max_length,
        "logging_steps": 10,
        "disable_tqdm": args.no_progress,
    }
    if args.cpu:
        training_args["use_cpu"] = True
    peft_config = None
    if args.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="SEQ_CLS", r=16, lora_alpha=32, lora_dropout=0.0)
    config = ProxyRMConfig(
        length_penalty=args.length_penalty,
        balance_temperature=args.tau if args.tau > 0 else None,
        sample_ratio=args.sample_ratio,
        output_dir=args.rm_output_dir,
        training_args=training_args,
        seed=args.seed,
    )
    print(f"Training {len(set(pairs.pairs['aspect']))} proxy reward model(s) from {models[0]}...", file=sys.stderr)
    rms = train_proxy_reward_models(pairs.pairs, models[0], config, peft_config=peft_config)
    info = {
        "scorer": "proxy-rm",
        "model": models,
        "lora": bool(args.lora),
        "rm_train_loss": {a: round(float(m.get("train_loss", float("nan"))), 4) for a, m in rms.metrics.items()},
        "rm_train_pairs": {a: s.n_sampled for a, s in rms.balance.items()},
        "rm_longer_winner_share": {
            a: [round(s.f_pos, 3), round(s.n_sampled_pos / max(s.n_sampled, 1), 3)] for a, s in rms.balance.items()
        },
    }
    return rms.scorer(batch_size=args.batch_size, max_length=args.rm_max_length), info


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


def summarize(pairs: Any, result: Any, kept: Any, args: argparse.Namespace, info: dict) -> dict:
    """Print the run summary and return it as a dict (for the dataset card)."""
    from ..pd import conflict_rate, pd_quantiles, reference_conflict_rate
    from ..pd.schema import float_column, string_column

    ds = result.dataset
    pool_pd, kept_pd = float_column(ds, "pd"), float_column(kept, "pd")
    pool_ref, n_ref = reference_conflict_rate(ds, args.reference)
    kept_ref, n_kept_ref = reference_conflict_rate(kept, args.reference)
    per_aspect = pairs.pairs_per_aspect()
    kept_per_aspect = {a: 0 for a in per_aspect}
    kept_per_aspect.update(Counter(string_column(kept, "aspect").tolist()))
    summary = {
        "pairs": len(ds),
        "pairs_per_aspect": per_aspect,
        "kept_per_aspect": kept_per_aspect,
        "bad_rows": dict(pairs.bad_rows.counts),
        "rows_in": pairs.bad_rows.rows_in,
        "pd_scales": {a: round(v, 6) for a, v in result.scales.items()},
        "pd_missing_gaps": result.missing,
        "pd_quantiles": {k: round(v, 4) for k, v in pd_quantiles(pool_pd).items()},
        "pd_quantiles_kept": {k: round(v, 4) for k, v in pd_quantiles(kept_pd).items()},
        "conflict_rate_pool": conflict_rate(pool_pd),
        "conflict_rate_kept": conflict_rate(kept_pd),
        f"{args.reference}_conflict_rate_pool": pool_ref,
        f"{args.reference}_conflict_rate_kept": kept_ref,
        "kept": len(kept),
        "ratio": args.ratio,
        **info,
    }
    print("== PD selection summary ==")
    print(f"rows read: {pairs.bad_rows.rows_in}   pairs: {len(ds)}")
    print("pairs per aspect: " + ", ".join(f"{a}={n}" for a, n in per_aspect.items()))
    if pairs.bad_rows.total:
        print("bad rows by reason: " + ", ".join(f"{r}={n}" for r, n in sorted(pairs.bad_rows.counts.items())))
    else:
        print("bad rows by reason: none")
    if len(result.aspects) < 2:
        print(f"warning: only one aspect ({', '.join(result.aspects)}): PD needs other aspects and is 0 for every pair, "
              "so the selection is a seeded random draw.")
    model = info.get("model")
    print(f"scorer: {info.get('scorer')}" + (f" ({', '.join(model)})" if model else ""))
    for key in ("rm_train_pairs", "rm_train_loss", "rm_longer_winner_share"):
        if key in info:
            print(f"{key}: {json.dumps(info[key])}")
    print("PD scales q_k': " + ", ".join(f"{a}={_fmt(v)}" for a, v in result.scales.items()))
    if any(result.missing.values()):
        print("pairs without a gap (count 0 in PD): " + json.dumps(result.missing))
    span = float(max(1, len(result.aspects) - 1))
    print(f"PD distribution, pool: {_distribution(pool_pd, span)}")
    print(f"PD distribution, kept: {_distribution(kept_pd, span)}")
    print(f"conflict rate (PD > 0): pool {_fmt(summary['conflict_rate_pool'])} -> kept {_fmt(summary['conflict_rate_kept'])}")
    if n_ref:
        print(f"conflict with {args.reference!r} rating: pool {_fmt(pool_ref)} ({n_ref} pairs) "
              f"-> kept {_fmt(kept_ref)} ({n_kept_ref} pairs)")
    print("kept per aspect: " + ", ".join(f"{a}={n}" for a, n in kept_per_aspect.items()))
    how = "stratified by aspect" if args.stratify_by_aspect else "global ranking"
    print(f"kept: {len(kept)} of {len(ds)} pairs (ratio {args.ratio}, {how})")
    return summary


def write_output(kept: Any, args: argparse.Namespace, summary: dict, kind: str, models: list[str]) -> None:
    """Write and/or push the kept pairs with a card recording how they were chosen."""
    if not args.output and not args.push_to_hub:
        print("no --output or --push-to-hub given: nothing written")
        return
    from ..hub import Provenance, push_dataset, save_dataset
    from ..pd import PAPER

    parameters: dict[str, Any] = {
        "ratio": args.ratio,
        "gamma": args.gamma,
        "stratify_by_aspect": args.stratify_by_aspect,
        "pair_mode": args.pair_mode,
        "seed": args.seed,
        "scorer": kind,
    }
    if kind == "proxy-rm":
        parameters.update(length_penalty=args.length_penalty, tau=args.tau, sample_ratio=args.sample_ratio,
                          lora=args.lora)
    counts = {"rows_in": summary["rows_in"], "pairs": summary["pairs"], "rows_out": summary["kept"],
              **{f"bad_{k}": v for k, v in summary["bad_rows"].items()}}
    for key in ("conflict_rate_pool", "conflict_rate_kept"):
        if not np.isnan(summary[key]):
            counts[key] = round(float(summary[key]), 4)
    provenance = Provenance(
        method="PD",
        papers=[dict(PAPER)],
        parameters=parameters,
        model=", ".join(models) if models else None,
        source=" ".join(args.data),
        counts=counts,
        selection_budget=args.ratio,
    )
    if args.output:
        print(f"wrote {len(kept)} pairs to {save_dataset(kept, args.output, provenance)}")
    if args.push_to_hub:
        print(f"pushed to {push_dataset(kept, args.push_to_hub, provenance, private=args.private or None)}")


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
    start = time.monotonic()
    try:
        kind, models = resolve_scorer(args)
        with _progress(not args.no_progress, with_models=kind != "ratings"):
            from ..pd import PDConfig, compute_pd, select_by_pd

            pairs = load_pairs(args)
            if len(pairs.pairs) == 0:
                print(pairs.bad_rows.summary(), file=sys.stderr)
                raise ConfigError("No pairs could be built from --data; see the bad-row report above.")
            scorer, info = build_scorer(args, pairs, kind, models)
            result = compute_pd(pairs.pairs, scorer, PDConfig(gamma=args.gamma, progress=not args.no_progress))
            kept = select_by_pd(
                result.dataset, ratio=args.ratio, stratify_by_aspect=args.stratify_by_aspect, seed=args.seed
            )
            summary = summarize(pairs, result, kept, args, info)
            write_output(kept, args, summary, kind, models)
    except HfPrefselError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"done in {time.monotonic() - start:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
