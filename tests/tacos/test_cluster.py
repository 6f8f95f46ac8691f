"""Tag clustering (determinism, label sets), overlapping membership and label-set dedup."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from hf_prefsel.errors import ConfigError, DataError, MissingColumnError
from hf_prefsel.tacos.cluster import (
    TagClusterConfig,
    TagClusterer,
    cluster_members,
    dedup_by_label_set,
    label_set_dedup_indices,
    response_length,
)
from hf_prefsel.tacos.normalize import TagNormalizer, TagNormalizerConfig


def _flask_dataset(flask_rows):
    """Real FLASK rows; their hand-annotated skills + domains stand in for LLM tags (real multi-label tag lists)."""
    import datasets

    return datasets.Dataset.from_dict(
        {
            "id": [r["id"] for r in flask_rows],
            "instruction": [r["instruction"] for r in flask_rows],
            "output": [r["output"] or "" for r in flask_rows],
            "tags": [r["meta"]["skills"] + r["meta"]["domains"] for r in flask_rows],
        }
    )


@pytest.fixture(scope="module")
def flask_vocab(flask_rows, embedder):
    ds = _flask_dataset(flask_rows)
    normalizer = TagNormalizer(TagNormalizerConfig(association_aggregation=False), embedder=embedder)
    ds = normalizer.fit_transform(ds)
    return ds, normalizer.vocabulary


def test_clustering_is_deterministic_for_a_seed(flask_vocab, embedder):
    _, vocab = flask_vocab
    a = TagClusterer(TagClusterConfig(n_clusters=8, seed=0), embedder=embedder).fit(vocab, store=False)
    b = TagClusterer(TagClusterConfig(n_clusters=8, seed=0), embedder=embedder).fit(vocab, store=False)
    assert a.tag_clusters == b.tag_clusters
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert set(a.tag_clusters) == set(vocab.canonical_counts)
    assert a.n_clusters == 8
    # Cluster 0 is the heaviest one (ids are renumbered by total tag count).
    mass = {}
    for tag, c in a.tag_clusters.items():
        mass[c] = mass.get(c, 0) + vocab.canonical_counts[tag]
    assert mass[0] == max(mass.values())


def test_different_seeds_give_a_valid_but_not_necessarily_equal_clustering(flask_vocab, embedder):
    _, vocab = flask_vocab
    runs = [TagClusterer(TagClusterConfig(n_clusters=8, seed=s), embedder=embedder).fit(vocab, store=False) for s in range(3)]
    for r in runs:
        assert sorted(set(r.tag_clusters.values())) == list(range(8))


def test_label_sets_and_overlapping_membership_on_real_rows(flask_vocab, embedder):
    ds, vocab = flask_vocab
    clusterer = TagClusterer(TagClusterConfig(n_clusters=6, seed=0), embedder=embedder).fit(vocab)
    assert vocab.tag_clusters == clusterer.tag_clusters  # stored in the artifact
    out = ds.map(clusterer, batched=True)
    ids = out["cluster_ids"]
    for tags, labels in zip(out["canonical_tags"], ids):
        assert labels == sorted({clusterer.tag_clusters[t] for t in tags})
    members = cluster_members(out)
    assert list(members) == sorted(members)
    for c, rows in members.items():
        assert rows == sorted(rows)
        assert all(c in ids[i] for i in rows)
    # Overlap: every row appears once per cluster of its label set.
    assert sum(len(v) for v in members.values()) == sum(len(x) for x in ids)
    assert any(len(x) > 1 for x in ids)


def test_unseen_tags_go_to_the_nearest_centroid(embedder):
    counts = {"python programming": 30, "java programming": 20, "poetry writing": 25, "story writing": 15}
    clusterer = TagClusterer(TagClusterConfig(n_clusters=2, seed=0), embedder=embedder).fit(counts)
    c = clusterer.tag_clusters
    assert c["python programming"] == c["java programming"] != c["poetry writing"] == c["story writing"]
    assert clusterer.cluster_ids(["rust programming", "poetry writing"]) == sorted({c["python programming"], c["poetry writing"]})
    assert clusterer.cluster_ids(["haiku writing"]) == [c["poetry writing"]]
    clone = pickle.loads(pickle.dumps(clusterer))
    assert clone.tag_clusters == clusterer.tag_clusters and clone._unseen == {}


def test_cluster_members_small():
    assert cluster_members([[0, 2], [2], [], None, [1]]) == {0: [0], 1: [4], 2: [0, 1]}


def test_label_set_dedup_keeps_the_longest_response():
    import datasets

    ds = datasets.Dataset.from_dict(
        {
            "cluster_ids": [[1, 3], [3, 1], [1], [1, 3], [], [1], [2]],
            "output": ["short", "the longest answer", "x", "mid length", "orphan with a long text", "xy", "z"],
        }
    )
    out = dedup_by_label_set(ds)
    assert out["output"] == ["the longest answer", "xy", "z"]
    assert dedup_by_label_set(ds, keep_unlabelled=True)["output"] == [
        "the longest answer", "orphan with a long text", "xy", "z"
    ]
    # Ties keep the earliest row.
    assert label_set_dedup_indices([[0], [0], [0]], [5, 7, 7]) == [1]
    with pytest.raises(MissingColumnError):
        dedup_by_label_set(ds, response_column="response")


def test_response_length_of_messages():
    msgs = [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "hi!"},
            {"role": "assistant", "content": "more"}]
    assert response_length(msgs) == 7
    assert response_length(None) == 0 and response_length("abc") == 3
    with pytest.raises(DataError):
        response_length(42)


def test_errors():
    with pytest.raises(ConfigError, match="not fitted"):
        TagClusterer().cluster_ids(["x"])
    with pytest.raises(DataError, match="no tags to cluster"):
        TagClusterer().fit({})
    with pytest.raises(ConfigError, match="n_clusters"):
        TagClusterConfig(n_clusters=0)
