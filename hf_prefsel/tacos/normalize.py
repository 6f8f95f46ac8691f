"""InsTag-style tag normalization for TACOS: frequency filter, rule, semantic and association aggregation.

Open tagging produces tens of thousands of spellings of a few thousand intentions ("Math", "math problem",
"Mathematical calculation", ...). Clustering and quotas only make sense on a compact vocabulary, so
`TagNormalizer` learns a raw-tag -> canonical-tag map on the whole tagged corpus (`fit`) and applies it row by row
(`transform`, or as a `datasets.map` callable).

All four steps of InsTag (Lu et al., 2023) as restated by the TACOS authors are here, each switchable:

1. frequency filtering: drop tags seen in fewer than `alpha` samples (default 20, scaled down for small data);
2. rule aggregation: lowercase, every run of non-word characters to one space, stem *every* word;
3. semantic aggregation: embed tags, merge groups whose cosine similarity passes a threshold (single linkage, as
   DBSCAN with `min_samples=1`), keeping the most frequent raw spelling as the name;
4. association aggregation: pair supports from the sparse co-occurrence matrix of per-sample tag sets; a tag that
   (almost) always comes with another one (`confidence(a -> b) >= min_confidence`, `support >= min_support`) is
   merged into it, repeated until stable.

`TagNormalizerConfig.released_code()` instead reproduces the released TACOS code exactly (its counting, cleaning,
whole-tag NLTK stemming, naming and row dropping; see the config). The pieces live in `normalize_config`,
`normalize_rules` (cleaning + stemming), `normalize_corpus` (integer corpus, frequency and rule steps),
`normalize_semantic` and `normalize_association`; this module runs them and re-exports their public names.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..errors import ConfigError, DataError, MissingColumnError
from .normalize_association import associate, fpgrowth, pair_counts
from .normalize_config import ALPACA_SIZE, TagNormalizerConfig, scaled_threshold
from .normalize_corpus import (
    Corpus,
    compact,
    frequency_filter,
    group_counts,
    n_groups,
    read_corpus,
    representatives,
    rule_groups,
    unique_int,
)
from .normalize_rules import clean_tag, is_blank, key_function, rule_key
from .normalize_semantic import semantic_groups, tag_embedder
from .vocabulary import NormalizationStep, TagVocabulary

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

    from ..embed import Embedder


def _has_tags(tag_lists: list[list[str]]) -> list[bool]:
    """`Dataset.filter` predicate (batched, on the output column) used by `drop_untagged_rows`."""
    return [bool(tags) for tags in tag_lists]


class TagNormalizer:
    """Learn a raw tag -> canonical tag map on a tagged corpus and apply it (InsTag normalization).

    `fit` sees the whole corpus (frequencies and co-occurrences are corpus statistics); the instance is then a
    picklable callable for `Dataset.map(batched=True)` that adds `config.output_column`. Pickling keeps only the
    config and the vocabulary, so `datasets` fingerprints and caches the map.

    Rows left without any canonical tag (tagging failed, or every tag was filtered) get `[]`; `transform` drops
    them instead when `config.drop_untagged_rows` is set (as InsTag and the released TACOS code do).

    Args:
        config ([`TagNormalizerConfig`], *optional*): settings; defaults run all four steps.
        embedder ([`Embedder`], *optional*): used by semantic aggregation. Defaults to the shared
            [`tag_embedder`], which [`TagClusterer`] also uses, so canonical tags are embedded only once.
        vocabulary ([`TagVocabulary`], *optional*): a fitted vocabulary (e.g. from `TagVocabulary.from_pretrained`),
            making the normalizer ready to `transform` without `fit`.

    Example:
        >>> normalizer = TagNormalizer()
        >>> ds = normalizer.fit_transform(ds)          # adds "canonical_tags"
        >>> print(normalizer.vocabulary.report())      # compression per step
        >>> normalizer.vocabulary.save_pretrained("tag_vocabulary")
    """

    def __init__(
        self,
        config: TagNormalizerConfig | None = None,
        *,
        embedder: Embedder | None = None,
        vocabulary: TagVocabulary | None = None,
    ):
        if config is None and vocabulary is not None:
            config = TagNormalizerConfig.from_dict(vocabulary.config)
        self.config = config or TagNormalizerConfig()
        self._embedder = embedder
        self.vocabulary = vocabulary

    @classmethod
    def from_vocabulary(cls, vocabulary: TagVocabulary, **overrides: Any) -> TagNormalizer:
        """A ready-to-transform normalizer from a fitted (e.g. downloaded) vocabulary."""
        config = TagNormalizerConfig.from_dict({**vocabulary.config, **overrides})
        return cls(config, vocabulary=vocabulary)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = tag_embedder(self.config.embedding_model)
        return self._embedder

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "vocabulary": self.vocabulary, "_embedder": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        fitted = f"{self.vocabulary.n_canonical} canonical tags" if self.vocabulary is not None else "not fitted"
        return f"TagNormalizer({fitted})"

    # ------------------------------------------------------------------ fit

    def fit(self, data: Dataset | Sequence[Sequence[str] | None]) -> TagNormalizer:
        """Learn the vocabulary from a tagged `Dataset` (column `config.tags_column`) or a list of tag lists.

        Returns:
            `self`, with `self.vocabulary` set.

        Raises:
            [`MissingColumnError`]: the dataset has no `config.tags_column`.
            [`DataError`]: a row's tags are not a list of strings.
        """
        cfg = self.config
        corpus = read_corpus(data, cfg.tags_column, cfg.counts, option="tags_column")
        n = corpus.n_samples
        key = key_function(cfg)
        steps: list[NormalizationStep] = []
        group = np.arange(len(corpus.raw), dtype=np.int64)  # raw id -> group id (-1 = dropped)
        if not cfg.keep_empty_keys:
            group[np.array([is_blank(r) for r in corpus.raw], dtype=bool)] = -1
        group = compact(group)

        def run(name: str, enabled: bool, params: dict[str, Any], fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
            before = n_groups(group)
            start = time.perf_counter()
            new = compact(fn(group)) if enabled else group
            steps.append(
                NormalizationStep(
                    name=name,
                    enabled=enabled,
                    unique_before=before,
                    unique_after=n_groups(new),
                    params=params if enabled else {},
                    seconds=round(time.perf_counter() - start, 3),
                )
            )
            return new

        alpha = cfg.effective_alpha(n)
        freq_params = {
            "alpha": alpha,
            "alpha_configured": cfg.alpha,
            "counted_on": "rule keys" if cfg.frequency_after_rules else "raw tags",
            "counts": cfg.counts,
        }
        rule_params = {
            "lowercase": cfg.lowercase,
            "cleaning": cfg.cleaning,
            "stemmer": cfg.stemmer,
            "stem_scope": cfg.stem_scope,
            "keep_empty_keys": cfg.keep_empty_keys,
        }

        def frequency(g: np.ndarray) -> np.ndarray:
            return frequency_filter(corpus, g, alpha)

        def rules(g: np.ndarray) -> np.ndarray:
            return rule_groups(corpus, g, key, cfg.keep_empty_keys)

        if not cfg.frequency_after_rules:
            group = run("frequency_filter", cfg.frequency_filter, freq_params, frequency)
        group = run("rule_aggregation", cfg.rule_aggregation, rule_params, rules)
        if cfg.frequency_after_rules:
            group = run("frequency_filter", cfg.frequency_filter, freq_params, frequency)

        def semantic(g: np.ndarray) -> np.ndarray:
            return semantic_groups(corpus, g, self.embedder, cfg.semantic_threshold, cfg.semantic_neighbours, cfg.lowercase)

        group = run(
            "semantic_aggregation",
            cfg.semantic_aggregation,
            {
                "threshold": cfg.semantic_threshold,
                "model": cfg.embedding_model or "all-MiniLM-L6-v2 (bundled)",
                "neighbours": cfg.semantic_neighbours,
            },
            semantic,
        )

        min_support = cfg.effective_min_support(n)
        association_info: dict[str, Any] = {}

        def association(g: np.ndarray) -> np.ndarray:
            out, info = associate(corpus, g, min_support, cfg.min_confidence, cfg.association_max_rounds)
            association_info.update(info)
            return out

        group = run(
            "association_aggregation",
            cfg.association_aggregation,
            {
                "min_support": min_support,
                "min_support_configured": cfg.min_support,
                "min_confidence": cfg.min_confidence,
                "max_rounds": cfg.association_max_rounds,
            },
            association,
        )
        if cfg.association_aggregation:
            steps[-1].params.update(association_info)

        self.vocabulary = self._build_vocabulary(corpus, group, steps, key)
        return self

    def _build_vocabulary(
        self, corpus: Corpus, group: np.ndarray, steps: list[NormalizationStep], key: Callable[[str], str]
    ) -> TagVocabulary:
        cfg = self.config
        reps = representatives(corpus, group)
        names = [self._canonical_name(corpus.raw[r], key) for r in reps]
        # Distinct groups whose names collide (possible only with exotic settings) become one canonical tag.
        name_index: dict[str, int] = {}
        to_final = np.array([name_index.setdefault(name, len(name_index)) for name in names], dtype=np.int64)
        final = np.full_like(group, -1)
        final[group >= 0] = to_final[group[group >= 0]]
        counts = group_counts(corpus, final)
        canonical_counts = dict(
            sorted(((name, int(counts[i])) for name, i in name_index.items()), key=lambda kv: (-kv[1], kv[0]))
        )
        raw_to_canonical: dict[str, str | None] = {
            raw: (names[g] if g >= 0 else None) for raw, g in zip(corpus.raw, group.tolist())
        }
        occ = final[corpus.raw_id] if len(corpus.raw_id) else np.zeros(0, dtype=np.int64)
        samples_with_tags = int(len(unique_int(corpus.sample[occ >= 0])))
        key_to_canonical: dict[str, str] = {}
        if cfg.rule_aggregation:
            # Unseen spellings at transform time are matched through their rule key to the canonical tag whose
            # members have that key (the most frequent such tag if several).
            best: dict[str, tuple[int, str]] = {}
            for raw_id in np.flatnonzero(group >= 0).tolist():
                k = key(corpus.raw[raw_id])
                score = (int(corpus.raw_counts[raw_id]), names[group[raw_id]])
                if (cfg.keep_empty_keys or not is_blank(k)) and (k not in best or score > best[k]):
                    best[k] = score
            key_to_canonical = {k: v[1] for k, v in best.items()}
        return TagVocabulary(
            raw_to_canonical=raw_to_canonical,
            canonical_counts=canonical_counts,
            raw_counts={raw: int(c) for raw, c in zip(corpus.raw, corpus.raw_counts)},
            steps=steps,
            config=cfg.to_dict(),
            n_samples=corpus.n_samples,
            n_samples_with_raw_tags=len(unique_int(corpus.sample)),
            n_samples_with_canonical_tags=samples_with_tags,
            n_occurrences=int(len(corpus.sample)),
            key_to_canonical=key_to_canonical,
        )

    def _canonical_name(self, raw: str, key: Callable[[str], str]) -> str:
        if self.config.canonical_names == "key":
            return key(raw)
        name = " ".join(raw.split())
        if self.config.rule_aggregation and self.config.lowercase:
            name = name.lower()
        return name

    # ------------------------------------------------------------------ transform

    def _require_vocabulary(self) -> TagVocabulary:
        if self.vocabulary is None:
            raise ConfigError(
                "This TagNormalizer is not fitted. Call `fit(ds)` (or `fit_transform`) first, or build it from a "
                "saved vocabulary with `TagNormalizer.from_vocabulary(TagVocabulary.from_pretrained(path))`."
            )
        return self.vocabulary

    def normalize(self, tags: Sequence[str] | None) -> list[str]:
        """Canonical tags of one row: mapped, deduplicated, in first-seen order."""
        vocab = self._require_vocabulary()
        if not tags:
            return []
        mapping = vocab.raw_to_canonical
        out: dict[str, None] = {}
        for tag in tags:
            if not isinstance(tag, str):
                raise DataError(f"Tags must be strings, got {type(tag).__name__} ({tag!r}).")
            if tag in mapping:
                canonical = mapping[tag]
            else:
                canonical = self._unseen(tag, vocab)
            if canonical is not None:
                out[canonical] = None
        return list(out)

    def _unseen(self, tag: str, vocab: TagVocabulary) -> str | None:
        cfg = self.config
        if cfg.rule_aggregation:
            k = key_function(cfg)(tag)
            if k in vocab.key_to_canonical:
                return vocab.key_to_canonical[k]
        if cfg.unknown_tags == "keep":
            cleaned = clean_tag(tag, cfg.lowercase, cfg.cleaning)
            return cleaned if cfg.keep_empty_keys or not is_blank(cleaned) else None
        return None

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[list[str]]]:
        """`Dataset.map(normalizer, batched=True)`: adds `config.output_column` (rows are never dropped here)."""
        column = self.config.tags_column
        if column not in batch:
            raise MissingColumnError(column, list(batch), option="tags_column")
        return {self.config.output_column: [self.normalize(tags) for tags in batch[column]]}

    def transform(self, data: Dataset | Sequence[Sequence[str] | None], **map_kwargs: Any) -> Any:
        """Add `config.output_column` to a `Dataset` (via `map`), or return canonical tag lists for a list input.

        With `config.drop_untagged_rows`, rows left without a canonical tag are removed from the output (from the
        `Dataset`, or from the returned list, which then no longer lines up with the input).

        Args:
            data: a `Dataset` with `config.tags_column`, or a list of tag lists.
            **map_kwargs: passed to `Dataset.map` (e.g. `num_proc`, `desc`).
        """
        self._require_vocabulary()
        try:
            from datasets import Dataset
        except ImportError:  # pragma: no cover
            Dataset = ()  # type: ignore[assignment,misc]
        if isinstance(data, Dataset):
            if self.config.tags_column not in data.column_names:
                raise MissingColumnError(self.config.tags_column, data.column_names, option="tags_column")
            map_kwargs.setdefault("desc", "Normalizing tags")
            out = data.map(self, batched=True, **map_kwargs)
            if self.config.drop_untagged_rows:
                out = out.filter(
                    _has_tags,
                    input_columns=self.config.output_column,
                    batched=True,
                    num_proc=map_kwargs.get("num_proc"),
                    desc="Dropping rows without canonical tags",
                )
            return out
        rows = [self.normalize(tags) for tags in data]
        return [r for r in rows if r] if self.config.drop_untagged_rows else rows

    def fit_transform(self, data: Dataset | Sequence[Sequence[str] | None], **map_kwargs: Any) -> Any:
        """`fit(data)` then `transform(data)`."""
        return self.fit(data).transform(data, **map_kwargs)


__all__ = [
    "ALPACA_SIZE",
    "NormalizationStep",
    "TagNormalizer",
    "TagNormalizerConfig",
    "clean_tag",
    "fpgrowth",
    "pair_counts",
    "rule_key",
    "scaled_threshold",
    "tag_embedder",
]
