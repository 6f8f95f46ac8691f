"""KnowledgeTree: determinism, structure invariants, naming hooks, artifact round trip, pictures."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from hf_prefsel.errors import ConfigError, DataError, DependencyError
from hf_prefsel.tags.tree import KnowledgeTree, KnowledgeTreeConfig, canonicalize_concept


def _build(concepts, vectors, **kw):
    return KnowledgeTree.build(concepts, KnowledgeTreeConfig(**kw), embeddings=vectors)


def test_canonicalize():
    assert canonicalize_concept("  Binary   Search. ") == "binary search"
    assert canonicalize_concept("C++ templates") == "c++ templates"
    assert canonicalize_concept("k-means (clustering)") == "k-means (clustering"  # only edge punctuation goes
    with pytest.raises(DataError):
        canonicalize_concept(None)  # type: ignore[arg-type]


def test_build_is_deterministic_and_order_free(concepts, concept_vectors):
    a = _build(concepts, concept_vectors, ratio=0.2, seed=3)
    b = _build(concepts, concept_vectors, ratio=0.2, seed=3)
    assert a.names == b.names
    np.testing.assert_array_equal(a.parents, b.parents)
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    # Input order and surface variants do not matter: leaves are sorted canonical forms.
    perm = list(range(len(concepts)))
    random.Random(0).shuffle(perm)
    shuffled = [concepts[i].upper() + " " for i in perm]
    c = _build(shuffled, concept_vectors[perm], ratio=0.2, seed=3)
    assert c.names[: c.n_leaves] == a.names[: a.n_leaves]
    np.testing.assert_array_equal(c.parents, a.parents)
    # A different seed gives a different clustering (so the seed is really used).
    d = _build(concepts, concept_vectors, ratio=0.2, seed=4)
    assert not np.array_equal(d.parents, a.parents)


@pytest.mark.parametrize("ratio,max_flat_k", [(0.2, 256), (0.1, 256), (0.3, 8)])
def test_structure_invariants(concepts, concept_vectors, ratio, max_flat_k):
    cfg = KnowledgeTreeConfig(ratio=ratio, max_root_children=6, max_flat_k=max_flat_k, naming="medoid")
    tree = KnowledgeTree.build(concepts, cfg, embeddings=concept_vectors)
    canon = sorted({canonicalize_concept(c) for c in concepts})
    # Leaves are exactly the unique canonical concepts, numbered first.
    assert tree.n_leaves == len(canon)
    assert [tree.names[i] for i in tree.leaves] == canon
    np.testing.assert_array_equal(tree.leaves, np.arange(len(canon)))
    # A single root, last; every leaf reaches it; all leaves at the same depth (bottom-up build).
    assert (tree.parents == -1).sum() == 1 and tree.root == tree.n_nodes - 1
    for leaf in tree.leaves.tolist():
        path = tree.path(leaf)
        assert path[0] == leaf and path[-1] == tree.root
        assert len(path) == tree.depth + 1
    assert set(tree.depths[tree.leaves].tolist()) == {tree.depth}
    # Every inner node has a child; the ancestor matrix marks depth+1 nodes per leaf.
    inner = np.setdiff1d(np.arange(tree.n_nodes), tree.leaves)
    assert all(len(tree.children(i)) > 0 for i in inner.tolist())
    row_sums = np.asarray(tree.ancestor_matrix().sum(axis=1)).reshape(-1)
    np.testing.assert_array_equal(row_sums[tree.leaves], tree.depth + 1)
    assert tree.leaf_counts()[tree.root] == tree.n_leaves
    # Parent counts follow the ratio: ceil(n * ratio) requested, no more made, few clusters lost empty.
    stats = tree.level_stats
    for below, above in zip(stats[:-2], stats[1:-1]):
        assert above["requested"] == min(below["nodes"] - 1, math.ceil(below["nodes"] * ratio))
        assert 0.75 * above["requested"] <= above["nodes"] <= above["requested"]
    assert [s["nodes"] for s in stats[::-1]] == [len(tree.nodes_at_depth(d)) for d in range(tree.depth + 1)]
    # Clustering stopped at the first level small enough to hang under the root, not earlier.
    assert len(tree.children(tree.root)) <= 6 < stats[-3]["nodes"]


def test_medoid_names_are_children(concepts, concept_vectors):
    tree = _build(concepts, concept_vectors, ratio=0.2, naming="medoid")
    for node in np.setdiff1d(np.arange(tree.n_nodes - 1), tree.leaves).tolist():
        assert tree.names[node] in {tree.names[c] for c in tree.children(node).tolist()}


def test_terms_names_describe_the_subtree(concepts, concept_vectors):
    tree = _build(concepts, concept_vectors, ratio=0.2, naming="terms")
    node = int(tree.nodes_at_depth(tree.depth - 1)[0])
    leaf_words = " ".join(tree.names[c] for c in tree.children(node).tolist())
    for word in tree.names[node].split(", "):
        assert word in leaf_words


def test_namer_hook_and_dedup(concepts, concept_vectors):
    calls: list[int] = []

    def namer(groups: list[list[str]]) -> list[str]:
        calls.append(len(groups))
        assert all(groups) and all(isinstance(n, str) for g in groups for n in g)
        return [f"topic {len(calls)}.{i}" for i in range(len(groups))]

    tree = KnowledgeTree.build(concepts, KnowledgeTreeConfig(ratio=0.2, max_root_children=8), embeddings=concept_vectors, namer=namer)
    # One call per level plus one for the root, with as many parents as the level has.
    assert calls[-1] == 1 and tree.names[tree.root] == f"topic {len(calls)}.0"
    assert calls[:-1] == [s["nodes"] for s in tree.level_stats[1:-1]]

    # A namer that gives every parent of a level the same name: the parents merge (Clio dedupe).
    tree2 = KnowledgeTree.build(concepts, KnowledgeTreeConfig(ratio=0.2), embeddings=concept_vectors, namer=lambda g: ["same"] * len(g))
    assert tree2.depth == 2 and len(tree2.children(tree2.root)) == 1

    with pytest.raises(DataError, match="namer must return"):
        KnowledgeTree.build(concepts, KnowledgeTreeConfig(ratio=0.2), embeddings=concept_vectors, namer=lambda g: ["x"])


def test_reassign_moves_children_to_named_parents(concepts, embedder):
    # An "LLM" that names every parent after its first child: reassignment by name embedding must
    # keep every child under a parent, and the tree valid.
    cfg = KnowledgeTreeConfig(ratio=0.2, reassign=True)
    tree = KnowledgeTree.build(concepts[:120], cfg, embedder=embedder, namer=lambda g: [x[0] + " topics" for x in g])
    assert tree.n_leaves == len({canonicalize_concept(c) for c in concepts[:120]})
    assert all(tree.path(l)[-1] == tree.root for l in tree.leaves.tolist())
    with pytest.raises(ConfigError):
        KnowledgeTree.build(concepts[:50], cfg, embedder=embedder)  # reassign needs a namer


def test_small_and_bad_inputs(concept_vectors):
    t = KnowledgeTree.build(["binary search", "Binary Search", "gcd"], embeddings=concept_vectors[:3])
    assert t.n_leaves == 2 and t.depth == 1
    with pytest.raises(DataError):
        KnowledgeTree.build(["", "  "], embeddings=concept_vectors[:2])
    with pytest.raises(DataError):
        KnowledgeTree.build(["a", "b"], embeddings=concept_vectors[:3])
    with pytest.raises(ConfigError):
        KnowledgeTreeConfig(ratio=1.5)
    with pytest.raises(DataError, match="exactly one root"):
        KnowledgeTree(["a", "b"], [-1, -1])
    with pytest.raises(DataError, match="cannot reach the root"):
        KnowledgeTree(["r", "a", "b"], [-1, 2, 1])  # a and b are each other's parent


def test_save_load_round_trip(tree, tmp_path):
    from hf_prefsel.hub import Artifact

    folder = tree.save_pretrained(tmp_path / "tree")
    assert {p.name for p in folder.iterdir()} >= {"artifact.json", "tensors.safetensors", "README.md"}
    loaded = KnowledgeTree.from_pretrained(folder)
    assert loaded.names == tree.names
    np.testing.assert_array_equal(loaded.parents, tree.parents)
    np.testing.assert_array_equal(loaded.embeddings, tree.embeddings)
    assert loaded.embeddings.dtype == np.float32
    assert loaded.config == tree.config and loaded.level_stats == tree.level_stats
    assert loaded.embedding_model == tree.embedding_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert isinstance(Artifact.from_pretrained(folder), KnowledgeTree)  # dispatch by artifact_type
    card = (folder / "README.md").read_text()
    assert f"depth **{tree.depth}**" in card and "Top branches" in card
    assert tree.top_branches()[0][0] in card


def test_html_and_png(tree, tmp_path):
    page = tree.to_html(str(tmp_path / "tree.html"))
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<script" not in page
    for name, _, _ in tree.top_branches():
        assert name.replace("&", "&amp;") in page
    assert (tmp_path / "tree.html").read_text(encoding="utf-8") == page
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(DependencyError, match="matplotlib"):
            tree.to_png(str(tmp_path / "tree.png"))
    else:
        tree.to_png(str(tmp_path / "tree.png"))
        assert (tmp_path / "tree.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_branch_purity_beats_chance(taxonomy_rows, embedder):
    """FLASK subdomains cluster by their FLASK domain far better than chance (the tree carries meaning)."""
    sub = {r["label"]: r["parent"] for r in taxonomy_rows if r["taxonomy"] == "flask_subdomain"}
    tree = KnowledgeTree.build(list(sub), KnowledgeTreeConfig(ratio=0.3, max_root_children=12), embedder=embedder)
    assert tree.depth == 2
    score = tree.branch_purity(sub, depth=1)
    assert score["leaves"] == len(sub)
    # Chance: the same branches with the domains shuffled over the leaves.
    rng = np.random.default_rng(0)
    names, cats = list(sub), list(sub.values())
    chance = []
    for _ in range(200):
        perm = rng.permutation(len(cats))
        chance.append(tree.branch_purity({n: cats[i] for n, i in zip(names, perm)}, depth=1))
    assert score["purity"] > np.quantile([c["purity"] for c in chance], 0.99)
    assert score["nmi"] > np.quantile([c["nmi"] for c in chance], 0.99)
