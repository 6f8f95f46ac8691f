"""PD: preference-data selection with fine-grained (per-aspect) preferences.

Paper: Jia Zhang, Yao Liu, Chen-Xi Zhang, Yi Liu, Yi-Xuan Jin, Lan-Zhe Guo, Yu-Feng Li, "Data Selection for LLM
Alignment Using Fine-Grained Preferences" (ICLR 2026; arXiv 2508.07638, v1 titled "Beyond Single: A Data Selection
Principle for LLM Alignment via Fine-Grained Preference Signals"). No public code exists; this is our implementation.

Pipeline (each stage returns a `datasets.Dataset` or a small result object):

1. adapters → `PairSet` (pairs `(prompt, chosen, rejected, aspect)`, one aspect label each, plus a bad-row report):
   `load_multiaspect_jsonl`, `from_ultrafeedback`, `from_helpsteer`, `from_multi_response`,
   `from_rated_responses`, `from_pairwise`, `to_pairs`.
2. scorers → per-aspect reward gaps: `RatingsScorer` (PD(rati.)), `RewardModelScorer` (existing or trained
   reward models), `train_proxy_reward_models` (TRL `RewardTrainer`, length de-biased), or any `AspectScorer`.
3. `compute_pd` → columns `pd`, `reward_gaps`, `reward_margin`.
4. selectors: `select_by_pd`, `select_random`, `select_most_positive_pd`, `select_by_reward_margin`.
5. `PDSelectionCallback` → a TRL trainer trains only on the selection (example: `USAGE.md` next to this file).

Command line: `dataset_scripts/pd_select.py` (`hf_prefsel.cli.pd`), e.g. `--data FILE --ratio 0.3 --from-ratings`.

Example:

```python
>>> from hf_prefsel.pd import load_multiaspect_jsonl, compute_pd, RatingsScorer, select_by_pd
>>> ps = load_multiaspect_jsonl("sf_data2text_multiaspect.jsonl")
>>> print(ps.bad_rows.summary())
>>> scored = compute_pd(ps.pairs, RatingsScorer()).dataset
>>> kept = select_by_pd(scored, ratio=0.3)
```

Choices we made where the paper is silent or ambiguous:

* **D_k split rule** (`AspectSplitConfig`): units (a prompt, or a response pair with `pair_mode="all_pairs"`) are
  ordered by a keyed hash of (seed, unit id) and assigned aspects round-robin, so the D_k are equal-sized,
  disjoint, independent of input order, and reproducible. Under its aspect a unit yields the best-rated response
  as `chosen` and a seeded pick among strictly worse ones as `rejected`; tied/unrated units fall back to the next
  aspect in cyclic order, and are counted as bad rows (`tie` / `missing_rating`) if none works. Default
  `one_per_prompt` keeps D_k prompt-disjoint, so a proxy RM never scores a prompt it was trained on.
* **"overall" is not an aspect** by default (`exclude_aspects=("overall",)`); it is kept in the ratings and used by
  `reference_conflict_rate` to measure conflicts with the holistic judgement, as the paper's ~30 % figure does.
* **Lower-is-better ratings**: keys starting with `n_errors` / `n_missing` (error counts) are negated; HelpSteer's
  five attributes are all higher-is-better, as its card states.
* **Explicit pairwise labels** (e.g. human preferences in the FineGrainedRLHF file) become the aspect "preference".
  Data with a single aspect has no "other" aspects: PD is 0 everywhere and the selection reduces to the seeded
  tie-break (the script warns).
* **Bad rows** are counted by reason with their ids (`BadRowReport`); non-numeric ratings such as UltraFeedback's
  "N/A" are treated as missing and counted.
* **γ = 0.9** for the quantile scale q_k' (value unknown in the paper). q_k' is taken over pairs *outside* D_k'
  (the paper's "external set"). When q_k' = 0 (coarse ratings with many ties), Δr̃ = sign(Δr̂), the limit of the
  clipped ratio. A missing gap (`NaN`: missing rating, unscored) contributes 0 and is counted in
  `PDResult.missing` and `pd_num_aspects`.
* **Aspect weights** default to 1 (the paper's uniform sum); `PDConfig.weights` allows others.
* **Global ranking** over D by default (the paper's single arg-top); `stratify_by_aspect=True` keeps λ per D_k with
  largest-remainder rounding. Budget = `round(λ·N)`. Ties (frequent with ratings) are broken by a seeded random key,
  never by input order. Selections are returned in original row order.
* **RAF** (reward-margin filtering) ranks by the own-aspect gap divided by that aspect's scale, so margins from
  different reward models share one ranking. **PD(high)** keeps the most positive PD.
* **Length penalty sign**: the reward model is trained on `−log σ(Δr + ρ·Δlen)` (via TRL's `margin = −ρ·Δlen`),
  which follows from the stated assumption "observed reward = quality + ρ·len"; the design note prints
  `σ(Δr − ρ·Δlen)`, which with ρ > 0 would *add* length bias. A negative ρ gives the literal form.
* **ρ = 0.005 per token**, lengths in response tokens of the RM tokenizer (no special tokens); **τ = 1.0**
  (a 70/30 length split becomes 60/40); **p_r = 1.0**. Values are ours; the paper reports robustness only.
* **Length-balanced sampling never repeats a pair**: when one side of the split is too small for its target
  share, the total is reduced; with an empty side the draw is uniform (logged).
* **Proxy RM text format**: `prompt + "\\n\\n" + response + eos`, plain text, identical in training and scoring;
  scores of the length-debiased head are used directly as Δr̂ (the paper's exact Eq. 17 was not available).
  bf16 is switched off on CPU-only machines (TRL defaults to it).
* **Scale**: scorers whose gaps are already in the data (`RatingsScorer`, i.e. ratings or precomputed reward
  scores in `chosen_ratings`/`rejected_ratings`) are read column-wise through Arrow (`dataset_gaps`), the new
  columns are appended as Arrow arrays with a fingerprint hashed from the gap matrix, and selection uses a partition
  instead of a full sort (same ranking rule, ties included). `benchmarks/pd_scale.py` times 1M pairs × 5 aspects.
* **Callback**: the sampler installed by `attach` decides which rows the trainer sees; with a budget schedule each
  epoch trains on the top-ranked rows of its budget (nested subsets), rounded up to whole optimizer steps, and the
  trainer plans steps for the largest epoch.
"""

