"""`TagVocabulary`: the artifact a fitted `TagNormalizer` produces (and tag clustering may extend).

It is what makes a TACOS selection reproducible and inspectable: the exact raw -> canonical map, the counts, how
much each normalization step compressed the tag set and, once tags are clustered, each canonical tag's cluster.
It saves to a folder (`artifact.json` + `tensors.safetensors` + card), loads from a folder or the Hub, and pushes to
the Hub through [`hf_prefsel.hub.Artifact`].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import ArtifactError
from ..hub.artifact import Artifact


@dataclass
class NormalizationStep:
    """Statistics of one normalization step: unique tags before and after it (the compression report).

    Args:
        name (`str`): `frequency_filter`, `rule_aggregation`, `semantic_aggregation` or `association_aggregation`.
        enabled (`bool`): whether the step ran (a disabled step keeps before == after).
        unique_before (`int`), unique_after (`int`): distinct tags before and after the step.
        params (`dict`): the parameters actually used (e.g. the scaled `alpha`).
        seconds (`float`): wall time of the step.
    """

    name: str
    enabled: bool
    unique_before: int
    unique_after: int
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def reduction(self) -> float:
        """Fraction of distinct tags removed by this step (0 when there was nothing to remove)."""
        return 1.0 - self.unique_after / self.unique_before if self.unique_before else 0.0


class TagVocabulary(Artifact):
    """Raw -> canonical tag map with counts, per-step compression statistics and optional tag clusters.

    Build it with [`TagNormalizer.fit`]; load a saved one with `TagVocabulary.from_pretrained(path_or_repo_id)`.

    Attributes:
        raw_to_canonical (`dict[str, str | None]`): every raw tag seen by `fit` -> its canonical tag, or `None` if
            it was dropped (frequency filter, or no word characters).
        canonical_counts (`dict[str, int]`): canonical tag -> number of samples holding it, most frequent first.
        raw_counts (`dict[str, int]`): raw tag -> number of samples holding it.
        steps (`list[NormalizationStep]`): compression per step, in the order they ran.
        config (`dict`): the `TagNormalizerConfig` used, as a dict.
        n_samples (`int`): rows in the fitted corpus; `n_samples_with_raw_tags` / `n_samples_with_canonical_tags`
            how many had at least one tag before / after normalization.
        n_occurrences (`int`): distinct (sample, raw tag) pairs.
        key_to_canonical (`dict[str, str]`): rule key -> canonical tag, to map spellings unseen at fit time.
        tag_clusters (`dict[str, int]`, *optional*): canonical tag -> cluster id, set by [`TagClusterer.fit`].
        centroids (`np.ndarray`, *optional*): `(K, d)` cluster centroids, to place new tags.
        cluster_config (`dict`, *optional*): the clustering config used.

    Example:
        >>> vocab = TagNormalizer().fit(ds).vocabulary
        >>> print(vocab.report())
        >>> vocab.save_pretrained("tacos_vocabulary")
        >>> TagVocabulary.from_pretrained("tacos_vocabulary").canonical("Math Problems")
        'math problem'
    """

    artifact_type = "tacos_tag_vocabulary"
    format_version = 1

    def __init__(
        self,
        raw_to_canonical: dict[str, str | None],
        canonical_counts: dict[str, int],
        raw_counts: dict[str, int],
        steps: list[NormalizationStep],
        config: dict[str, Any],
        n_samples: int,
        n_samples_with_raw_tags: int = 0,
        n_samples_with_canonical_tags: int = 0,
        n_occurrences: int = 0,
        key_to_canonical: dict[str, str] | None = None,
        tag_clusters: dict[str, int] | None = None,
        centroids: np.ndarray | None = None,
        cluster_config: dict[str, Any] | None = None,
    ):
        self.raw_to_canonical = raw_to_canonical
        self.canonical_counts = canonical_counts
        self.raw_counts = raw_counts
        self.steps = steps
        self.config = config
        self.n_samples = n_samples
        self.n_samples_with_raw_tags = n_samples_with_raw_tags
        self.n_samples_with_canonical_tags = n_samples_with_canonical_tags
        self.n_occurrences = n_occurrences
        self.key_to_canonical = key_to_canonical or {}
        self.tag_clusters = tag_clusters
        self.centroids = centroids
        self.cluster_config = cluster_config

    # ------------------------------------------------------------------ queries

    @property
    def n_raw(self) -> int:
        """Distinct raw tags seen by `fit`."""
        return len(self.raw_to_canonical)

    @property
    def n_canonical(self) -> int:
        """Distinct canonical tags."""
        return len(self.canonical_counts)

    @property
    def canonical_tags(self) -> list[str]:
        """Canonical tags, most frequent first."""
        return list(self.canonical_counts)

    def canonical(self, raw: str) -> str | None:
        """The canonical tag of a raw tag seen by `fit` (`None` if it was dropped or never seen)."""
        return self.raw_to_canonical.get(raw)

    def members(self, canonical: str) -> list[str]:
        """Raw tags merged into `canonical`, most frequent first."""
        out = [raw for raw, c in self.raw_to_canonical.items() if c == canonical]
        return sorted(out, key=lambda r: (-self.raw_counts.get(r, 0), r))

    def compression(self) -> list[tuple[str, int, int]]:
        """`(step, unique_before, unique_after)` for every step, in order."""
        return [(s.name, s.unique_before, s.unique_after) for s in self.steps]

    def report(self, top: int = 10) -> str:
        """A plain-text compression report: distinct tags before/after each step, plus the top canonical tags."""
        lines = [
            f"Tag normalization: {self.n_raw:,} raw tags -> {self.n_canonical:,} canonical tags"
            + (f" ({1 - self.n_canonical / self.n_raw:.1%} fewer)" if self.n_raw else ""),
            f"  samples: {self.n_samples:,} rows, {self.n_samples_with_raw_tags:,} with raw tags, "
            f"{self.n_samples_with_canonical_tags:,} with canonical tags; {self.n_occurrences:,} tag occurrences",
            f"  {'step':<24} {'ran':<4} {'before':>9} {'after':>9} {'removed':>8} {'seconds':>8}  params",
        ]
        for s in self.steps:
            params = ", ".join(f"{k}={v}" for k, v in s.params.items())
            lines.append(
                f"  {s.name:<24} {'yes' if s.enabled else 'no':<4} {s.unique_before:>9,} {s.unique_after:>9,} "
                f"{s.reduction:>8.1%} {s.seconds:>8.2f}  {params}"
            )
        if self.tag_clusters is not None:
            n_clusters = len(set(self.tag_clusters.values()))
            lines.append(f"  clusters: {n_clusters} over {len(self.tag_clusters):,} canonical tags")
        if top and self.canonical_counts:
            head = ", ".join(f"{t} ({c})" for t, c in list(self.canonical_counts.items())[:top])
            lines.append(f"  top tags: {head}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"TagVocabulary(raw={self.n_raw}, canonical={self.n_canonical}, samples={self.n_samples})"

    # ------------------------------------------------------------------ artifact interface

    def to_dict(self) -> dict:
        return {
            "raw_to_canonical": self.raw_to_canonical,
            "canonical_counts": self.canonical_counts,
            "raw_counts": self.raw_counts,
            "steps": [asdict(s) for s in self.steps],
            "config": self.config,
            "n_samples": self.n_samples,
            "n_samples_with_raw_tags": self.n_samples_with_raw_tags,
            "n_samples_with_canonical_tags": self.n_samples_with_canonical_tags,
            "n_occurrences": self.n_occurrences,
            "key_to_canonical": self.key_to_canonical,
            "tag_clusters": self.tag_clusters,
            "cluster_config": self.cluster_config,
        }

    def tensors(self) -> dict[str, np.ndarray]:
        return {"centroids": np.asarray(self.centroids, dtype=np.float32)} if self.centroids is not None else {}

    @classmethod
    def from_dict(cls, data: dict, tensors: dict[str, np.ndarray]) -> TagVocabulary:
        try:
            return cls(
                raw_to_canonical=dict(data["raw_to_canonical"]),
                canonical_counts={k: int(v) for k, v in data["canonical_counts"].items()},
                raw_counts={k: int(v) for k, v in data["raw_counts"].items()},
                steps=[NormalizationStep(**s) for s in data["steps"]],
                config=dict(data["config"]),
                n_samples=int(data["n_samples"]),
                n_samples_with_raw_tags=int(data.get("n_samples_with_raw_tags", 0)),
                n_samples_with_canonical_tags=int(data.get("n_samples_with_canonical_tags", 0)),
                n_occurrences=int(data.get("n_occurrences", 0)),
                key_to_canonical=dict(data.get("key_to_canonical") or {}),
                tag_clusters={k: int(v) for k, v in data["tag_clusters"].items()} if data.get("tag_clusters") else None,
                centroids=tensors.get("centroids"),
                cluster_config=data.get("cluster_config"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(
                f"The tag vocabulary is missing or has a malformed field ({type(exc).__name__}: {exc}). It was not "
                "written by TagVocabulary.save_pretrained, or was edited by hand: fit and save it again."
            ) from exc

    def card_body(self) -> str:
        lines = [
            "Tag vocabulary for TACOS open-tag clustering (He et al., ICME 2025, arXiv:2507.03673), normalized with "
            "the InsTag steps (Lu et al., 2023, arXiv:2308.07074).",
            "",
            f"- raw tags: {self.n_raw:,}; canonical tags: {self.n_canonical:,}",
            f"- samples: {self.n_samples:,} ({self.n_samples_with_canonical_tags:,} with canonical tags)",
            "",
            "| step | ran | unique before | unique after | params |",
            "| --- | --- | --- | --- | --- |",
        ]
        for s in self.steps:
            params = ", ".join(f"{k}={v}" for k, v in s.params.items()).replace("|", "\\|")
            lines.append(
                f"| {s.name} | {'yes' if s.enabled else 'no'} | {s.unique_before:,} | {s.unique_after:,} | {params} |"
            )
        if self.canonical_counts:
            lines += ["", "Most frequent canonical tags: " + ", ".join(
                f"`{t}` ({c})" for t, c in list(self.canonical_counts.items())[:20]
            )]
        if self.tag_clusters is not None:
            lines += ["", f"Tags are clustered into {len(set(self.tag_clusters.values()))} clusters (`tag_clusters`)."]
        return "\n".join(lines)


__all__ = ["NormalizationStep", "TagVocabulary"]
