"""Fixtures for the TAGS tests: one embedder, one tree of real concept labels, real labelled rows.

Data is read at test time from ../shared/data (never copied into the repo): concept-like
labels from `taxonomy/category_taxonomies.jsonl` and FLASK rows with their skill/domain labels.
"""

from __future__ import annotations

import os

import pytest

from shared_data import read_jsonl  # tests/ is on pythonpath

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


# Taxonomies whose labels read like knowledge concepts (topics, skills, domains, scenarios).
CONCEPT_TAXONOMIES = ("arena_hard_cluster", "autoj_scenario", "flask_domain", "flask_subdomain", "flask_skill", "wizardlm_testset_skill")


@pytest.fixture(scope="session")
def taxonomy_rows() -> list[dict]:
    return read_jsonl("taxonomy", "category_taxonomies.jsonl")


@pytest.fixture(scope="session")
def concepts(taxonomy_rows) -> list[str]:
    """~420 real concept-like labels, canonical (so the tree's own encoding hits the embedder cache), some repeated."""
    from hf_prefsel.tags.tree import canonicalize_concept

    return [canonicalize_concept(r["label"].replace("_", " ")) for r in taxonomy_rows if r["taxonomy"] in CONCEPT_TAXONOMIES]


@pytest.fixture(scope="session")
def flask_rows() -> list[dict]:
    return read_jsonl("instructions", "flask_eval_skills.jsonl")


@pytest.fixture(scope="session")
def autoj_rows() -> list[dict]:
    return read_jsonl("instructions", "autoj_scenario_classification.jsonl")


@pytest.fixture(scope="session")
def embedder():
    from hf_prefsel.embed import Embedder

    return Embedder(cache_size=20_000)


@pytest.fixture(scope="session")
def concept_vectors(concepts, embedder):
    """One vector per input concept (the embedder de-duplicates before encoding)."""
    return embedder.encode(concepts)


@pytest.fixture(scope="session")
def tree(concepts, embedder):
    """The tree the grounding/sampling tests share: real labels, MiniLM, ratio 0.2."""
    from hf_prefsel.tags.tree import KnowledgeTree, KnowledgeTreeConfig

    return KnowledgeTree.build(concepts, KnowledgeTreeConfig(ratio=0.2, max_root_children=8), embedder=embedder)
