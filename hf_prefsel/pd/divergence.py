"""Preference divergence (PD), Zhang et al., "Data Selection for LLM Alignment Using Fine-Grained Preferences".

For a pair z = (x, y_w, y_l) in D_k and every other aspect k' ≠ k:

    Δr̂_k'(z) = r̂_k'(x, y_w) − r̂_k'(x, y_l)                  (cross pseudo-reward gap)
    q_k'     = γ-quantile of |Δr̂_k'(z)| over z ∉ D_k'          (scale of aspect k')
    Δr̃_k'(z) = clip(Δr̂_k'(z) / q_k', −1, 1)
    PD(z)    = − Σ_{k' ≠ k} w_k' · Δr̃_k'(z)                     (w_k' = 1 in the paper)

PD < 0: the other aspects agree with the label (consensus); PD > 0: they disagree (conflict).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
from datasets import Dataset
from datasets.utils.tqdm import tqdm

from ..errors import ConfigError, DataError
from .schema import check_pairs, distinct_strings, float_column, label_codes, struct_field_floats
from .scorers import AspectScorer, PairBatch

logger = logging.getLogger(__name__)

PD_COLUMN = "pd"


@dataclasses.dataclass
class PDConfig:
    """Parameters of the PD computation.

    Args:
        gamma (`float`, *optional*, defaults to `0.9`):
            The quantile γ of |Δr̂_k'| used as the scale q_k' (the paper leaves its value open). 0.9 keeps the
            gaps of 90 % of pairs inside (−1, 1) and clips only the extreme 10 %, so one over-confident reward
            model cannot dominate the sum while ordinary gaps keep their magnitude.
        aspects (`Sequence[str]`, *optional*):
            Aspects whose gaps enter PD. Defaults to the aspect labels present in the pairs (the D_k).
        weights (`Mapping[str, float]`, *optional*):
            Per-aspect weights w_k' (the paper uses 1 for all; offered because reviewers asked for it).
        score_own_aspect (`bool`, *optional*, defaults to `True`):
            Also score each pair under its own aspect k. PD does not use it; it gives the `reward_margin` column
            for reward-margin filtering (RAF) at the cost of one extra scoring pass per pair.
        batch_size (`int`, *optional*, defaults to `256`):
            Pairs handed to the scorer per call.
        quantile_method (`str`, *optional*, defaults to `"linear"`):
            `numpy.quantile` method for q_k'.
        progress (`bool`, *optional*, defaults to `True`):
            Show a progress bar while scoring.
    """

    gamma: float = 0.9
    aspects: Sequence[str] | None = None
    weights: Mapping[str, float] | None = None
    score_own_aspect: bool = True
    batch_size: int = 256
    quantile_method: str = "linear"
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"gamma must be in (0, 1], got {self.gamma}. Try 0.9.")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}.")


def preference_divergence(
    gaps: np.ndarray,
    own_aspect: np.ndarray,
    *,
    gamma: float = 0.9,
    weights: np.ndarray | None = None,
    quantile_method: str = "linear",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PD from a matrix of raw gaps: the vectorised core (1M pairs × 5 aspects in well under a second).

    Args:
        gaps (`np.ndarray` of shape `(n, K)`):
            Δr̂_k'(z) for each pair and aspect; `NaN` = no evidence (contributes 0).
        own_aspect (`np.ndarray` of shape `(n,)`):
            Column index k of each pair's own aspect; `-1` if the pair's aspect is not among the K columns.
        gamma (`float`, *optional*, defaults to `0.9`):
            Quantile for the scales.
        weights (`np.ndarray` of shape `(K,)`, *optional*):
            Per-aspect weights; ones by default.
        quantile_method (`str`, *optional*):
            `numpy.quantile` method.

    Returns:
        `(pd, scaled, scales)`: PD per pair `(n,)`; the clipped scaled gaps Δr̃ `(n, K)` with the own aspect and
        missing gaps set to 0; the scales q_k' `(K,)` (`NaN` for an aspect without any finite external gap).
        A scale of 0 (more than a γ share of zero gaps, common with coarse ratings) makes Δr̃ = sign(Δr̂): the
        limit of the clipped ratio.
    """
    gaps = np.asarray(gaps, dtype=np.float64)
    if gaps.ndim != 2:
        raise DataError(f"gaps must be a 2-D (pairs × aspects) array, got shape {gaps.shape}.")
    n, k = gaps.shape
    own = np.asarray(own_aspect, dtype=np.int64)
    if own.shape != (n,):
        raise DataError(f"own_aspect must have shape ({n},), got {own.shape}.")
    w = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (k,):
        raise DataError(f"weights must have shape ({k},), got {w.shape}.")
    scales = np.full(k, np.nan)
    columns = np.ascontiguousarray(gaps.T)  # one contiguous row per aspect: the per-aspect passes stay cache-friendly
    scaled_t = np.zeros((k, n))
    for j in range(k):
        column = columns[j]
        finite = np.isfinite(column)
        mine = own == j
        external = finite & ~mine
        if external.any():
            scales[j] = np.quantile(np.abs(column[external]), gamma, method=quantile_method)
        q = scales[j]
        if np.isnan(q):
            continue
        with np.errstate(invalid="ignore"):
            values = np.clip(column / q, -1.0, 1.0) if q > 0 else np.sign(column)
        values[~finite | mine] = 0.0
        scaled_t[j] = values
    pd = -(w @ scaled_t) + 0.0  # + 0.0 turns -0.0 into 0.0
    scaled = scaled_t.T
    return pd, scaled, scales


