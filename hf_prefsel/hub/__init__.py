"""Artifacts (save/load/push of tag vocabularies, knowledge trees, taxonomies) and publishing of curated datasets."""

from .artifact import Artifact
from .publish import Provenance, build_dataset_card, push_dataset, save_dataset, size_category

__all__ = ["Artifact", "Provenance", "build_dataset_card", "push_dataset", "save_dataset", "size_category"]
