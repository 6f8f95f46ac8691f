"""The tree metric on a tiny hand-made tree, against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hf_prefsel.errors import ConfigError, DataError, MissingColumnError
from hf_prefsel.tags.metric import (
    TreeInformationConfig,
    TreeInformationMeasurement,
    kl_divergence,
    leaf_distribution,
    node_mass,
    node_weights,
    resolve_quality,
    tree_information,
)
from hf_prefsel.tags.tree import KnowledgeTree

#        root(6)
#       /       \
#   algo(4)    math(5)
#   /    \      /    \
# bs(0) sort(1) gcd(2) primes(3)
NAMES = ["binary search", "sorting", "gcd", "prime numbers", "algorithms", "math", "root"]
PARENTS = [4, 4, 5, 5, 6, 6, -1]
ROWS = [[0], [0, 2], [3]]  # bs; bs + gcd; primes
QUALITY = [1.0, 2.0, 0.5]


def f(t, a=1e-6, b=0.8):
    return (t + a) ** b


@pytest.fixture
def tiny():
    return KnowledgeTree(NAMES, PARENTS)


def test_masses_by_hand(tiny):
    # x1 splits q=2 over its 2 leaves: 1 to bs, 1 to gcd.
    m = node_mass(tiny, ROWS, QUALITY)
    np.testing.assert_allclose(m, [2.0, 0.0, 1.0, 0.5, 2.0, 1.5, 3.5])
    m = node_mass(tiny, ROWS, QUALITY, config=TreeInformationConfig(split_by_tags=False))
    np.testing.assert_allclose(m, [3.0, 0.0, 2.0, 0.5, 3.0, 2.5, 5.5])
    np.testing.assert_allclose(node_mass(tiny, ROWS, QUALITY, subset=[2]), [0, 0, 0, 0.5, 0, 0.5, 0.5])


def test_information_by_hand(tiny):
    # Uniform weights, root weight 0 (defaults); φ(0) of empty nodes counts, as in MIG.
    expected = f(2.0) + f(0.0) + f(1.0) + f(0.5) + f(2.0) + f(1.5)
    assert tree_information(tiny, ROWS, QUALITY) == pytest.approx(expected, rel=1e-12)
    # Depth decay 0.5: leaves (depth 2) weigh 1, depth-1 nodes 0.5.
    cfg = TreeInformationConfig(depth_decay=0.5)
    expected_decay = f(2.0) + f(0.0) + f(1.0) + f(0.5) + 0.5 * (f(2.0) + f(1.5))
    assert tree_information(tiny, ROWS, QUALITY, config=cfg) == pytest.approx(expected_decay, rel=1e-12)
    # Explicit depth weights and a weighted root; other a, b.
    cfg = TreeInformationConfig(a=0.1, b=0.5, depth_weights=[2.0, 0.0, 1.0], root_weight=2.0)
    expected_w = 2.0 * f(3.5, 0.1, 0.5) + sum(f(t, 0.1, 0.5) for t in (2.0, 0.0, 1.0, 0.5))
    assert tree_information(tiny, ROWS, QUALITY, config=cfg) == pytest.approx(expected_w, rel=1e-12)
    np.testing.assert_allclose(node_weights(tiny, cfg), [1, 1, 1, 1, 0, 0, 2])
    # No quality = 1 per row.
    exp_unit = f(1.5) + f(0) + f(0.5) + f(1) + f(1.5) + f(1.5)
    assert tree_information(tiny, ROWS) == pytest.approx(exp_unit, rel=1e-12)


def test_diversity_beats_concentration(tiny):
    # Same total quality: spread over two branches is worth more than piled on one leaf.
    spread = tree_information(tiny, [[0], [3]])
    piled = tree_information(tiny, [[0], [0]])
    sibling = tree_information(tiny, [[0], [1]])
    assert spread > sibling > piled


def test_measurement(tiny):
    m = TreeInformationMeasurement(tiny, target_leaves=[[0], [1]])
    out = m.compute(concept_leaves=ROWS, quality=QUALITY)
    assert out["information"] == pytest.approx(tree_information(tiny, ROWS, QUALITY))
    assert out["rows"] == 3 and out["leaf_coverage"] == 0.75
    assert out["node_coverage"] == pytest.approx(5 / 6)  # all non-root nodes but "sorting"
    p = np.array([1.5, 0, 0.5, 1]) / 3
    ent = -sum(x * math.log(x) for x in p if x > 0) / math.log(4)
    assert out["leaf_entropy"] == pytest.approx(ent)
    assert out["kl_to_target"] == pytest.approx(kl_divergence(np.array([1, 1, 0, 0.0]), np.array([1.5, 0, 0.5, 1])))
    # add_batch + compute() == compute(...)
    m.add_batch(concept_leaves=ROWS[:2], quality=QUALITY[:2])
    m.add_batch(concept_leaves=ROWS[2:], quality=QUALITY[2:])
    assert m.compute() == out
    sub = m.compute(concept_leaves=ROWS, quality=QUALITY, subset=[2])
    assert sub["rows"] == 1 and sub["mean_quality"] == 0.5 and sub["leaf_coverage"] == 0.25


def test_kl_by_hand():
    t = np.array([2.0, 2.0, 0.0])
    s = np.array([1.0, 0.0, 3.0])
    eps = 0.5
    ps = (s + eps) / (4 + 3 * eps)
    expected = 0.5 * math.log(0.5 / ps[0]) + 0.5 * math.log(0.5 / ps[1])
    assert kl_divergence(t, s, eps) == pytest.approx(expected)
    assert kl_divergence(t, t * 10, 1e-9) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(DataError):
        kl_divergence(np.zeros(3), s)


def test_leaf_distribution(tiny):
    np.testing.assert_allclose(leaf_distribution(tiny, ROWS), [1.5, 0, 0.5, 1])
    np.testing.assert_allclose(leaf_distribution(tiny, ROWS, [1]), [0.5, 0, 0.5, 0])


def test_quality_sources_and_errors(tiny):
    from datasets import Dataset

    ds = Dataset.from_dict({"score": [0.2, 0.4, 0.9], "text": ["a", "bb", "ccc"]})
    np.testing.assert_allclose(resolve_quality(ds, "score"), [0.2, 0.4, 0.9])
    np.testing.assert_allclose(resolve_quality(ds, lambda b: [len(t) for t in b["text"]]), [1, 2, 3])
    np.testing.assert_allclose(resolve_quality(ds, None), [1, 1, 1])
    with pytest.raises(MissingColumnError):
        resolve_quality(ds, "reward")
    with pytest.raises(DataError, match=">= 0"):
        resolve_quality(None, [1.0, -0.1, 2.0], 3)
    with pytest.raises(DataError, match="NaN"):
        resolve_quality(None, [1.0, float("nan"), 2.0], 3)
    with pytest.raises(DataError, match="one per row"):
        resolve_quality(None, [1.0], 3)


def test_bad_leaves_and_config(tiny):
    with pytest.raises(DataError, match="not a leaf"):
        tree_information(tiny, [[4]])  # an inner node
    with pytest.raises(DataError, match="out of range"):
        tree_information(tiny, [[99]])
    with pytest.raises(ConfigError):
        TreeInformationConfig(b=1.5)
    with pytest.raises(ConfigError):
        TreeInformationConfig(a=0)
