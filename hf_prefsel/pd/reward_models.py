"""Per-aspect proxy reward models for PD, trained with TRL's `RewardTrainer` (Bradley–Terry), length-debiased.

Two de-biasing devices from the paper, both on the training set of each aspect k:

* **Length-balanced sampling** (temperature τ): split D_k into D_k^+ = {len(y_w) ≥ len(y_l)} and D_k^-; with
  empirical shares f^±, sample with shares f̂^+ = exp(f^+/τ) / (exp(f^+/τ) + exp(f^-/τ)) and f̂^- = 1 − f̂^+.
  Large τ → 50/50; τ → 0 keeps the majority side only.
* **Length penalty in the loss** (ρ): the observed preference is modelled as quality plus ρ·length, so the reward
  model is trained on `−log σ(r(x, y_w) − r(x, y_l) + ρ·Δlen)` with `Δlen = len(y_w) − len(y_l)`, and `r` learns
  the length-free part. This is TRL's own `margin` mechanism (`RewardTrainer` computes
  `−log σ(r_w − r_l − margin)`), with `margin = −ρ·Δlen` per pair; no trainer subclass is needed.

  Sign: the design note writes the loss as `σ(Δr − ρ·Δlen)`; read literally with ρ > 0 that *adds* length bias
  (longer winners must win by more). We implement the form that follows from the stated assumption
  "reward = quality + ρ·len". A negative `length_penalty` gives the literal form.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

import numpy as np
from datasets import Dataset

from ..errors import ConfigError, DataError, DependencyError
from .schema import check_pairs
from .scorers import RewardModelScorer

if TYPE_CHECKING:  # pragma: no cover
    from peft import PeftConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ProxyRMConfig:
    """How the per-aspect proxy reward models are trained.

    Args:
        length_penalty (`float`, *optional*, defaults to `0.005`):
            ρ, per length unit (see the module docstring for the sign). The paper gives no value; 0.005 per token
            means a 200-token longer winner is explained away by one logit of preference. Tune it on held-out
            pairs (e.g. until accuracy on length-reversed pairs stops improving). `0` disables the penalty
            (the paper's PD(nl) ablation, together with `balance_temperature=None`).
        length_unit (`str`, *optional*, defaults to `"tokens"`):
            `"tokens"` (response tokens of the reward model's tokenizer, no special tokens) or `"chars"`.
        balance_temperature (`float`, *optional*, defaults to `1.0`):
            τ of the length-balanced sampling; `None` disables it. With τ = 1 a 70/30 length split becomes
            60/40; the paper gives no value.
        sample_ratio (`float`, *optional*, defaults to `1.0`):
            p_r, the share of D_k drawn for training (the paper finds PD robust to it). The draw never repeats a
            pair: if a side of the length split is too small for its target share, the total is reduced.
        separator (`str`, *optional*, defaults to `"\\n\\n"`):
            Between prompt and response in the plain-text training examples; the scorer uses the same.
        aspects (`Sequence[str]`, *optional*):
            Aspects to train a model for; defaults to every aspect label in the pairs.
        min_pairs (`int`, *optional*, defaults to `2`):
            Aspects with fewer training pairs are refused with a clear error instead of training on nothing.
        output_dir (`str`, *optional*):
            Each aspect's model is saved to `<output_dir>/<aspect>`; with `None` models stay in memory.
        training_args (`dict`, *optional*):
            Extra `trl.RewardConfig` arguments (e.g. `max_steps`, `per_device_train_batch_size`,
            `learning_rate`, `use_cpu`). `output_dir`, `seed`, `report_to="none"` and `save_strategy="no"` are
            set by us unless given here.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the sampling and of training.
    """

    length_penalty: float = 0.005
    length_unit: Literal["tokens", "chars"] = "tokens"
    balance_temperature: float | None = 1.0
    sample_ratio: float = 1.0
    separator: str = "\n\n"
    aspects: Sequence[str] | None = None
    min_pairs: int = 2
    output_dir: str | None = None
    training_args: Mapping[str, Any] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.length_unit not in ("tokens", "chars"):
            raise ConfigError(f"length_unit must be 'tokens' or 'chars', got {self.length_unit!r}.")
        if self.balance_temperature is not None and self.balance_temperature <= 0:
            raise ConfigError("balance_temperature must be > 0 (or None to switch length balancing off).")
        if not 0.0 < self.sample_ratio <= 1.0:
            raise ConfigError(f"sample_ratio must be in (0, 1], got {self.sample_ratio}.")
        if self.min_pairs < 1:
            raise ConfigError("min_pairs must be >= 1.")


@dataclasses.dataclass
class BalanceStats:
    """What length-balanced sampling did for one aspect.

    Args:
        n_pool, n_pos, n_neg (`int`): pairs in D_k, in D_k^+ (winner not shorter), in D_k^-.
        f_pos (`float`): empirical share f^+.
        f_hat_pos (`float`): target share f̂^+ after the temperature.
        n_sampled, n_sampled_pos (`int`): pairs drawn in total and from D_k^+.
        balanced (`bool`): False when one side was empty (nothing to balance against; all pairs kept at p_r).
    """

    n_pool: int
    n_pos: int
    n_neg: int
    f_pos: float
    f_hat_pos: float
    n_sampled: int
    n_sampled_pos: int
    balanced: bool


def balanced_share(f_pos: float, temperature: float) -> float:
    """f̂^+ = exp(f^+/τ) / (exp(f^+/τ) + exp(f^-/τ)) with f^- = 1 − f^+ (computed stably as a sigmoid)."""
    return 1.0 / (1.0 + math.exp(-((2.0 * f_pos - 1.0) / temperature)))


def length_balanced_indices(
    delta_len: np.ndarray, *, temperature: float | None = 1.0, sample_ratio: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, BalanceStats]:
    """Draw training pairs so that the share of longer-winner pairs is f̂^+ (without repeating a pair).

    Args:
        delta_len (`np.ndarray`): `len(y_w) − len(y_l)` per pair.
        temperature (`float`, *optional*): τ; `None` = plain uniform draw of `sample_ratio`.
        sample_ratio (`float`, *optional*): p_r.
        seed (`int`, *optional*): RNG seed.

    Returns:
        `(indices, stats)`: sorted indices into `delta_len`, and a `BalanceStats`.
    """
    delta_len = np.asarray(delta_len, dtype=np.float64)
    n = len(delta_len)
    rng = np.random.default_rng(seed)
    pos = np.flatnonzero(delta_len >= 0)
    neg = np.flatnonzero(delta_len < 0)
    f_pos = len(pos) / n if n else 0.0
    target = int(round(sample_ratio * n))
    if temperature is None or len(pos) == 0 or len(neg) == 0:
        if temperature is not None and n:
            logger.warning("Length balancing skipped: all %d pairs fall on one side of the length split.", n)
        idx = np.sort(rng.choice(n, size=target, replace=False)) if n else np.array([], dtype=np.int64)
        stats = BalanceStats(n, len(pos), len(neg), f_pos, f_pos, len(idx), int(np.isin(idx, pos).sum()), False)
        return idx, stats
    f_hat = balanced_share(f_pos, temperature)
    # Largest total whose split fits both sides without repeats.
    cap = min(len(pos) / f_hat if f_hat > 0 else math.inf, len(neg) / (1 - f_hat) if f_hat < 1 else math.inf)
    total = int(min(target, math.floor(cap + 1e-9)))
    n_pos = min(len(pos), int(round(f_hat * total)))
    n_neg = min(len(neg), total - n_pos)
    idx = np.sort(np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False)]))
    return idx, BalanceStats(n, len(pos), len(neg), f_pos, f_hat, len(idx), n_pos, True)


def response_lengths(texts: Sequence[str], unit: str, tokenizer: "PreTrainedTokenizerBase | None" = None) -> np.ndarray:
    """Length of each response in tokens (no special tokens) or characters."""
    if unit == "chars":
        return np.array([len(t) for t in texts], dtype=np.float64)
    if tokenizer is None:
        raise ConfigError("Token lengths need the reward model's tokenizer; pass `processing_class=`.")
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return np.array([len(x) for x in ids], dtype=np.float64)


def build_reward_dataset(
    pairs: Dataset, config: ProxyRMConfig, tokenizer: "PreTrainedTokenizerBase | None"
) -> tuple[Dataset, BalanceStats]:
    """The training set of one aspect: balanced draw, texts as the scorer sees them, and `margin = −ρ·Δlen`."""
    delta = response_lengths(pairs["chosen"], config.length_unit, tokenizer) - response_lengths(
        pairs["rejected"], config.length_unit, tokenizer
    )
    idx, stats = length_balanced_indices(
        delta, temperature=config.balance_temperature, sample_ratio=config.sample_ratio, seed=config.seed
    )
    sub = pairs.select(idx)
    data = {
        "prompt": [p + config.separator for p in sub["prompt"]],
        "chosen": list(sub["chosen"]),
        "rejected": list(sub["rejected"]),
        "pair_id": list(sub["pair_id"]),
        "delta_len": delta[idx].tolist(),
    }
    if config.length_penalty:
        data["margin"] = (-config.length_penalty * delta[idx]).tolist()
    return Dataset.from_dict(data), stats


@dataclasses.dataclass
class ProxyRewardModels:
    """The trained per-aspect proxy reward models and how they were trained.

    Args:
        models (`dict[str, PreTrainedModel]`): aspect → trained model (in eval mode).
        tokenizer (`PreTrainedTokenizerBase`): shared tokenizer.
        config (`ProxyRMConfig`): the training config.
        balance (`dict[str, BalanceStats]`): sampling statistics per aspect.
        metrics (`dict[str, dict]`): `train()` metrics per aspect (loss, runtime, ...).
        paths (`dict[str, str]`): where each model was saved, if `output_dir` was set.
    """

    models: dict[str, Any]
    tokenizer: Any
    config: ProxyRMConfig
    balance: dict[str, BalanceStats]
    metrics: dict[str, dict]
    paths: dict[str, str] = dataclasses.field(default_factory=dict)

    def scorer(self, **kwargs: Any) -> RewardModelScorer:
        """A `RewardModelScorer` over these models, tokenizing exactly as in training."""
        kwargs.setdefault("separator", self.config.separator)
        kwargs.setdefault("use_chat_template", False)
        return RewardModelScorer(self.models, self.tokenizer, **kwargs)


def _require_trl() -> None:
    try:
        import peft  # noqa: F401
        import transformers  # noqa: F401
        import trl  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise DependencyError(str(err.name or "trl"), "train", "Training proxy reward models") from err


def train_proxy_reward_models(
    pairs: Dataset,
    model: "str | Callable[[], PreTrainedModel]",
    config: ProxyRMConfig | None = None,
    *,
    processing_class: "PreTrainedTokenizerBase | None" = None,
    peft_config: "PeftConfig | None" = None,
    callbacks: list | None = None,
) -> ProxyRewardModels:
    """Train one Bradley–Terry reward model per aspect on (a length-balanced sample of) its D_k.

    Args:
        pairs (`Dataset`):
            Internal pairwise form; each aspect label defines one D_k.
        model (`str` or callable):
            A model id/path (loaded by `RewardTrainer` as `AutoModelForSequenceClassification` with one label; any
            causal LM checkpoint works, its classification head starts random), or a zero-argument function
            returning a fresh sequence-classification model with `num_labels=1` (called once per aspect).
        config (`ProxyRMConfig`, *optional*):
            Length de-biasing, sampling and training arguments.
        processing_class (`PreTrainedTokenizerBase`, *optional*):
            Tokenizer; loaded from `model` when it is a path.
        peft_config (`peft.PeftConfig`, *optional*):
            E.g. `LoraConfig(task_type="SEQ_CLS", r=16)`; passed to `RewardTrainer` so only adapters (and the
            score head) train. Devices and mixed precision are handled by `accelerate` through the trainer.
        callbacks (`list`, *optional*):
            Extra `TrainerCallback`s.

    Returns:
        `ProxyRewardModels`; `.scorer()` gives the `AspectScorer` for `compute_pd`.

    Raises:
        [`DataError`]: an aspect has fewer than `min_pairs` pairs after sampling.

    Example:

    ```python
    >>> rms = train_proxy_reward_models(pairs, "Qwen/Qwen2.5-1.5B", ProxyRMConfig(output_dir="rms"),
    ...                                 peft_config=LoraConfig(task_type="SEQ_CLS", r=16))
    >>> result = compute_pd(pairs, rms.scorer())
    ```
    """
    _require_trl()
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    config = config or ProxyRMConfig()
    check_pairs(pairs)
    if processing_class is None:
        if not isinstance(model, (str, os.PathLike)):
            raise ConfigError("Pass `processing_class=` (the tokenizer) when `model` is a function.")
        processing_class = AutoTokenizer.from_pretrained(os.fspath(model))
    if processing_class.pad_token is None:
        processing_class.pad_token = processing_class.eos_token
    labels = np.asarray(pairs["aspect"], dtype=object)
    aspects = list(config.aspects) if config.aspects is not None else sorted(set(labels.tolist()))

    models: dict[str, Any] = {}
    balance: dict[str, BalanceStats] = {}
    metrics: dict[str, dict] = {}
    paths: dict[str, str] = {}
    for aspect in aspects:
        subset = pairs.select(np.flatnonzero(labels == aspect))
        train_ds, stats = build_reward_dataset(subset, config, processing_class)
        balance[aspect] = stats
        if len(train_ds) < config.min_pairs:
            raise DataError(
                f"Aspect {aspect!r} has {len(train_ds)} training pairs (of {len(subset)} in D_k) after sampling, "
                f"fewer than min_pairs={config.min_pairs}. Add data, raise sample_ratio, or leave the aspect out "
                "with ProxyRMConfig(aspects=...)."
            )
        logger.info(
            "Proxy RM %r: %d of %d pairs (longer winner %.2f -> %.2f).", aspect, stats.n_sampled, stats.n_pool,
            stats.f_pos, stats.n_sampled_pos / max(stats.n_sampled, 1),
        )
        if config.output_dir:
            out_dir = os.path.join(config.output_dir, _safe_name(aspect))
        else:  # nothing is saved, but the trainer wants a folder: keep it out of the working directory
            out_dir = tempfile.mkdtemp(prefix=f"pd_proxy_rm_{_safe_name(aspect)}_")
        kwargs: dict[str, Any] = {
            "output_dir": out_dir, "seed": config.seed, "report_to": "none", "save_strategy": "no"
        }
        kwargs.update(dict(config.training_args or {}))
        if "bf16" not in kwargs and "fp16" not in kwargs and not _has_accelerator():
            kwargs["bf16"] = False  # TRL defaults to bf16 autocast, which on CPU is slower and coarser than fp32
        args = RewardConfig(**kwargs)
        trainer = RewardTrainer(
            model=os.fspath(model) if isinstance(model, (str, os.PathLike)) else model(),
            args=args,
            train_dataset=train_ds,
            processing_class=processing_class,
            peft_config=peft_config,
            callbacks=callbacks,
        )
        result = trainer.train()
        metrics[aspect] = dict(result.metrics)
        # Drop accelerate's mixed-precision forward wrapper so later scoring runs in the model's own dtype.
        trained = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
        trained.eval()
        if config.output_dir:
            trainer.save_model(out_dir)
            paths[aspect] = out_dir
        models[aspect] = trained
    return ProxyRewardModels(models, processing_class, config, balance, metrics, paths)


def _has_accelerator() -> bool:
    import torch

    return bool(torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available()))


def _safe_name(aspect: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in aspect) or "aspect"
