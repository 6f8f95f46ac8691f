"""Scale benchmark of PD: preference divergence + selection at 1M pairs × 5 aspects, and reward-model scoring.

Goal (issue 6): PD computation and selection for 1M pairs × 5 aspects given reward scores in <= 30 s on 2 cores.

What is timed, exactly:

1. `data` (not in the headline) — a synthetic pool in the internal pairwise form: N pairs, K aspects, each pair
   labelled for one aspect; every response has a reward score per aspect (a shared quality term plus aspect noise,
   so aspects mostly agree and some pairs conflict), stored in `chosen_ratings` / `rejected_ratings`, the columns
   `RatingsScorer` reads: "given reward scores" means scores already computed, e.g. by a reward model earlier.
2. `pd_core` — the vectorised formula alone on NumPy arrays: `preference_divergence` (scales, clipping, sum) and
   `rank_select` of the 30 % most negative PD.
3. `compute_pd` — the library path on the `Dataset`: gaps read from the score columns, PD, and the new columns
   (`pd`, `pd_num_aspects`, `reward_gaps`, `reward_margin`) added to the dataset.
4. `select_by_pd` — keep 30 % by global ranking (the headline) and, for reference, stratified by aspect.
5. `rm_scoring` — a tiny random Llama (hidden 64, 2 layers, BPE vocabulary of 512 trained here; no downloads)
   as a sequence-classification reward model, one per aspect, scoring M real pairs from
   ../shared/data/preference_multiaspect (synthetic text if absent) under every aspect via `compute_pd` and
   `RewardModelScorer`. Reported as scored sequences/s and pair-aspects/s, extrapolated to N pairs × K aspects.
   It shows the cost of the pipeline around the model; a 1-3B reward model is orders of magnitude slower and
   belongs on a GPU.

Usage:
    python benchmarks/pd_scale.py            # 1M pairs × 5 aspects, 256 pairs through the tiny reward model
    python benchmarks/pd_scale.py --quick    # 20k pairs, 16 pairs through the tiny reward model

Each step prints wall and CPU seconds and its peak RSS; the last line is the headline
`pd_select_1m_pairs_seconds: <value>` (`compute_pd` + global `select_by_pd`; `pd_select_quick_seconds` with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from _measure import Steps

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
MULTIASPECT = REPO.parent / "shared" / "data" / "preference_multiaspect"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")








def synthetic_pool(n: int, k: int, seed: int = 0) -> tuple[Any, list[str]]:
    """N pairs × K aspects with per-response reward scores (see the module docstring), as a `Dataset`."""
    import pyarrow as pa
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    aspects = [f"aspect_{j}" for j in range(k)]
    own = rng.integers(0, k, n)
    quality = rng.normal(size=(n, 2, 1))  # shared quality of the two responses: aspects tend to agree
    scores = quality + 0.8 * rng.normal(size=(n, 2, k))
    first_wins = scores[np.arange(n), 0, own] >= scores[np.arange(n), 1, own]
    chosen = np.where(first_wins[:, None], scores[:, 0, :], scores[:, 1, :])
    rejected = np.where(first_wins[:, None], scores[:, 1, :], scores[:, 0, :])
    ids = pa.array([f"bench-{i}" for i in range(n)])

    def struct(m: np.ndarray) -> pa.StructArray:
        return pa.StructArray.from_arrays([pa.array(m[:, j]) for j in range(k)], names=aspects)

    table = pa.table({
        "pair_id": ids,
        "prompt_id": ids,
        "prompt": pa.array([f"prompt {i}" for i in range(n)]),
        "chosen": pa.array([f"chosen response {i}" for i in range(n)]),
        "rejected": pa.array([f"rejected response {i}" for i in range(n)]),
        "aspect": pa.array(np.array(aspects, dtype=object)[own]),
        "chosen_ratings": struct(chosen),
        "rejected_ratings": struct(rejected),
        "source": pa.array(["synthetic"] * n),
    })
    return Dataset(table), aspects


def _texts(limit: int) -> list[str]:
    texts: list[str] = []
    for name in ("sf_data2text_multiaspect.jsonl", "topicalchat_usr_multiaspect.jsonl"):
        path = MULTIASPECT / name
        if path.exists():
            with open(path, encoding="utf-8") as fh:
                for _, line in zip(range(limit), fh):
                    row = json.loads(line)
                    texts.append(row["prompt"])
                    texts.extend(r["text"] for r in row["responses"])
    return texts or [f"a tiny corpus sentence number {i} with a few words" for i in range(200)]


def tiny_reward_model(out: Path) -> Path:
    """Save a tiny random Llama and a BPE tokenizer trained here (as tests/pd/conftest.py does)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    special = ["<pad>", "<s>", "</s>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        _texts(300),
        trainers.BpeTrainer(vocab_size=512, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                            show_progress=False),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=len(fast), max_position_embeddings=512, tie_word_embeddings=True,
        pad_token_id=fast.pad_token_id, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    return out


def real_pairs(m: int) -> Any:
    """M real pairs (prompt, chosen, rejected) from the multi-aspect files (cycled if fewer), or synthetic ones."""
    from datasets import concatenate_datasets

    from hf_prefsel.pd import AspectSplitConfig, load_multiaspect_jsonl

    files = [MULTIASPECT / f for f in ("sf_data2text_multiaspect.jsonl", "topicalchat_usr_multiaspect.jsonl")]
    files = [str(f) for f in files if f.exists()]
    if files:
        from datasets.utils import disable_progress_bars, enable_progress_bars

        disable_progress_bars()
        try:
            pairs = load_multiaspect_jsonl(files, AspectSplitConfig(pair_mode="all_pairs")).pairs
        finally:
            enable_progress_bars()
        if len(pairs):
            copies = -(-m // len(pairs))
            pool = concatenate_datasets([pairs] * copies) if copies > 1 else pairs
            return pool.select(range(m))
    ds, _ = synthetic_pool(m, 3)
    return ds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20k pairs and 16 reward-model pairs (for tests)")
    parser.add_argument("--pairs", type=int, default=None, help="pool size N (default 1,000,000; 20,000 with --quick)")
    parser.add_argument("--aspects", type=int, default=5, help="aspects K (default 5)")
    parser.add_argument("--ratio", type=float, default=0.3, help="share kept (default 0.3)")
    parser.add_argument("--rm-pairs", type=int, default=None, help="pairs scored by the tiny reward model (default 256; 16)")
    parser.add_argument("--rm-batch-size", type=int, default=32, help="sequences per forward pass (default 32)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for reward-model scoring (default 1: a model this small gains nothing from "
                             "intra-op threads, and on a busy 2-core machine 2 threads ran 12x slower, waiting on "
                             "each other)")
    parser.add_argument("--skip-rm", action="store_true", help="skip the reward-model scoring step")
    args = parser.parse_args(argv)
    n = args.pairs or (20_000 if args.quick else 1_000_000)
    m = args.rm_pairs or (16 if args.quick else 256)
    k = args.aspects

    from datasets.utils import disable_progress_bars

    from hf_prefsel.pd import (
        PDConfig,
        RatingsScorer,
        compute_pd,
        conflict_rate,
        preference_divergence,
        rank_select,
        select_by_pd,
    )

    disable_progress_bars()
    print(f"PD scale benchmark: {n:,} pairs x {k} aspects, ratio {args.ratio}; cpu count {os.cpu_count()}", flush=True)
    steps = Steps()

    ds, aspects = steps.run("data (setup, not in headline)", lambda: synthetic_pool(n, k))

    # 2. the formula alone on arrays
    from hf_prefsel.pd.schema import label_codes

    own = label_codes(ds, "aspect", aspects)
    gap_matrix = np.column_stack([
        RatingsScorer().dataset_gaps(ds, a) for a in aspects
    ])

    def core() -> np.ndarray:
        pd, _, _ = preference_divergence(gap_matrix, own, gamma=0.9)
        return rank_select(pd, int(round(args.ratio * n)))

    steps.run("pd_core (numpy)", core)
    del gap_matrix

    # 3-4. the library path on the Dataset
    config = PDConfig(progress=False)
    result = steps.run("compute_pd", lambda: compute_pd(ds, RatingsScorer(), config))
    kept = steps.run("select_by_pd (global)", lambda: select_by_pd(result.dataset, ratio=args.ratio))
    steps.run("select_by_pd (stratified)", lambda: select_by_pd(result.dataset, ratio=args.ratio, stratify_by_aspect=True))
    headline = steps.seconds("compute_pd") + steps.seconds("select_by_pd (global)")
    print(f"pairs kept: {len(kept):,} of {n:,}; conflict rate (PD > 0) pool {conflict_rate(result.dataset):.3f} "
          f"-> kept {conflict_rate(kept):.3f}; scales q_k' "
          + ", ".join(f"{v:.3f}" for v in result.scales.values()))
    print(f"compute_pd + select_by_pd: {headline:.2f} s = {n / headline:,.0f} pairs/s")
    del result, kept, ds

    # 5. reward-model scoring throughput
    if not args.skip_rm:
        import torch

        from hf_prefsel.pd import RewardModelScorer
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        torch.set_num_threads(args.threads)
        hf_logging.set_verbosity_error()  # "score head newly initialized" is expected for a causal-LM checkpoint
        hf_logging.disable_progress_bar()
        with tempfile.TemporaryDirectory(prefix="pd_bench_rm_") as tmp:
            model_dir = steps.run("rm_build (tiny model)", lambda: tiny_reward_model(Path(tmp)))
            # real texts, relabelled round-robin over the K benchmark aspects so every pair is scored K times
            pairs = real_pairs(m).remove_columns("aspect")
            rm_aspects = aspects
            pairs = pairs.add_column("aspect", [aspects[i % k] for i in range(len(pairs))])
            tok = AutoTokenizer.from_pretrained(model_dir)
            model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1).eval()
            scorer = RewardModelScorer({a: model for a in rm_aspects}, tok, batch_size=args.rm_batch_size,
                                       max_length=512)
            sample = scorer.texts_to_ids(pairs["prompt"][:64], pairs["chosen"][:64])
            mean_tokens = float(np.mean([len(x) for x in sample]))
            steps.run("rm_scoring (compute_pd)", lambda: compute_pd(pairs, scorer, PDConfig(progress=False)))
        seconds = steps.seconds("rm_scoring (compute_pd)")
        pair_aspects = m * len(rm_aspects)
        sequences = 2 * pair_aspects
        rate = pair_aspects / seconds
        print(f"rm_scoring: {m} real pairs x {len(rm_aspects)} aspects = {sequences} sequences "
              f"(~{mean_tokens:.0f} tokens each) on {args.threads} thread(s): {sequences / seconds:,.0f} sequences/s, "
              f"{rate:,.0f} pair-aspects/s; {n:,} pairs x {k} aspects would take {n * k / rate / 3600:.2f} h")
        print(f"rm_scoring_pair_aspects_per_second: {rate:.1f}")

    label = "quick" if args.quick and args.pairs is None else ("1m_pairs" if n == 1_000_000 else f"{n}_pairs")
    print(f"pd_select_{label}_seconds: {headline:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
