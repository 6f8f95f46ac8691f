"""TACOS tag clustering: canonical tags -> K clusters, label sets per sample, label-set dedup, cluster membership.

As in the released TACOS code, *tags* are clustered (not samples): every canonical tag is embedded and K-Means
(K=50) groups them; a sample's label set is the sorted set of its tags' cluster ids, so a sample belongs to every
cluster one of its tags falls in (overlapping membership). Samples with identical label sets are near-duplicates
at this granularity, and the code keeps only the one with the longest response.

The released code embeds every tag *occurrence*, which weights frequent tags; we embed each distinct tag once and
give K-Means its count as a weight — the same objective at a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import ConfigError, DataError, MissingColumnError
from .normalize import clean_tag, tag_embedder
from .vocabulary import TagVocabulary

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

    from ..embed import Embedder


@dataclass
class TagClusterConfig:
    """Settings of [`TagClusterer`].

    Args:
        n_clusters (`int`, defaults to `50`):
            K of K-Means (TACOS default). Capped at the number of distinct tags.
        seed (`int`, defaults to `0`):
            K-Means seed; the same seed, tags and model give the same clusters.
        weight_by_frequency (`bool`, defaults to `True`):
            Weight each tag by its sample count, which reproduces the released code's clustering of every tag
            occurrence. `False` treats all distinct tags alike (rare tags then pull centroids as much as common ones).
        niter (`int`, defaults to `25`):
            K-Means iterations.
        embedding_model (`str`, *optional*):
            sentence-transformers model; defaults to the bundled all-MiniLM-L6-v2. (The released code uses
            PhraseBERT, which is not available offline.)
        tags_column (`str`, defaults to `"canonical_tags"`):
            Column holding each row's canonical tags.
        output_column (`str`, defaults to `"cluster_ids"`):
            Column added by the clusterer: sorted unique cluster ids of the row's tags (`[]` if it has none).
    """

    n_clusters: int = 50
    seed: int = 0
    weight_by_frequency: bool = True
    niter: int = 25
    embedding_model: str | None = None
    tags_column: str = "canonical_tags"
    output_column: str = "cluster_ids"

    def __post_init__(self) -> None:
        for name in ("n_clusters", "niter"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"TagClusterConfig.{name} must be an integer >= 1, got {value!r}.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TagClusterConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class TagClusterer:
    """Cluster canonical tags with K-Means and give every sample the sorted set of its tags' cluster ids.

    After `fit`, the instance is a picklable `Dataset.map(batched=True)` callable adding `cluster_ids`. Tags not
    seen by `fit` are embedded and assigned to the nearest centroid, so a clusterer fitted on one split can label
    another.

    Args:
        config ([`TagClusterConfig`], *optional*): settings.
        embedder ([`Embedder`], *optional*): defaults to the shared [`tag_embedder`] that `TagNormalizer` also
            uses, so tags embedded by semantic aggregation are not embedded again.

    Example:
        >>> clusterer = TagClusterer(TagClusterConfig(n_clusters=50, seed=0)).fit(normalizer.vocabulary)
        >>> ds = ds.map(clusterer, batched=True)            # adds "cluster_ids"
        >>> members = cluster_members(ds)                   # {cluster id: [row indices]}
    """

    def __init__(self, config: TagClusterConfig | None = None, *, embedder: Embedder | None = None):
        self.config = config or TagClusterConfig()
        self._embedder = embedder
        self.tag_clusters: dict[str, int] | None = None
        self.centroids: np.ndarray | None = None
        self._unseen: dict[str, int] = {}

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = tag_embedder(self.config.embedding_model)
        return self._embedder

    def __getstate__(self) -> dict[str, Any]:
        # The Embedder pickles to its config; assignments of unseen tags are a cache, not state.
        state = self.__dict__.copy()
        state["_unseen"] = {}
        return state

    def __repr__(self) -> str:
        fitted = f"{len(set(self.tag_clusters.values()))} clusters" if self.tag_clusters else "not fitted"
        return f"TagClusterer({fitted})"

    @classmethod
    def from_vocabulary(cls, vocabulary: TagVocabulary, *, embedder: Embedder | None = None) -> TagClusterer:
        """Rebuild a fitted clusterer from a vocabulary that stores clusters (see `fit(..., store=True)`)."""
        if vocabulary.tag_clusters is None:
            raise ConfigError(
                "This TagVocabulary holds no tag clusters. Run `TagClusterer(config).fit(vocabulary)` first (it stores "
                "the clusters in the vocabulary), then save the vocabulary."
            )
        out = cls(TagClusterConfig.from_dict(vocabulary.cluster_config or {}), embedder=embedder)
        out.tag_clusters = dict(vocabulary.tag_clusters)
        out.centroids = vocabulary.centroids
        return out

    def fit(
        self,
        tags: TagVocabulary | Mapping[str, int] | Sequence[str],
        *,
        store: bool = True,
    ) -> TagClusterer:
        """Embed the tags and run K-Means.

        Args:
            tags: a [`TagVocabulary`] (its canonical tags and counts), a `{tag: count}` mapping, or a list of tags
                (count 1 each).
            store (`bool`, defaults to `True`): when `tags` is a vocabulary, also record the clusters in it
                (`tag_clusters`, `centroids`, `cluster_config`), so saving the vocabulary saves the clustering.

        Returns:
            `self`.
        """
        from ..embed import kmeans

        if isinstance(tags, TagVocabulary):
            counts = dict(tags.canonical_counts)
        elif isinstance(tags, Mapping):
            counts = {str(k): int(v) for k, v in tags.items()}
        else:
            counts = {}
            for t in tags:
                if not isinstance(t, str):
                    raise DataError(f"Tags to cluster must be strings, got {type(t).__name__} ({t!r}).")
                counts[t] = counts.get(t, 0) + 1
        if not counts:
            raise DataError(
                "There are no tags to cluster. Check that tagging produced tags and that normalization did not drop "
                "them all (see `vocabulary.report()`; lower `alpha` for small datasets)."
            )
        names = sorted(counts)  # a fixed order makes K-Means depend only on the tag set, seed and model
        vectors = self.embedder.encode([self._text(t) for t in names])
        weights = np.array([counts[t] for t in names], dtype=np.float32) if self.config.weight_by_frequency else None
        centroids, labels = kmeans(
            vectors, self.config.n_clusters, seed=self.config.seed, niter=self.config.niter, weights=weights
        )
        labels, order = _relabel_by_size(labels, weights, len(centroids))
        self.tag_clusters = {t: int(c) for t, c in zip(names, labels)}
        self.centroids = np.ascontiguousarray(centroids[order])
        self._unseen = {}
        if store and isinstance(tags, TagVocabulary):
            tags.tag_clusters = dict(self.tag_clusters)
            tags.centroids = self.centroids
            tags.cluster_config = asdict(self.config)
        return self

    @staticmethod
    def _text(tag: str) -> str:
        return clean_tag(tag) or tag

    def _require_fitted(self) -> dict[str, int]:
        if self.tag_clusters is None:
            raise ConfigError(
                "This TagClusterer is not fitted. Call `fit(vocabulary)` first, or rebuild it with "
                "`TagClusterer.from_vocabulary(vocabulary)` from a vocabulary that stores clusters."
            )
        return self.tag_clusters

    @property
    def n_clusters(self) -> int:
        """Number of non-empty clusters (K, or fewer when there were fewer distinct tags)."""
        return len(set(self._require_fitted().values()))

    def cluster_ids(self, tags: Sequence[str] | None) -> list[int]:
        """Sorted unique cluster ids of one row's tags."""
        return self._label_rows([tags])[0]

    def _label_rows(self, rows: Sequence[Sequence[str] | None]) -> list[list[int]]:
        mapping = self._require_fitted()
        unseen = self._unseen
        unknown = sorted({t for row in rows if row for t in row if t not in mapping and t not in unseen})
        if unknown:
            if self.centroids is None or len(self.centroids) == 0:
                raise ConfigError("Tags unseen by `fit` need the centroids; refit the clusterer.")
            import faiss

            vectors = self.embedder.encode([self._text(t) for t in unknown])
            index = faiss.IndexFlatIP(self.centroids.shape[1])
            index.add(np.ascontiguousarray(self.centroids, dtype=np.float32))
            _, nearest = index.search(vectors, 1)
            unseen.update({t: int(c) for t, c in zip(unknown, nearest.reshape(-1))})
        return [
            sorted({mapping[t] if t in mapping else unseen[t] for t in row}) if row else [] for row in rows
        ]

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[list[int]]]:
        """`Dataset.map(clusterer, batched=True)`: adds `config.output_column`."""
        column = self.config.tags_column
        if column not in batch:
            raise MissingColumnError(column, list(batch), option="tags_column")
        return {self.config.output_column: self._label_rows(batch[column])}

    def transform(self, ds: Dataset, **map_kwargs: Any) -> Dataset:
        """Add `config.output_column` (sorted cluster ids per row) to `ds`."""
        self._require_fitted()
        if self.config.tags_column not in ds.column_names:
            raise MissingColumnError(self.config.tags_column, ds.column_names, option="tags_column")
        map_kwargs.setdefault("desc", "Assigning tag clusters")
        return ds.map(self, batched=True, **map_kwargs)


