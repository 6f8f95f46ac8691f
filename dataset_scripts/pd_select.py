#!/usr/bin/env python
"""Select preference pairs by preference divergence (PD) and write the kept subset.

Reads fine-grained preference data (our `preference_multiaspect` JSONL files, UltraFeedback, HelpSteer/HelpSteer2,
or pairwise data with an `aspect` column), splits it into single-aspect subsets D_k, scores every pair under the
other aspects (ratings in the data, proxy reward models trained here, or an existing reward model), computes PD and
keeps the `--ratio` share with the most negative PD.

Examples:

    # PD(rati.): ratings as the per-aspect proxy
    python dataset_scripts/pd_select.py --data ../shared/data/preference_multiaspect/sf_data2text_multiaspect.jsonl \\
        --ratio 0.3 --scorer ratings --output out/sf_pd.jsonl

    # proxy reward models, one per aspect, trained with TRL's RewardTrainer (LoRA optional)
    python dataset_scripts/pd_select.py --data nvidia/HelpSteer2 --ratio 0.5 --scorer proxy-rm \\
        --model Qwen/Qwen2.5-1.5B --lora --rm-epochs 1 --output out/helpsteer2_pd.parquet

    # an existing multi-head reward model, one logit per aspect
    python dataset_scripts/pd_select.py --data openbmb/UltraFeedback --scorer reward-model --model path/to/rm \\
        --output-index helpfulness=0 --output-index honesty=1 --output-index instruction_following=2 \\
        --output-index truthfulness=3 --output out/uf_pd.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Sequence

import numpy as np

from hf_prefsel.errors import ConfigError, HfPrefselError
from hf_prefsel.pd import (
    PAPER,
    AspectSplitConfig,
    PairSet,
    PDConfig,
    RatingsScorer,
    compute_pd,
    conflict_rate,
    load_multiaspect_jsonl,
    pd_quantiles,
    reference_conflict_rate,
    select_by_pd,
    to_pairs,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True, nargs="+", help="JSONL file(s)/folder in our multi-aspect format, a local "
                   ".parquet/.json file, or a Hub dataset id (UltraFeedback, HelpSteer, ...).")
    p.add_argument("--split", default="train", help="Split of a Hub/local dataset (default: train).")
    p.add_argument("--ratio", type=float, default=0.3, help="Share of pairs to keep, λ (default: 0.3).")
    p.add_argument("--scorer", choices=("ratings", "proxy-rm", "reward-model"), default="ratings",
                   help="Where per-aspect reward gaps come from (default: ratings, the paper's PD(rati.)).")
    p.add_argument("--model", action="append", default=[], help="proxy-rm: base model path/id. reward-model: one "
                   "model for all aspects, or repeat as ASPECT=PATH for one model per aspect.")
    p.add_argument("--output-index", action="append", default=[], metavar="ASPECT=INDEX",
                   help="reward-model: logit index of an aspect in a multi-output model (repeatable).")
    p.add_argument("--output", help="Where to write the kept pairs (.jsonl, .json or .parquet).")
    p.add_argument("--push-to-hub", metavar="REPO_ID",
                   help="Also push the kept pairs (with a card) to this dataset repo.")
    p.add_argument("--stratify-by-aspect", action="store_true",
                   help="Keep λ of every aspect instead of ranking globally.")
    p.add_argument("--seed", type=int, default=0,
                   help="Seed of the D_k split, tie-breaking and RM training (default: 0).")
    p.add_argument("--gamma", type=float, default=0.9, help="Quantile γ of the gap scales (default: 0.9).")
    p.add_argument("--pair-mode", choices=("one_per_prompt", "all_pairs"), default="one_per_prompt",
                   help="One pair per prompt (prompt-disjoint D_k) or every response pair (default: one_per_prompt).")
    p.add_argument("--exclude-aspect", action="append", default=None,
                   help="Rating key never used as an aspect label (repeatable; default: overall).")
    p.add_argument("--reference", default="overall", help="Rating key used to report conflicts with a holistic "
                   "judgement before/after selection (default: overall).")
    rm = p.add_argument_group("proxy reward models (--scorer proxy-rm)")
    rm.add_argument("--length-penalty", type=float, default=0.005, help="ρ per token (default: 0.005).")
    rm.add_argument("--tau", type=float, default=1.0, help="Temperature of length-balanced sampling; 0 disables it.")
    rm.add_argument("--sample-ratio", type=float, default=1.0, help="p_r, share of D_k used for training (default: 1).")
    rm.add_argument("--lora", action="store_true", help="Train LoRA adapters (peft) instead of the full model.")
    rm.add_argument("--rm-epochs", type=float, default=1.0, help="Epochs per reward model (default: 1).")
    rm.add_argument("--rm-max-steps", type=int, default=-1, help="Steps per reward model, overrides epochs.")
    rm.add_argument("--rm-batch-size", type=int, default=8, help="Per-device batch size (default: 8).")
    rm.add_argument("--rm-lr", type=float, default=1e-4, help="Learning rate (default: 1e-4).")
    rm.add_argument("--rm-max-length", type=int, default=1024, help="Max tokens per sequence (default: 1024).")
    rm.add_argument("--rm-output-dir", help="Save each aspect's reward model under this folder.")
    rm.add_argument("--cpu", action="store_true", help="Force CPU training even if a GPU is present.")
    p.add_argument("--batch-size", type=int, default=8, help="Reward-model scoring batch size (default: 8).")
    p.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    return p.parse_args(argv)


def load_pairs(args: argparse.Namespace) -> PairSet:
    """Read `--data` with the matching adapter."""
    split_config = AspectSplitConfig(
        pair_mode=args.pair_mode,
        seed=args.seed,
        exclude_aspects=tuple(args.exclude_aspect) if args.exclude_aspect else ("overall",),
    )
    data = args.data
    if all(os.path.isdir(d) or (os.path.isfile(d) and d.endswith(".jsonl")) for d in data):
        return load_multiaspect_jsonl(data, split_config)
    import datasets

    if all(os.path.isfile(d) for d in data):
        ext = os.path.splitext(data[0])[1].lstrip(".")
        builder = {"jsonl": "json", "json": "json", "parquet": "parquet", "csv": "csv"}.get(ext)
        if builder is None:
            raise ConfigError(f"Unsupported file type {data[0]!r}; use .jsonl, .json, .parquet or .csv.")
        ds = datasets.load_dataset(builder, data_files=list(data), split="train")
    elif len(data) == 1:
        ds = datasets.load_dataset(data[0], split=args.split)
    else:
        raise ConfigError("Pass local files, or exactly one Hub dataset id, to --data.")
    return to_pairs(ds, split_config)


def _pairs_arg(values: list[str], what: str) -> dict[str, str]:
    out = {}
    for value in values:
        if "=" not in value:
            raise ConfigError(f"{what} must look like ASPECT=VALUE, got {value!r}.")
        key, _, val = value.partition("=")
        out[key.strip()] = val.strip()
    return out


def build_scorer(args: argparse.Namespace, pairs: PairSet) -> tuple[Any, dict]:
    """The per-aspect scorer `--scorer` asks for, and a few facts about it for the summary and the card."""
    if args.scorer == "ratings":
        return RatingsScorer(), {"scorer": "ratings"}
    if not args.model:
        raise ConfigError(f"--scorer {args.scorer} needs --model.")
    if args.scorer == "reward-model":
        from hf_prefsel.pd import RewardModelScorer

        if all("=" in m for m in args.model):
            models: Any = _pairs_arg(args.model, "--model")
        elif len(args.model) == 1:
            models = args.model[0]
        else:
            raise ConfigError("Give --model once (one model for all aspects) or as ASPECT=PATH for every aspect.")
        index = {k: int(v) for k, v in _pairs_arg(args.output_index, "--output-index").items()}
        scorer = RewardModelScorer(models, output_index=index or None, batch_size=args.batch_size,
                                   max_length=args.rm_max_length)
        return scorer, {"scorer": "reward-model", "model": args.model}
    from hf_prefsel.pd import ProxyRMConfig, train_proxy_reward_models

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
    rms = train_proxy_reward_models(pairs.pairs, args.model[0], config, peft_config=peft_config)
    info = {
        "scorer": "proxy-rm",
        "model": args.model[0],
        "lora": bool(args.lora),
        "rm_train_loss": {a: round(float(m.get("train_loss", float("nan"))), 4) for a, m in rms.metrics.items()},
        "rm_train_pairs": {a: s.n_sampled for a, s in rms.balance.items()},
        "rm_longer_winner_share": {
            a: [round(s.f_pos, 3), round(s.n_sampled_pos / max(s.n_sampled, 1), 3)] for a, s in rms.balance.items()
        },
    }
    return rms.scorer(batch_size=args.batch_size, max_length=args.rm_max_length), info


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def summarize(pairs: PairSet, result: Any, kept: Any, args: argparse.Namespace, info: dict) -> dict:
    """Print the run summary and return it as a dict (for the dataset card)."""
    ds = result.dataset
    pool_ref, n_ref = reference_conflict_rate(ds, args.reference)
    kept_ref, n_kept_ref = reference_conflict_rate(kept, args.reference)
    summary = {
        "pairs": len(ds),
        "pairs_per_aspect": pairs.pairs_per_aspect(),
        "bad_rows": dict(pairs.bad_rows.counts),
        "rows_in": pairs.bad_rows.rows_in,
        "pd_scales": {a: round(v, 6) for a, v in result.scales.items()},
        "pd_missing_gaps": result.missing,
        "pd_quantiles": {k: round(v, 4) for k, v in pd_quantiles(ds).items()},
        "conflict_rate_pool": conflict_rate(ds),
        "conflict_rate_kept": conflict_rate(kept),
        f"{args.reference}_conflict_rate_pool": pool_ref,
        f"{args.reference}_conflict_rate_kept": kept_ref,
        "kept": len(kept),
        "ratio": args.ratio,
        **info,
    }
    print("== PD selection summary ==")
    print(f"rows read: {pairs.bad_rows.rows_in}   pairs: {len(ds)}")
    print("pairs per aspect: " + ", ".join(f"{a}={n}" for a, n in pairs.pairs_per_aspect().items()))
    if pairs.bad_rows.total:
        print("bad rows by reason: " + ", ".join(f"{r}={n}" for r, n in sorted(pairs.bad_rows.counts.items())))
    else:
        print("bad rows by reason: none")
    if len(result.aspects) < 2:
        print(f"warning: only one aspect ({', '.join(result.aspects)}): PD needs other aspects and is 0 for every pair, "
              "so the selection is a seeded random draw.")
    print(f"scorer: {info.get('scorer')}" + (f" ({info.get('model')})" if info.get("model") else ""))
    for key in ("rm_train_pairs", "rm_train_loss", "rm_longer_winner_share"):
        if key in info:
            print(f"{key}: {json.dumps(info[key])}")
    print("PD scales q_k': " + ", ".join(f"{a}={_fmt(v)}" for a, v in result.scales.items()))
    if any(result.missing.values()):
        print("pairs without a gap (count 0 in PD): " + json.dumps(result.missing))
    print("PD quantiles: " + ", ".join(f"{k}={v:.3f}" for k, v in pd_quantiles(ds).items()))
    pool_pd, kept_pd = _fmt(summary["conflict_rate_pool"]), _fmt(summary["conflict_rate_kept"])
    print(f"conflict rate (PD > 0): pool {pool_pd} -> kept {kept_pd}")
    if n_ref:
        print(f"conflict with {args.reference!r} rating: pool {_fmt(pool_ref)} ({n_ref} pairs) "
              f"-> kept {_fmt(kept_ref)} ({n_kept_ref} pairs)")
    how = ", stratified by aspect" if args.stratify_by_aspect else ""
    print(f"selected: {len(kept)} of {len(ds)} (ratio {args.ratio}{how})")
    return summary


def write_output(kept: Any, args: argparse.Namespace, summary: dict) -> None:
    """Write (and optionally push) the kept pairs with a card recording how they were chosen."""
    provenance = None
    try:
        from hf_prefsel.hub import Provenance, push_dataset, save_dataset
    except ImportError:  # the hub layer is optional for this script
        save_dataset = push_dataset = Provenance = None  # type: ignore[assignment]
    if Provenance is not None:
        provenance = Provenance(
            method="PD",
            papers=[dict(PAPER)],
            parameters={
                "ratio": args.ratio,
                "gamma": args.gamma,
                "stratify_by_aspect": args.stratify_by_aspect,
                "pair_mode": args.pair_mode,
                "seed": args.seed,
                "scorer": args.scorer,
                **({"length_penalty": args.length_penalty, "tau": args.tau, "sample_ratio": args.sample_ratio,
                    "lora": args.lora} if args.scorer == "proxy-rm" else {}),
            },
            model=", ".join(args.model) if args.model else None,
            source=" ".join(args.data),
            counts={"rows_in": summary["rows_in"], "pairs": summary["pairs"], "rows_out": summary["kept"],
                    **{f"bad_{k}": v for k, v in summary["bad_rows"].items()}},
            selection_budget=args.ratio,
        )
    if args.output:
        if save_dataset is not None:
            path = save_dataset(kept, args.output, provenance)
        else:
            path = args.output
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            if path.endswith(".parquet"):
                kept.to_parquet(path)
            else:
                kept.to_json(path, lines=not path.endswith(".json"))
        print(f"wrote {len(kept)} pairs to {path}")
    if args.push_to_hub:
        if push_dataset is None:
            raise ConfigError("--push-to-hub needs hf_prefsel.hub, which could not be imported.")
        url = push_dataset(kept, args.push_to_hub, provenance)
        print(f"pushed to {url}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.time()
    try:
        pairs = load_pairs(args)
        if len(pairs.pairs) == 0:
            print(pairs.bad_rows.summary(), file=sys.stderr)
            raise ConfigError("No pairs could be built from --data; see the bad-row report above.")
        scorer, info = build_scorer(args, pairs)
        result = compute_pd(pairs.pairs, scorer, PDConfig(gamma=args.gamma, progress=not args.no_progress))
        kept = select_by_pd(
            result.dataset, ratio=args.ratio, stratify_by_aspect=args.stratify_by_aspect, seed=args.seed
        )
        summary = summarize(pairs, result, kept, args, info)
        write_output(kept, args, summary)
    except HfPrefselError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"done in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
