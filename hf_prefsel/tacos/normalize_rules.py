"""Rule keys of tags (InsTag step 2): cleaning and stemming, as pure string functions.

Two tags with the same rule key are merged by rule aggregation. Every choice the released TACOS code makes
differently from our defaults (how punctuation and `_` are cleaned, which Porter variant stems, whether each word or
the whole tag is stemmed) is a parameter here, set from [`TagNormalizerConfig`].
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, Literal

from ..errors import ConfigError, DependencyError

if TYPE_CHECKING:  # pragma: no cover
    from .normalize_config import TagNormalizerConfig

#: `stemmer` value selecting NLTK's `PorterStemmer()` in its default (`NLTK_EXTENSIONS`) mode.
NLTK_PORTER = "nltk_porter"

_WORD_SEPARATORS = re.compile(r"[\W_]+")
_NON_WORD_RUNS = re.compile(r"\W+")

_STEMMERS: dict[str, Callable[[str], str]] = {}


def _cached(stem: Callable[[str], str]) -> Callable[[str], str]:
    """Memoize a stem function: the words and tags of a corpus repeat a lot."""
    cache: dict[str, str] = {}

    def cached(text: str) -> str:
        out = cache.get(text)
        if out is None:
            out = cache[text] = stem(text)
        return out

    return cached


def stem_function(algorithm: str) -> Callable[[str], str]:
    """A cached string -> stem function: `"nltk_porter"` or the name of a Snowball algorithm.

    Raises:
        [`ConfigError`]: the name is neither.
    """
    if algorithm not in _STEMMERS:
        if algorithm == NLTK_PORTER:
            try:
                from nltk.stem import PorterStemmer
            except ImportError as exc:  # pragma: no cover - core dependency
                raise ConfigError(
                    "stemmer='nltk_porter' needs the package 'nltk' (a dependency of hf_prefsel): reinstall it with "
                    "`pip install 'nltk>=3.8'`, or choose a Snowball stemmer such as 'porter'."
                ) from exc
            porter = PorterStemmer()  # default mode: NLTK_EXTENSIONS; needs no corpus download
            # Lowercasing is TagNormalizerConfig.lowercase's job, so NLTK must not lowercase on its own.
            _STEMMERS[algorithm] = _cached(lambda text: porter.stem(text, to_lowercase=False))
        else:
            try:
                import snowballstemmer
            except ImportError as exc:  # pragma: no cover - core dependency
                raise DependencyError("snowballstemmer", "tacos", "Stemming tags in rule aggregation") from exc
            if algorithm not in snowballstemmer.algorithms():
                raise ConfigError(
                    f"Unknown stemmer {algorithm!r}. Use {NLTK_PORTER!r} (NLTK's default PorterStemmer), one of the "
                    f"Snowball algorithms {', '.join(snowballstemmer.algorithms())}, or None to disable stemming."
                )
            _STEMMERS[algorithm] = _cached(snowballstemmer.stemmer(algorithm).stemWord)
    return _STEMMERS[algorithm]


def clean_tag(tag: str, lowercase: bool = True, cleaning: Literal["words", "non_word_runs"] = "words") -> str:
    """Lowercase (optionally), then clean punctuation.

    `"words"`: every run of non-word characters, underscore included, becomes one space and the edges are
    trimmed. `"non_word_runs"`: every run of `\\W` characters becomes one space; `_` and edge spaces stay.

    Example:
        >>> clean_tag("Code_Generation / Python!")
        'code generation python'
        >>> clean_tag("Code_Generation / Python!", cleaning="non_word_runs")
        'code_generation python '
    """
    text = tag.lower() if lowercase else tag
    if cleaning == "non_word_runs":
        return _NON_WORD_RUNS.sub(" ", text)
    return " ".join(_WORD_SEPARATORS.sub(" ", text).split())


def rule_key(
    tag: str,
    lowercase: bool = True,
    stemmer: str | None = "porter",
    *,
    cleaning: Literal["words", "non_word_runs"] = "words",
    stem_scope: Literal["word", "tag"] = "word",
) -> str:
    """The rule-aggregation key of a tag: `clean_tag`, then stemming of every word or of the whole tag.

    Tags with the same key are merged. With the default cleaning, a tag with no word characters has key `""`.

    Example:
        >>> rule_key("Mathematical Calculations")
        'mathemat calcul'
        >>> rule_key("Mathematical Calculations", stemmer="nltk_porter", stem_scope="tag")
        'mathematical calcul'
    """
    text = clean_tag(tag, lowercase, cleaning)
    if stemmer is None:
        return text
    stem = stem_function(stemmer)
    if stem_scope == "tag":
        return stem(text)
    return " ".join(stem(word) for word in text.split(" "))  # split(" ") keeps the spaces "non_word_runs" leaves


def is_blank(key: str) -> bool:
    """Whether a rule key names nothing (no characters but spaces)."""
    return not key.strip()


def key_function(config: TagNormalizerConfig) -> Callable[[str], str]:
    """`rule_key` with the cleaning and stemming settings of a config."""
    lowercase, stemmer, cleaning, scope = config.lowercase, config.stemmer, config.cleaning, config.stem_scope
    return lambda tag: rule_key(tag, lowercase, stemmer, cleaning=cleaning, stem_scope=scope)


__all__ = ["NLTK_PORTER", "clean_tag", "is_blank", "key_function", "rule_key", "stem_function"]
