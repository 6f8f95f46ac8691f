"""`TagNormalizerConfig`: every switch of TACOS tag normalization, with our defaults and the released-code preset.

The defaults are what we measured to work best; [`TagNormalizerConfig.released_code`] sets each switch the way the
authors' released code (`hexixiang/OpenCS`, `TagCluster.execute` up to the rule step) behaves, so its vocabulary
can be reproduced exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from ..errors import ConfigError
from .normalize_rules import stem_function

#: Size of Alpaca, the corpus the InsTag/TACOS thresholds (alpha=20, min support 40) were set for.
ALPACA_SIZE = 52_002

_CHOICES: dict[str, tuple[str, ...]] = {
    "unknown_tags": ("drop", "keep"),
    "counts": ("samples", "occurrences"),
    "cleaning": ("words", "non_word_runs"),
    "stem_scope": ("word", "tag"),
    "canonical_names": ("most_frequent", "key"),
}


@dataclass
class TagNormalizerConfig:
    """Settings of [`TagNormalizer`]; every step can be switched off.

    Defaults run all four InsTag steps. [`TagNormalizerConfig.released_code`] reproduces what the released TACOS
    code runs (frequency filter and rule aggregation only, with its counting, cleaning, stemming and naming).

    Thresholds given as counts (`alpha`, `min_support`) were chosen for Alpaca's 52k samples. On a smaller corpus
    the same count would throw away nearly everything, so they are scaled linearly with the number of samples
    (a tag's count grows linearly with corpus size, so this keeps the same *relative* frequency threshold):
    `effective = clip(round(value * n_samples / reference_size), floor, value)`. They are never raised above the
    configured value for larger corpora. Set `reference_size=None` to use the values as given.

    Args:
        tags_column (`str`, defaults to `"tags"`):
            Column holding each row's raw tags as a list of strings (`[]` for rows whose tagging failed).
        output_column (`str`, defaults to `"canonical_tags"`):
            Column `transform` adds: the row's canonical tags, deduplicated, in first-seen order.
        frequency_filter (`bool`, defaults to `True`):
            Drop tags seen in fewer than `alpha` samples (InsTag step 1). Rare tags are mostly noise and would
            each become a cluster point of their own.
        alpha (`int`, defaults to `20`):
            InsTag/TACOS frequency threshold for a 52k-sample corpus (scaled, see above).
        min_alpha (`int`, defaults to `1`):
            Floor of the scaled `alpha`. With the default 1, corpora under ~1.3k samples keep every tag: there a
            count of 1 is not evidence of noise.
        frequency_after_rules (`bool`, defaults to `False`):
            Count frequencies after rule aggregation instead of on raw strings. InsTag filters raw strings first
            (the default), which drops rare spellings ("Math-Problem") of frequent tags; `True` keeps them.
        counts (`"samples"` or `"occurrences"`, defaults to `"samples"`):
            What a tag's count is, for the frequency filter, `raw_counts` and `canonical_counts`: the number of
            rows holding it, or the number of times it is listed (a row listing it twice counts 2, as the released
            code does). Samples by default: a tag listed twice in one row is still one intention of one row, and
            selection quotas are over rows. Association supports always count rows.
        rule_aggregation (`bool`, defaults to `True`):
            InsTag step 2: merge tags with the same rule key (cleaning, then stemming).
        lowercase (`bool`, defaults to `True`):
            Lowercase as part of rule aggregation; the canonical names are lowercased too.
        cleaning (`"words"` or `"non_word_runs"`, defaults to `"words"`):
            `"words"`: every run of non-word characters *and underscores* separates words, and the edges are
            trimmed (`"Code_Generation / Python!"` -> `"code generation python"`). `"non_word_runs"`: every run
            of `\\W` characters becomes one space and nothing is trimmed, so `_` stays and `"dance."` becomes
            `"dance "` (the released code). Words by default: taggers write `code_generation` and `code
            generation` for the same intention, and trailing punctuation is not part of a tag.
        stemmer (`str` or `None`, defaults to `"porter"`):
            `"nltk_porter"` is NLTK's `PorterStemmer()` in its default `NLTK_EXTENSIONS` mode (what the released
            code uses; it keeps irregular forms such as `news`, `dying` -> `die`, and leaves strings of 1-2
            characters alone). Any other value names a Snowball algorithm: `"porter"` is Porter's original
            algorithm (NLTK's `ORIGINAL_ALGORITHM` mode, not its default), `"english"` is Porter2. `None` disables
            stemming. `"porter"` by default: the published algorithm, so vocabularies fitted before stay the same.
        stem_scope (`"word"` or `"tag"`, defaults to `"word"`):
            Stem every word of the cleaned tag, or the whole cleaned tag as one string, which changes only its
            end (the released code: "writing poems" -> "writing poem"). Every word by default, so "Writing Poems"
            and "write poem" merge.
        keep_empty_keys (`bool`, defaults to `False`):
            Keep tags whose rule key is blank (`"&"`, `"+"`, `""`) as canonical tags of their own instead of
            dropping them (the released code keeps them). Dropped by default: a tag with no word characters
            names no intention.
        canonical_names (`"most_frequent"` or `"key"`, defaults to `"most_frequent"`):
            Name each canonical tag by its most frequent raw spelling (normalized whitespace, lowercased if
            `lowercase`), or by the rule key of that spelling (the released code names a group by its stemmed
            key, e.g. "mathematical calcul"). Readable spellings by default; the groups are the same.
        drop_untagged_rows (`bool`, defaults to `False`):
            `transform` drops rows left without any canonical tag (the released code does, they cannot be
            clustered). Kept with `[]` by default, so the output stays row-aligned with the input.
        semantic_aggregation (`bool`, defaults to `True`):
            InsTag step 3: embed tags and merge near-duplicates.
        semantic_threshold (`float`, defaults to `0.85`):
            Minimum cosine similarity for two tags to be merged (single linkage). InsTag's 0.05 DBSCAN distance
            was for PhraseBERT; for the default MiniLM we measured 20 hand-labelled synonym pairs ("poem
            writing" / "poetry writing") and 20 related-but-different pairs ("python programming" / "java
            programming"): no different pair scored above 0.78, 7 of 20 synonyms scored above 0.85 (13 above
            0.80). Single linkage chains, so precision matters more than recall here.
        semantic_neighbours (`int`, defaults to `16`):
            Nearest neighbours searched per tag when building the similarity graph.
        embedding_model (`str`, *optional*):
            sentence-transformers model for the semantic step; defaults to the bundled all-MiniLM-L6-v2.
        association_aggregation (`bool`, defaults to `True`):
            InsTag step 4: merge a tag into another when it (almost) never appears without it.
        min_support (`int`, defaults to `40`):
            Minimum number of samples holding both tags of a rule (InsTag; scaled, see above).
        min_support_floor (`int`, defaults to `5`):
            Floor of the scaled `min_support`: with fewer co-occurrences a 99% confidence is not evidence.
        min_confidence (`float`, defaults to `0.99`):
            Minimum `support(a, b) / support(a)` for merging `a` into `b` (InsTag).
        association_max_rounds (`int`, defaults to `10`):
            Merging changes the tag sets, which can create new rules; rounds repeat until nothing merges or this
            many rounds ran ("recursively merge" in InsTag).
        reference_size (`int` or `None`, defaults to `52002`):
            Corpus size the count thresholds were set for (Alpaca). `None` disables scaling (the released code
            uses `alpha` as given).
        unknown_tags (`"drop"` or `"keep"`, defaults to `"drop"`):
            What `transform` does with a tag never seen by `fit` whose rule key matches no known tag: drop it, or
            keep its cleaned spelling as a canonical tag of its own.
    """

    tags_column: str = "tags"
    output_column: str = "canonical_tags"
    frequency_filter: bool = True
    alpha: int = 20
    min_alpha: int = 1
    frequency_after_rules: bool = False
    rule_aggregation: bool = True
    lowercase: bool = True
    stemmer: str | None = "porter"
    semantic_aggregation: bool = True
    semantic_threshold: float = 0.85
    semantic_neighbours: int = 16
    embedding_model: str | None = None
    association_aggregation: bool = True
    min_support: int = 40
    min_support_floor: int = 5
    min_confidence: float = 0.99
    association_max_rounds: int = 10
    reference_size: int | None = ALPACA_SIZE
    unknown_tags: Literal["drop", "keep"] = "drop"
    # Added after the fields above, so positional construction keeps working.
    counts: Literal["samples", "occurrences"] = "samples"
    cleaning: Literal["words", "non_word_runs"] = "words"
    stem_scope: Literal["word", "tag"] = "word"
    keep_empty_keys: bool = False
    canonical_names: Literal["most_frequent", "key"] = "most_frequent"
    drop_untagged_rows: bool = False

    def __post_init__(self) -> None:
        for name in ("alpha", "min_alpha", "min_support", "min_support_floor", "association_max_rounds", "semantic_neighbours"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"TagNormalizerConfig.{name} must be an integer >= 1, got {value!r}.")
        if not 0.0 < self.min_confidence <= 1.0:
            raise ConfigError(f"TagNormalizerConfig.min_confidence must be in (0, 1], got {self.min_confidence!r}.")
        if not -1.0 <= self.semantic_threshold <= 1.0:
            raise ConfigError(
                f"TagNormalizerConfig.semantic_threshold is a cosine similarity in [-1, 1], got {self.semantic_threshold!r}."
            )
        if self.reference_size is not None and self.reference_size < 1:
            raise ConfigError(f"TagNormalizerConfig.reference_size must be >= 1 or None, got {self.reference_size!r}.")
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(
                    f"TagNormalizerConfig.{name} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}."
                )
        if self.stemmer is not None:
            stem_function(self.stemmer)  # fail now, not after an hour of tagging

    @classmethod
    def released_code(cls, **overrides: Any) -> TagNormalizerConfig:
        """The normalization of the released TACOS code (`hexixiang/OpenCS`, `TagCluster.execute` to the rule step).

        Frequency filter on raw strings at `alpha=20` as given (no scaling), counting occurrences; rule keys made
        by lowercasing, `\\W+` -> one space and NLTK's default `PorterStemmer` over the whole tag; tags with blank
        keys kept; canonical tags named by their key; rows left without a tag dropped by `transform`. No semantic
        or association step (the released code clusters the rule keys directly).
        """
        base: dict[str, Any] = {
            "semantic_aggregation": False,
            "association_aggregation": False,
            "reference_size": None,
            "counts": "occurrences",
            "cleaning": "non_word_runs",
            "stemmer": "nltk_porter",
            "stem_scope": "tag",
            "keep_empty_keys": True,
            "canonical_names": "key",
            "drop_untagged_rows": True,
        }
        base.update(overrides)
        return cls(**base)

    def effective_alpha(self, n_samples: int) -> int:
        """The frequency threshold used for a corpus of `n_samples` rows (see the class docstring)."""
        return scaled_threshold(self.alpha, n_samples, self.reference_size, self.min_alpha)

    def effective_min_support(self, n_samples: int) -> int:
        """The association min support used for a corpus of `n_samples` rows (see the class docstring)."""
        return scaled_threshold(self.min_support, n_samples, self.reference_size, self.min_support_floor)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TagNormalizerConfig:
        """Build from a dict, ignoring keys this version does not know (written by a newer version).

        Keys it lacks (written by an older version) take their defaults, which behave as that version did.
        """
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def scaled_threshold(value: int, n_samples: int, reference_size: int | None = ALPACA_SIZE, floor: int = 1) -> int:
    """Scale a count threshold set for `reference_size` samples to `n_samples` (see [`TagNormalizerConfig`]).

    Example:
        >>> scaled_threshold(20, 5_000)   # alpha=20 for Alpaca, on 5k samples
        2
    """
    if reference_size is None:
        return value
    return int(max(min(floor, value), min(value, round(value * n_samples / reference_size))))


__all__ = ["ALPACA_SIZE", "TagNormalizerConfig", "scaled_threshold"]
