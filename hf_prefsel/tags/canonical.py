"""The canonical form of a concept string: what makes two spellings of a concept the same tree leaf."""

from __future__ import annotations

import re
import unicodedata

from ..errors import DataError

_SPACES = re.compile(r"\s+")
_EDGE_PUNCT = " \t\n\r.,;:!?\"'`()[]{}<>"


def canonicalize_concept(text: str) -> str:
    """Canonical form of a concept string: NFKC, case-folded, whitespace collapsed, edge punctuation stripped.

    Exact grounding compares canonical forms, so "Binary Search." and "binary  search" are the
    same leaf. Inner punctuation is kept ("C++", "k-means") because it carries meaning.

    Example:
        >>> canonicalize_concept("  Binary   Search. ")
        'binary search'
    """
    if not isinstance(text, str):
        raise DataError(f"A concept must be a string, got {type(text).__name__}: {text!r}. Clean the `concepts` column first.")
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", text).strip(_EDGE_PUNCT).strip()



__all__ = ["canonicalize_concept"]
