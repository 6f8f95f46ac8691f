"""Grounding concepts onto tree leaves: exact, nearest by embedding, ungrounded; the datasets.map path."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from hf_prefsel.errors import DataError, MissingColumnError
from hf_prefsel.tags.ground import GroundingConfig, TreeGrounder, ground_dataset, grounding_report
from hf_prefsel.tags.tree import canonicalize_concept


def _leaf(tree, name):
    return tree.leaf_lookup[canonicalize_concept(name)]


def test_exact_nearest_ungrounded(tree, embedder):
    g = TreeGrounder(tree, GroundingConfig(threshold=0.8), embedder=embedder)
    leaves, kinds = g.ground([
        ["Logical Correctness", "  FACTUALITY. "],  # exact after canonicalization
        ["logical correctness of reasoning"],  # a paraphrase: nearest leaf
        ["zqxv wkrp"],  # nonsense: ungrounded
        None,  # a row whose tagging failed
        [],
    ])
    assert kinds[0] == ["exact", "exact"]
    assert leaves[0] == sorted([_leaf(tree, "logical correctness"), _leaf(tree, "factuality")])
    assert kinds[1] == ["nearest"] and leaves[1] == [_leaf(tree, "logical correctness")]
    assert kinds[2] == ["ungrounded"] and leaves[2] == []
    assert leaves[3] == [] and kinds[3] == [] and leaves[4] == []


def test_threshold_controls_the_fallback(tree, embedder):
    text = [["logical correctness of reasoning"]]
    near = TreeGrounder(tree, GroundingConfig(threshold=0.5), embedder=embedder).ground(text)
    exact_only = TreeGrounder(tree, GroundingConfig(threshold=1.01), embedder=embedder).ground(text)
    assert near[1] == [["nearest"]] and exact_only == ([[]], [["ungrounded"]])
    # The threshold is really compared with the similarity: just above it, nothing matches.
    sim = float(embedder.encode(["logical correctness of reasoning"])[0] @ tree.embeddings[_leaf(tree, "logical correctness")])
    assert TreeGrounder(tree, GroundingConfig(threshold=sim + 1e-3), embedder=embedder).ground(text)[1] == [["ungrounded"]]


def test_map_adds_leaves_and_paths(tree, embedder, flask_rows):
    from datasets import Dataset

    rows = flask_rows[:120]
    ds = Dataset.from_dict({
        "id": [r["id"] for r in rows],
        "concepts": [r["meta"]["skills"] + [d for d in r["meta"]["domains"] if d != "-1"] for r in rows],  # -1 = no label
    })
    cfg = GroundingConfig(path_names_column="concept_path_names")
    out, report = ground_dataset(ds, tree, cfg, embedder=embedder, batch_size=32)
    assert out.column_names == ["id", "concepts", "concept_leaves", "concept_paths", "concept_match", "concept_path_names"]
    for row in out:
        assert len(row["concept_match"]) == len(row["concepts"])
        assert row["concept_leaves"] == sorted(set(row["concept_leaves"]))
        for leaf, path, names in zip(row["concept_leaves"], row["concept_paths"], row["concept_path_names"]):
            assert path == tree.path(leaf) and path[0] == leaf and path[-1] == tree.root
            assert names == [tree.names[i] for i in path]
    # FLASK skills and domains are leaves of this tree (it holds the FLASK taxonomies): all exact.
    assert report.concepts == sum(len(c) for c in ds["concepts"])
    assert report.exact == report.concepts and report.ungrounded == 0 and report.rows_without_leaf == 0
    assert report.grounded_fraction == 1.0


def test_report_counts_ungrounded(tree, embedder):
    from datasets import Dataset

    ds = Dataset.from_dict({"concepts": [["factuality", "qwzx blorp"], None, ["qwzx blorp"]]})
    out, report = ground_dataset(ds, tree, embedder=embedder)
    assert (report.exact, report.nearest, report.ungrounded, report.rows_without_leaf) == (1, 0, 2, 2)
    assert report.top_ungrounded == [("qwzx blorp", 2)]
    assert "ungrounded" in str(report)
    assert grounding_report(out.to_dict()).ungrounded == 2


def test_grounder_pickles_without_index_and_model(tree, embedder):
    g = TreeGrounder(tree, embedder=embedder)
    g.ground([["not a leaf concept at all"]])  # builds the FAISS index
    assert g._index is not None
    clone = pickle.loads(pickle.dumps(g))
    assert clone._index is None and clone.config == g.config
    assert clone.ground([["Factuality"]]) == g.ground([["Factuality"]])
    # The default embedder is the one the tree records (the bundled MiniLM), not a download.
    assert TreeGrounder(tree).embedder is not None


def test_bad_inputs(tree, embedder):
    g = TreeGrounder(tree, embedder=embedder)
    with pytest.raises(DataError, match="expected a list of strings"):
        g.ground(["factuality"])
    with pytest.raises(MissingColumnError):
        g({"text": ["x"]})
