"""Artifacts (save/load/push of tag vocabularies, knowledge trees, taxonomies) and publishing of curated datasets.

Modules: `artifact` (the `Artifact` base class), `resolve` (local folder or Hub snapshot of an artifact),
`provenance` (`Provenance`, made safe to publish), `card` (dataset and artifact cards from the shipped templates),
`save` (`save_dataset`, atomic local writes) and `push` (`push_dataset`, keeping a local copy until the push succeeded).
"""

from .artifact import Artifact
from .card import build_dataset_card, size_category
from .provenance import Provenance
from .push import push_dataset
from .save import save_dataset

__all__ = ["Artifact", "Provenance", "build_dataset_card", "push_dataset", "save_dataset", "size_category"]