@dataclasses.dataclass
class PDResult:
    """PD scores and what went into them.

    Args:
        dataset (`Dataset`):
            The pairs with new columns `pd`, `pd_num_aspects` (how many other aspects had a gap),
            `reward_gaps` (struct of raw Δr̂ per aspect, `None` where not scored or unknown) and, with
            `score_own_aspect`, `reward_margin` (own-aspect gap divided by the own aspect's scale).
        aspects (`list[str]`):
            The aspect columns, in order.
        scales (`dict[str, float]`):
            q_k' per aspect.
        missing (`dict[str, int]`):
            Pairs per aspect k' for which the scorer had no gap although PD needed one.
        gaps (`np.ndarray`):
            The raw gap matrix `(n, K)`.
    """

    dataset: Dataset
    aspects: list[str]
    scales: dict[str, float]
    missing: dict[str, int]
    gaps: np.ndarray


def score_gaps(
    pairs: Dataset, scorer: AspectScorer, aspects: Sequence[str], config: PDConfig | None = None
) -> np.ndarray:
    """Raw gap matrix `(len(pairs), len(aspects))` from a scorer; pairs the config skips stay `NaN`.

    Uses the scorer's columnar `dataset_gaps` when it has one (ratings, precomputed scores), else batches of
    `PairBatch` through `reward_gaps` (reward models).
    """
    config = config or PDConfig()
    n = len(pairs)
    own = label_codes(pairs, "aspect", aspects)
    gaps = np.full((n, len(aspects)), np.nan)
    needed = {a: np.arange(n) if config.score_own_aspect else np.flatnonzero(own != j) for j, a in enumerate(aspects)}
    total = sum(len(idx) for idx in needed.values())
    columnar = getattr(scorer, "dataset_gaps", None)
    wanted = [c for c in ("pair_id", "prompt", "chosen", "rejected", "aspect", "chosen_ratings", "rejected_ratings")
              if c in pairs.column_names]
    view = pairs.select_columns(wanted)
    bar = tqdm(total=total, desc="Scoring pairs per aspect", unit="pair", disable=not config.progress)
    try:
        for j, aspect in enumerate(aspects):
            rows = needed[aspect]
            whole = columnar(pairs, aspect) if callable(columnar) else None
            if whole is not None:
                whole = np.asarray(whole, dtype=np.float64)
                if whole.shape != (n,):
                    raise DataError(
                        f"{type(scorer).__name__}.dataset_gaps returned shape {whole.shape} for {n} pairs; "
                        "it must return one gap per pair."
                    )
                gaps[rows, j] = whole[rows]
                bar.update(len(rows))
                continue
            for start in range(0, len(rows), config.batch_size):
                chunk = rows[start : start + config.batch_size]
                batch = PairBatch.from_batch(view[chunk.tolist()])
                out = np.asarray(scorer.reward_gaps(batch, aspect), dtype=np.float64)
                if out.shape != (len(chunk),):
                    raise DataError(
                        f"{type(scorer).__name__}.reward_gaps returned shape {out.shape} for {len(chunk)} pairs; "
                        "it must return one gap per pair."
                    )
                gaps[chunk, j] = out
                bar.update(len(chunk))
    finally:
        bar.close()
    return gaps