def _relabel_by_size(labels: np.ndarray, weights: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Renumber clusters by decreasing weight (ties: smallest old id), so id 0 is the biggest cluster.

    K-Means ids are arbitrary; a stable, meaningful numbering makes reports and tests readable.

    Returns:
        `(new_labels, order)` where `order[new_id] = old_id`.
    """
    w = np.ones(len(labels)) if weights is None else weights.astype(np.float64)
    mass = np.bincount(labels, weights=w, minlength=k)
    order = np.lexsort((np.arange(k), -mass))
    new_id = np.empty(k, dtype=np.int64)
    new_id[order] = np.arange(k)
    return new_id[labels], order


# ------------------------------------------------------------------------------------------------ membership, dedup


def column_values(ds: Dataset, column: str) -> list[Any]:
    """A column as a plain Python list, fast (`ds[column]` is a lazy `Column` whose per-row access is slow)."""
    if column not in ds.column_names:
        raise MissingColumnError(column, ds.column_names)
    return ds.with_format("arrow")[column].to_pylist()


def _label_column(data: Dataset | Sequence[Sequence[int] | None], column: str) -> list[Sequence[int] | None]:
    try:
        from datasets import Dataset
    except ImportError:  # pragma: no cover
        Dataset = ()  # type: ignore[assignment,misc]
    if isinstance(data, Dataset):
        return column_values(data, column)
    return list(data)


def cluster_members(
    data: Dataset | Sequence[Sequence[int] | None], column: str = "cluster_ids"
) -> dict[int, list[int]]:
    """Overlapping cluster membership: cluster id -> indices of the rows whose label set contains it.

    A row with tags in three clusters is a member of all three (as in the released code). Indices are in stored
    order, which is what TACOS pairs neighbours by; clusters are keyed in increasing id order.

    Args:
        data: a `Dataset` with `column`, or a list of cluster-id lists.
        column (`str`, defaults to `"cluster_ids"`): the label-set column.

    Example:
        >>> cluster_members([[0, 2], [2], []])
        {0: [0], 2: [0, 1]}
    """
    members: dict[int, list[int]] = {}
    for i, ids in enumerate(_label_column(data, column)):
        for c in ids or ():
            members.setdefault(int(c), []).append(i)
    return {c: members[c] for c in sorted(members)}


def response_length(value: Any) -> int:
    """Characters of a response: a string, or the assistant turns of a `messages` list (`None` -> 0)."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        total = 0
        for turn in value:
            if isinstance(turn, Mapping):
                if turn.get("role", "assistant") in ("assistant", "gpt") or turn.get("from") == "gpt":
                    content = turn.get("content", turn.get("value"))
                    total += len(content) if isinstance(content, str) else 0
            elif isinstance(turn, str):
                total += len(turn)
        return total
    raise DataError(
        f"Cannot measure a response of type {type(value).__name__}; pass the column holding the response text "
        "(a string) or a messages list."
    )


def label_set_dedup_indices(
    label_sets: Sequence[Sequence[int] | None], lengths: Sequence[int], *, keep_unlabelled: bool = False
) -> list[int]:
    """Indices kept by label-set dedup: per identical label set, the row with the longest response.

    Ties keep the earliest row. Rows with an empty label set are dropped unless `keep_unlabelled`.

    Returns:
        Kept indices in increasing order.
    """
    label_sets = list(label_sets)
    if len(label_sets) != len(lengths):
        raise DataError(f"Got {len(label_sets)} label sets but {len(lengths)} response lengths; pass one per row.")
    lengths = list(lengths)
    best: dict[tuple[int, ...], int] = {}
    kept_unlabelled: list[int] = []
    for i, (labels, length) in enumerate(zip(label_sets, lengths)):
        key = tuple(sorted(set(int(c) for c in labels))) if labels else ()
        if not key:
            if keep_unlabelled:
                kept_unlabelled.append(i)
            continue
        j = best.get(key)
        if j is None or length > lengths[j]:
            best[key] = i
    return sorted(list(best.values()) + kept_unlabelled)


def dedup_by_label_set(
    ds: Dataset,
    *,
    label_column: str = "cluster_ids",
    response_column: str = "output",
    keep_unlabelled: bool = False,
) -> Dataset:
    """Keep one row per distinct label set: the one with the longest response (released TACOS behaviour).

    On Alpaca this is what turns ~52k tagged samples into ~5k representatives before scoring.

    Args:
        ds (`Dataset`): rows with `label_column` (from [`TagClusterer`]).
        label_column (`str`, defaults to `"cluster_ids"`).
        response_column (`str`, defaults to `"output"`): a string column, or a `messages` list column (assistant
            turns are measured).
        keep_unlabelled (`bool`, defaults to `False`): keep rows with no cluster (they cannot be scored within a
            cluster, so the default drops them).

    Returns:
        `ds.select(kept_indices)`, in the original order.
    """
    for option, column in (("label_column", label_column), ("response_column", response_column)):
        if column not in ds.column_names:
            raise MissingColumnError(column, ds.column_names, option=option)
    lengths = [response_length(v) for v in column_values(ds, response_column)]
    keep = label_set_dedup_indices(column_values(ds, label_column), lengths, keep_unlabelled=keep_unlabelled)
    return ds.select(keep)


__all__ = [
    "TagClusterConfig",
    "TagClusterer",
    "cluster_members",
    "column_values",
    "dedup_by_label_set",
    "label_set_dedup_indices",
    "response_length",
]
