"""PD end to end: fine-grained preference data → single-aspect pairs → per-aspect rewards → PD → keep the most negative."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from ..result import Method, MethodResult, RunReport, check_size, rows_to_keep
from .adapters import AspectSplitConfig, from_multi_response, to_pairs
from .divergence import PDConfig, PDResult, compute_pd, conflict_rate, reference_conflict_rate
from .reward_models import ProxyRMConfig
from .schema import PairSet, float_column, string_column
from .selection import select_indices_by_pd

PD = Method(
    name="PD",
    title="Data Selection for LLM Alignment Using Fine-Grained Preferences",
    arxiv="2508.07638",
    tags=("preference-divergence", "data-selection", "preference-data"),
)

Scorer = Literal["ratings", "reward-model", "proxy-rm"]


@dataclass
class PDPipelineConfig:
    """Everything a PD run needs besides the data.

    Args:
        budget (`int`, *optional*): pairs to keep. Give this or `ratio`.
        ratio (`float`, *optional*, defaults to 0.3): share of the pairs to keep, λ, in (0, 1] (the paper: 0.3 on
            UltraFeedback, 0.5 on HelpSteer). Used when `budget` is not given.
        scorer (`"ratings" | "reward-model" | "proxy-rm"`, defaults to `"ratings"`): where the per-aspect rewards
            come from: the ratings in the data (the paper's PD(rati.)), existing reward models, or proxy reward
            models trained per aspect.
        reward_models (`list[str]`): with `scorer="reward-model"`: one path for every aspect, or `ASPECT=PATH` each.
        output_index (`dict[str, int]`): logit index of each aspect in a multi-output reward model.
        proxy_base_model (`str`, *optional*): with `scorer="proxy-rm"`: the base model of the proxy reward models.
        proxy (`ProxyRMConfig`): proxy reward-model training (length penalty, balancing, training arguments).
        lora (`bool`, defaults to `False`): train LoRA adapters (peft) instead of the full proxy models.
        split (`AspectSplitConfig`): how rows become single-aspect pairs (the D_k split; its seed is `seed`).
        divergence (`PDConfig`): the PD computation (γ, weights).
        stratify_by_aspect (`bool`, defaults to `False`): keep λ of every aspect instead of ranking globally.
        reference (`str`, defaults to `"overall"`): rating key used to report conflicts with a holistic judgement.
        batch_size (`int`, defaults to 8): reward-model scoring batch size.
        max_length (`int`, defaults to 1024): max tokens per sequence for reward models, training and scoring.
        seed (`int`, defaults to 0): seed of the D_k split, tie-breaking and reward-model training.
    """

    budget: int | None = None
    ratio: float | None = None
    scorer: Scorer = "ratings"
    reward_models: list[str] = field(default_factory=list)
    output_index: dict[str, int] = field(default_factory=dict)
    proxy_base_model: str | None = None
    proxy: ProxyRMConfig = field(default_factory=ProxyRMConfig)
    lora: bool = False
    split: AspectSplitConfig = field(default_factory=AspectSplitConfig)
    divergence: PDConfig = field(default_factory=PDConfig)
    stratify_by_aspect: bool = False
    reference: str = "overall"
    batch_size: int = 8
    max_length: int = 1024
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget is None and self.ratio is None:
            self.ratio = 0.3
        check_size(self.budget, self.ratio, owner="PDPipelineConfig")
        if self.scorer not in ("ratings", "reward-model", "proxy-rm"):
            raise ConfigError(f"scorer must be 'ratings', 'reward-model' or 'proxy-rm', got {self.scorer!r}.")
        if self.scorer == "reward-model" and not self.reward_models:
            raise ConfigError("Reward-model scoring needs a model: reward_models=[PATH] (or ASPECT=PATH per aspect).")
        if self.scorer == "proxy-rm" and not self.proxy_base_model:
            raise ConfigError("Proxy reward models need a base model: proxy_base_model=BASE_MODEL.")
        if self.scorer == "reward-model" and len(self.reward_models) > 1 and not all("=" in m for m in self.reward_models):
            raise ConfigError("Give one reward model for all aspects, or ASPECT=PATH for every aspect.")

    def parameters(self) -> dict[str, Any]:
        out: dict[str, Any] = {"budget": self.budget, "ratio": self.ratio, "gamma": self.divergence.gamma,
                               "stratify_by_aspect": self.stratify_by_aspect, "pair_mode": self.split.pair_mode,
                               "seed": self.seed, "scorer": self.scorer, "reference": self.reference}
        if self.scorer == "proxy-rm":
            out.update(length_penalty=self.proxy.length_penalty, tau=self.proxy.balance_temperature,
                       sample_ratio=self.proxy.sample_ratio, lora=self.lora)
        return out


@dataclass
class PDRunResult(MethodResult):
    """A PD run: the kept pairs (`dataset`, input order), every scored pair (`scored`), the pair set with its
    bad-row report (`pairs`), the PD computation (`divergence`) and scorer facts (`scorer_info`)."""

    method = PD
    scored: Any = None
    pairs: PairSet | None = None
    divergence: PDResult | None = None
    scorer_info: dict[str, Any] = field(default_factory=dict)


class PDPipeline:
    """Run PD on fine-grained preference data.

    Args:
        config (`PDPipelineConfig`).

    Example:
        >>> from hf_prefsel.pd import PDPipeline, PDPipelineConfig, load_multiaspect_jsonl
        >>> pairs = load_multiaspect_jsonl("sf_data2text_multiaspect.jsonl")
        >>> result = PDPipeline(PDPipelineConfig(ratio=0.3)).run(pairs)
        >>> result.dataset  # the kept pairs; result.save("out/pd.jsonl")
    """

    def __init__(self, config: PDPipelineConfig | None = None):
        self.config = config or PDPipelineConfig()

    def split_config(self) -> AspectSplitConfig:
        return dataclasses.replace(self.config.split, seed=self.config.seed)

    def pairs(self, data: Any) -> PairSet:
        """Single-aspect pairs from a `PairSet`, a `datasets.Dataset` (UltraFeedback, HelpSteer, multi-response,
        pairwise) or a list of multi-response rows (`{prompt, responses: [{text, ratings}]}`)."""
        if isinstance(data, PairSet):
            return data
        if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
            has_prefs = any(isinstance(r.get("meta"), Mapping) and isinstance(r["meta"].get("pairwise_preferences"), list)
                            for r in data)
            return from_multi_response(list(data), config=self.split_config(),
                                       preferences_key="meta.pairwise_preferences" if has_prefs else None)
        return to_pairs(data, self.split_config())

    def scorer(self, pairs: PairSet) -> tuple[Any, dict[str, Any]]:
        """The per-aspect scorer for the config, and facts about it for the summary and the card."""
        from .scorers import RatingsScorer

        cfg = self.config
        if cfg.scorer == "ratings":
            return RatingsScorer(), {"scorer": "ratings"}
        if cfg.scorer == "reward-model":
            from .scorers import RewardModelScorer

            spec: Any = (dict(m.split("=", 1) for m in cfg.reward_models) if all("=" in m for m in cfg.reward_models)
                         else cfg.reward_models[0])
            scorer = RewardModelScorer(spec, output_index=dict(cfg.output_index) or None, batch_size=cfg.batch_size,
                                       max_length=cfg.max_length)
            return scorer, {"scorer": "reward-model", "model": list(cfg.reward_models)}
        from .reward_models import train_proxy_reward_models

        peft_config = None
        if cfg.lora:
            from peft import LoraConfig

            peft_config = LoraConfig(task_type="SEQ_CLS", r=16, lora_alpha=32, lora_dropout=0.0)
        proxy = dataclasses.replace(cfg.proxy, seed=cfg.seed)
        rms = train_proxy_reward_models(pairs.pairs, cfg.proxy_base_model, proxy, peft_config=peft_config)
        info = {
            "scorer": "proxy-rm", "model": [cfg.proxy_base_model], "lora": cfg.lora,
            "rm_train_loss": {a: round(float(m.get("train_loss", float("nan"))), 4) for a, m in rms.metrics.items()},
            "rm_train_pairs": {a: s.n_sampled for a, s in rms.balance.items()},
            "rm_longer_winner_share": {a: [round(s.f_pos, 3), round(s.n_sampled_pos / max(s.n_sampled, 1), 3)]
                                       for a, s in rms.balance.items()},
        }
        return rms.scorer(batch_size=cfg.batch_size, max_length=cfg.max_length), info

    def run(self, data: Any, *, progress: bool = True, source: str | None = None) -> PDRunResult:
        """Build pairs, score every aspect, compute PD and keep the most negative share.

        Args:
            data: a `PairSet`, a `datasets.Dataset` or a list of multi-response rows (see `pairs`).
            progress (`bool`, defaults to `True`): progress bars.
            source (`str`, *optional*): how to name the input in the card.
        """
        cfg = self.config
        report = RunReport()
        start = time.monotonic()
        pairs = self.pairs(data)
        if len(pairs.pairs) == 0:
            raise DataError("No pair could be built from the data: " + pairs.bad_rows.summary())
        report.seconds["pairs"] = time.monotonic() - start
        start = time.monotonic()
        scorer, info = self.scorer(pairs)
        divergence = compute_pd(pairs.pairs, scorer, dataclasses.replace(cfg.divergence, progress=progress))
        scored = divergence.dataset
        report.seconds["pd"] = time.monotonic() - start
        n_keep = rows_to_keep(len(scored), budget=cfg.budget, ratio=cfg.ratio)
        idx = select_indices_by_pd(scored, ratio=n_keep / len(scored), stratify_by_aspect=cfg.stratify_by_aspect,
                                   seed=cfg.seed)
        kept = scored.select(idx)
        pool_pd, kept_pd = float_column(scored, "pd"), float_column(kept, "pd")
        counts: dict[str, Any] = {"rows_in": pairs.bad_rows.rows_in, "pairs": len(scored), "kept": len(kept),
                                  "rows_out": len(kept), **{f"bad_{k}": v for k, v in pairs.bad_rows.counts.items()}}
        for name, values in (("conflict_rate_pool", pool_pd), ("conflict_rate_kept", kept_pd)):
            rate = conflict_rate(values)
            if not np.isnan(rate):
                counts[name] = round(float(rate), 4)
        for name, ds in (("pool", scored), ("kept", kept)):
            rate, n = reference_conflict_rate(ds, cfg.reference)
            if n:
                counts[f"{cfg.reference}_conflict_rate_{name}"] = round(float(rate), 4)
        report.counts = counts
        if len(divergence.aspects) < 2:
            report.notes.append(f"only one aspect ({', '.join(divergence.aspects)}): PD needs other aspects and is 0 "
                                "for every pair, so the selection is a seeded random draw")
        if info.get("model"):
            report.models["reward"] = ", ".join(info["model"])
        report.counts["kept_per_aspect"] = dict(Counter(string_column(kept, "aspect").tolist()))
        return PDRunResult(dataset=kept, report=report, parameters=cfg.parameters(), source=source,
                           budget=cfg.budget if cfg.budget is not None else cfg.ratio, scored=scored, pairs=pairs,
                           divergence=divergence, scorer_info=info)


__all__ = ["PD", "PDPipeline", "PDPipelineConfig", "PDRunResult"]