from __future__ import annotations

from typing import Any

from .adapters import (
    HELPSTEER_ASPECTS,
    ULTRAFEEDBACK_ASPECTS,
    AspectSplitConfig,
    detect_format,
    from_helpsteer,
    from_multi_response,
    from_pairwise,
    from_rated_responses,
    from_ultrafeedback,
    load_multiaspect_jsonl,
    read_jsonl,
    to_pairs,
)
from .divergence import (
    PDConfig,
    PDResult,
    compute_pd,
    conflict_rate,
    pd_quantiles,
    preference_divergence,
    reference_conflict_rate,
    score_gaps,
)
from .schema import BAD_ROW_REASONS, PAIR_COLUMNS, BadRowReport, PairSet
from .scorers import AspectScorer, PairBatch, RatingsScorer, ResponseScorer, RewardModelScorer, load_reward_model
from .selection import (
    rank_select,
    select_by_pd,
    select_by_reward_margin,
    select_indices_by_pd,
    select_most_positive_pd,
    select_random,
)

from .pipeline import PD, PDPipeline, PDPipelineConfig, PDRunResult

PAPER = PD.paper  # the older name of the paper's metadata

# Training pieces import torch/transformers/trl; load them on first use so the ratings path stays light.
_LAZY = {
    "ProxyRMConfig": "reward_models",
    "ProxyRewardModels": "reward_models",
    "BalanceStats": "reward_models",
    "train_proxy_reward_models": "reward_models",
    "length_balanced_indices": "reward_models",
    "balanced_share": "reward_models",
    "build_reward_dataset": "reward_models",
    "PDSelectionCallback": "callback",
    "PDSelectionConfig": "callback",
    "PDSampler": "callback",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PD",
    "PDPipeline",
    "PDPipelineConfig",
    "PDRunResult",
    "AspectScorer",
    "AspectSplitConfig",
    "BAD_ROW_REASONS",
    "BadRowReport",
    "BalanceStats",
    "HELPSTEER_ASPECTS",
    "PAIR_COLUMNS",
    "PAPER",
    "PDConfig",
    "PDResult",
    "PDSampler",
    "PDSelectionCallback",
    "PDSelectionConfig",
    "PairBatch",
    "PairSet",
    "ProxyRMConfig",
    "ProxyRewardModels",
    "RatingsScorer",
    "ResponseScorer",
    "RewardModelScorer",
    "ULTRAFEEDBACK_ASPECTS",
    "balanced_share",
    "build_reward_dataset",
    "compute_pd",
    "conflict_rate",
    "detect_format",
    "from_helpsteer",
    "from_multi_response",
    "from_pairwise",
    "from_rated_responses",
    "from_ultrafeedback",
    "length_balanced_indices",
    "load_multiaspect_jsonl",
    "load_reward_model",
    "pd_quantiles",
    "preference_divergence",
    "rank_select",
    "read_jsonl",
    "reference_conflict_rate",
    "score_gaps",
    "select_by_pd",
    "select_by_reward_margin",
    "select_indices_by_pd",
    "select_most_positive_pd",
    "select_random",
    "to_pairs",
    "train_proxy_reward_models",
]
