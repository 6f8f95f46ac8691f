"""The methods' own artifacts (TACOS tag vocabulary, TAGS knowledge tree, TaP taxonomy) and TaP's result pushed to
the test Hub through the real client and loaded back by repo id."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from huggingface_hub import DatasetCard

from hf_prefsel.hub import Artifact
from hf_prefsel.tacos.vocabulary import NormalizationStep, TagVocabulary
from hf_prefsel.tags.tree import KnowledgeTree, KnowledgeTreeConfig
from hf_prefsel.tap import Taxonomy


def _vocabulary() -> TagVocabulary:
    rng = np.random.default_rng(0)
    return TagVocabulary(
        raw_to_canonical={"Math": "math", "math problems": "math", "coding": "coding", "rare": None},
        canonical_counts={"math": 8, "coding": 4},
        raw_counts={"Math": 6, "math problems": 2, "coding": 4, "rare": 1},
        steps=[NormalizationStep("frequency_filter", True, 4, 3), NormalizationStep("rule_aggregation", True, 3, 2)],
        config={"min_frequency": 2},
        n_samples=12,
        n_samples_with_raw_tags=12,
        n_samples_with_canonical_tags=11,
        n_occurrences=13,
        tag_clusters={"math": 0, "coding": 1},
        centroids=rng.standard_normal((2, 8)).astype(np.float32),
        cluster_config={"n_clusters": 2},
    )


def _tree() -> KnowledgeTree:
    concepts = [f"{topic} {kind}" for topic in ("algebra", "geometry", "poetry", "travel", "python")
                for kind in ("basics", "problems", "history")]
    vectors = np.random.default_rng(1).standard_normal((len(concepts), 16)).astype(np.float32)
    return KnowledgeTree.build(concepts, KnowledgeTreeConfig(ratio=0.3, seed=0), embeddings=vectors)


def _equal(kind: str, a: Artifact, b: Artifact) -> None:
    assert type(a) is type(b)
    if kind == "vocabulary":
        assert a.to_dict() == b.to_dict()
        np.testing.assert_array_equal(a.centroids, b.centroids)
    elif kind == "tree":
        assert a.names == b.names and a.config == b.config
        np.testing.assert_array_equal(a.parents, b.parents)
        np.testing.assert_array_equal(a.embeddings, b.embeddings)
    else:
        assert a == b


ARTIFACTS = {"vocabulary": _vocabulary, "tree": _tree, "taxonomy": lambda: Taxonomy.load("default")}


@pytest.mark.parametrize("repo_type", ["model", "dataset"])
@pytest.mark.parametrize("kind", sorted(ARTIFACTS))
def test_method_artifact_round_trip(hub, kind, repo_type, tmp_path):
    artifact = ARTIFACTS[kind]()
    repo_id = hub.repo_id(kind)
    artifact.push_to_hub(repo_id, repo_type=repo_type, token=hub.write_token)
    cls = type(artifact)
    loaded = cls.from_pretrained(repo_id, repo_type=repo_type, cache_dir=tmp_path / "cache")  # public: no token
    _equal(kind, artifact, loaded)
    _equal(kind, artifact, Artifact.from_pretrained(repo_id, repo_type=repo_type, cache_dir=tmp_path / "other"))
    card = hub.server.files(repo_type, repo_id)["README.md"].decode()
    assert "library_name: hf_prefsel" in card and f"{cls.__qualname__}.from_pretrained(" in card


def _tap_result():
    from hf_prefsel.tap.pipeline import TaPReport, TaPResult
    from hf_prefsel.tap.prompts import PromptGenerationReport

    taxonomy = Taxonomy.load("default")
    prompts = datasets.Dataset.from_list([{"prompt": f"问题 {i}", "leaf_id": "a"} for i in range(4)])
    preferences = datasets.Dataset.from_list(
        [{"prompt": f"问题 {i}", "chosen": "好的回答", "rejected": "bad", "margin": 6} for i in range(4)]
    )
    sft = datasets.Dataset.from_list([{"prompt": f"问题 {i}", "completion": "好的回答"} for i in range(4)])
    ratings = datasets.Dataset.from_list([{"prompt": f"问题 {i}", "scores": [9, 3]} for i in range(4)])
    report = TaPReport(
        taxonomy=taxonomy.name, language="zh", leaves_used=1, leaves_total=2,
        prompts=PromptGenerationReport(language="zh", units=[]),
        usage={"total": {"calls": 20, "prompt_tokens": 1000}},
        models={"responses": "gemma-3-270m at http://127.0.0.1:8081/v1", "judge": "google/gemma-3-270m"},
    )
    return TaPResult(taxonomy=taxonomy, prompts=prompts, ratings=ratings, preferences=preferences, sft=sft,
                     report=report, parameters={"language": "zh", "per_leaf": 2})


def test_tap_result_push_to_hub(hub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _tap_result()
    repo_id = hub.repo_id("tap")
    result.push_to_hub(repo_id, token=hub.write_token)

    cache = str(tmp_path / "fresh")
    assert datasets.load_dataset(repo_id, split="train", cache_dir=cache).to_list() == result.preferences.to_list()
    for name in ("sft", "ratings", "prompts"):
        back = datasets.load_dataset(repo_id, name, split="train", cache_dir=cache)
        assert back.to_list() == getattr(result, name).to_list(), name
    tax = Taxonomy.from_pretrained(repo_id, repo_type="dataset", subfolder="artifacts/taxonomy",
                                   cache_dir=tmp_path / "c")
    assert tax == result.taxonomy
    card = DatasetCard.load(repo_id, repo_type="dataset")
    assert {c["config_name"] for c in card.data.configs} == {"default", "sft", "ratings", "prompts"}
    assert "2506.23979" in card.text and "127.0.0.1" not in str(card)
    assert card.data.hf_prefsel["model"] == "responses: gemma-3-270m at <local endpoint>; judge: google/gemma-3-270m"
