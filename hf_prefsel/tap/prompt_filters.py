"""Cleaning and near-duplicate tests for generated prompts (the filters of TaP stage 2).

Near-duplicates are found by cosine similarity of sentence embeddings (semantic; FAISS inner-product search) or of
hashed character 2-3-gram vectors (lexical, any language, no model needed).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np


_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)、:：]|[（(]\d{1,2}[)）])\s*")


def clean_prompt(text: str) -> str:
    """Trim whitespace, list bullets/numbers and wrapping quotes that models add around prompts."""
    text = text.strip()
    text = _BULLET.sub("", text, count=1)
    for a, b in (('"', '"'), ("“", "”"), ("「", "」"), ("'", "'")):
        if len(text) > 2 and text.startswith(a) and text.endswith(b):
            text = text[1:-1].strip()
    return text


def exact_key(text: str) -> str:
    """The text without case, spaces and punctuation: equal keys are the same prompt."""
    return re.sub(r"[\W_]+", "", text.casefold())


class NearDuplicateIndex:
    """Accepted prompts' vectors (embeddings or hashed character n-grams), for the nearest-similarity test."""

    def __init__(self, method: str, embedding_model: str | None):
        self.method = method
        self.embedding_model = embedding_model
        self._embedder: Any = None
        self._vectorizer: Any = None
        self.rows: list[Any] = []

    def vectors(self, texts: Sequence[str]) -> Any:
        if self.method == "embedding":
            if self._embedder is None:
                from ..embed import Embedder

                self._embedder = Embedder(self.embedding_model)
            return self._embedder.encode(list(texts))
        if self._vectorizer is None:
            from sklearn.feature_extraction.text import HashingVectorizer

            self._vectorizer = HashingVectorizer(
                analyzer="char", ngram_range=(2, 3), n_features=2**18, alternate_sign=False, norm="l2", lowercase=True
            )
        return self._vectorizer.transform([" ".join(t.split()) for t in texts])

    def max_similarity(self, vecs: Any) -> np.ndarray:
        """For each row of `vecs`, the highest cosine with an accepted vector (-1 if none)."""
        n = vecs.shape[0]
        if not self.rows or n == 0:
            return np.full(n, -1.0)
        if self.method == "embedding":
            import faiss

            mat = np.vstack(self.rows).astype(np.float32)
            index = faiss.IndexFlatIP(mat.shape[1])
            index.add(mat)
            sims, _ = index.search(np.ascontiguousarray(vecs, dtype=np.float32), 1)
            return sims.reshape(-1)
        from scipy.sparse import vstack

        mat = vstack(self.rows)
        return np.asarray((vecs @ mat.T).max(axis=1).todense()).reshape(-1)

    def add(self, vec: Any) -> None:
        self.rows.append(vec)

    @staticmethod
    def similarity(a: Any, b: Any) -> float:
        if isinstance(a, np.ndarray):
            return float(np.dot(a.reshape(-1), b.reshape(-1)))
        return float(a.multiply(b).sum())



__all__ = ["NearDuplicateIndex", "clean_prompt", "exact_key"]