def _masked(values: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    """Arrow array with nulls where `values` is not finite (NaN gaps are "unknown", stored as `None`)."""
    finite = np.isfinite(values)
    return pa.array(np.where(finite, values, 0.0), type=arrow_type, mask=~finite)


def _add_columns(ds: Dataset, columns: dict[str, pa.Array], salt: bytes) -> Dataset:
    """Append Arrow columns with an explicit fingerprint.

    `Dataset.add_column` otherwise fingerprints by pickling the whole column (seconds per million rows); here the
    fingerprint is a hash of the input's fingerprint and `salt` (the gap matrix and settings), so equal inputs still
    give equal fingerprints.
    """
    for name in columns:
        if name in ds.column_names:
            ds = ds.remove_columns(name)
    base = getattr(ds, "_fingerprint", "") or ""
    salt_digest = hashlib.blake2b(salt, digest_size=16).digest()
    for name, column in columns.items():
        digest = hashlib.blake2b(digest_size=16)
        for part in (base.encode(), name.encode(), salt_digest):
            digest.update(part)
        ds = ds.add_column(name, column, new_fingerprint=digest.hexdigest())
        base = ds._fingerprint
    return ds


def compute_pd(pairs: Dataset, scorer: AspectScorer, config: PDConfig | None = None) -> PDResult:
    """Score every pair under the other aspects and compute its preference divergence.

    Args:
        pairs (`Dataset`):
            Internal pairwise form (from an adapter).
        scorer (`AspectScorer`):
            `RatingsScorer()` for PD(rati.), a `RewardModelScorer` (e.g. trained proxy RMs), or your own.
        config (`PDConfig`, *optional*):
            γ, aspects, weights, batching.

    Returns:
        `PDResult` with the scored dataset and the per-aspect scales.

    Example:

    ```python
    >>> ps = load_multiaspect_jsonl("sf_data2text_multiaspect.jsonl")
    >>> result = compute_pd(ps.pairs, RatingsScorer())
    >>> subset = select_by_pd(result.dataset, ratio=0.3)
    ```
    """
    config = config or PDConfig()
    check_pairs(pairs)
    if len(pairs) == 0:
        raise DataError("No pairs to score. Check the adapter's bad-row report: every input row was skipped.")
    aspects = list(config.aspects) if config.aspects is not None else distinct_strings(pairs, "aspect")
    if not aspects:
        raise ConfigError("PDConfig.aspects is empty; name at least one aspect, or leave it None to use the labels.")
    scorer_aspects = getattr(scorer, "aspects", None)
    if scorer_aspects is not None:
        unknown = [a for a in aspects if a not in set(scorer_aspects)]
        if unknown:
            raise ConfigError(
                f"The scorer cannot score aspects {unknown} (it has {list(scorer_aspects)}). Train/provide a scorer "
                "for them, or pass `PDConfig(aspects=...)` with the scored aspects only."
            )
    own = label_codes(pairs, "aspect", aspects)
    weights = None
    if config.weights is not None:
        weights = np.array([float(config.weights.get(a, 1.0)) for a in aspects])

    gaps = score_gaps(pairs, scorer, aspects, config)
    pd, scaled, scales = preference_divergence(
        gaps, own, gamma=config.gamma, weights=weights, quantile_method=config.quantile_method
    )
    rows_all = np.arange(len(own))
    other = np.ones_like(gaps, dtype=bool)
    other[rows_all[own >= 0], own[own >= 0]] = False
    have = np.isfinite(gaps) & other
    missing = {a: int((other[:, j] & ~np.isfinite(gaps[:, j])).sum()) for j, a in enumerate(aspects)}
    for a, count in missing.items():
        if count:
            logger.warning("PD: %d pairs have no %r gap (missing rating or score); it adds 0 for them.", count, a)

    columns: dict[str, pa.Array] = {
        "pd": pa.array(pd, type=pa.float64()),
        "pd_num_aspects": pa.array(have.sum(axis=1).astype(np.int32), type=pa.int32()),
        "reward_gaps": pa.StructArray.from_arrays(
            [_masked(gaps[:, j], pa.float64()) for j in range(len(aspects))], names=list(aspects)
        ),
    }
    if config.score_own_aspect:
        margin = np.full(len(pairs), np.nan)
        rows = rows_all[own >= 0]
        q = scales[own[rows]]
        raw = gaps[rows, own[rows]]
        with np.errstate(divide="ignore", invalid="ignore"):
            margin[rows] = np.where(q > 0, raw / q, np.sign(raw))
        columns["reward_margin"] = _masked(margin, pa.float64())
    salt = repr((aspects, config.gamma, config.weights, config.quantile_method, type(scorer).__name__)).encode()
    out = _add_columns(pairs, columns, salt + gaps.tobytes())
    return PDResult(
        dataset=out,
        aspects=aspects,
        scales={a: float(scales[j]) for j, a in enumerate(aspects)},
        missing=missing,
        gaps=gaps,
    )


def conflict_rate(ds: Dataset | np.ndarray | Sequence[float], pd_column: str = PD_COLUMN) -> float:
    """Share of pairs with PD > 0, i.e. whose other aspects on balance prefer the rejected response."""
    values = float_column(ds, pd_column) if isinstance(ds, Dataset) else np.asarray(ds, dtype=np.float64)
    return float((values > 0).mean()) if len(values) else float("nan")


def reference_conflict_rate(
    ds: Dataset, reference: str = "overall", *, lower_is_better: bool = False
) -> tuple[float, int]:
    """Share of pairs whose `reference` rating (e.g. a holistic "overall" score) prefers the rejected response.

    The paper's motivating statistic ("~30 % of UltraFeedback pairs conflict with the overall preference"). Only
    pairs with the reference rating on both sides count.

    Returns:
        `(rate, pairs counted)`; the rate is `NaN` when no pair has the reference rating.
    """
    if "chosen_ratings" not in ds.column_names or "rejected_ratings" not in ds.column_names:
        return float("nan"), 0
    feature = ds.features["chosen_ratings"]
    if not isinstance(feature, dict) or reference not in feature:
        return float("nan"), 0
    chosen = struct_field_floats(ds, "chosen_ratings", reference)
    rejected = struct_field_floats(ds, "rejected_ratings", reference)
    if chosen is None or rejected is None:
        return float("nan"), 0
    both = np.isfinite(chosen) & np.isfinite(rejected)
    if not both.any():
        return float("nan"), 0
    diff = chosen[both] - rejected[both]
    if lower_is_better:
        diff = -diff
    return float((diff < 0).mean()), int(both.sum())


def pd_quantiles(
    ds: Dataset | np.ndarray,
    pd_column: str = PD_COLUMN,
    qs: Sequence[float] = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0),
) -> dict[str, float]:
    """Quantiles of PD, as `{"q0.00": ..., "q0.50": ...}`."""
    values = float_column(ds, pd_column) if isinstance(ds, Dataset) else np.asarray(ds, dtype=np.float64)
    if not len(values):
        return {}
    return {f"q{q:.2f}": float(np.quantile(values, q)) for q in qs}
