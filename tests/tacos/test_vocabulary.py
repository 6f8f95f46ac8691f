"""TagVocabulary: the artifact round trip (folder save/load), report, and a normalizer rebuilt from it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hf_prefsel.errors import ArtifactError
from hf_prefsel.hub.artifact import Artifact
from hf_prefsel.tacos.cluster import TagClusterConfig, TagClusterer
from hf_prefsel.tacos.normalize import TagNormalizer, TagNormalizerConfig
from hf_prefsel.tacos.vocabulary import TagVocabulary

ROWS = (
    [["Math", "Problem Solving"]] * 6
    + [["math problems", "problem-solving"]] * 2
    + [["Python programming", "coding"]] * 4
    + [["Creative Writing", "poetry"]] * 3
    + [["creative writing"], ["Travel advice"]]
)


def _fitted(embedder):
    normalizer = TagNormalizer(TagNormalizerConfig(association_aggregation=False), embedder=embedder).fit(ROWS)
    TagClusterer(TagClusterConfig(n_clusters=3, seed=0), embedder=embedder).fit(normalizer.vocabulary)
    return normalizer


def test_save_load_round_trip(tmp_path, embedder):
    normalizer = _fitted(embedder)
    vocab = normalizer.vocabulary
    folder = vocab.save_pretrained(tmp_path / "vocab")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "artifact.json", "tensors.safetensors"]
    loaded = TagVocabulary.from_pretrained(folder)
    assert loaded.to_dict() == json.loads(json.dumps(vocab.to_dict()))
    np.testing.assert_array_equal(loaded.centroids, vocab.centroids)
    assert loaded.report() == vocab.report()
    # Artifact.from_pretrained dispatches on the stored type.
    assert isinstance(Artifact.from_pretrained(folder), TagVocabulary)
    # A normalizer and a clusterer rebuilt from the loaded artifact behave like the originals.
    rebuilt = TagNormalizer.from_vocabulary(loaded)
    assert rebuilt.config == normalizer.config
    sample = [["MATH", "coding", "never seen before"], ["Creative-Writing"]]
    assert rebuilt.transform(sample) == normalizer.transform(sample)
    clusterer = TagClusterer.from_vocabulary(loaded, embedder=embedder)
    assert clusterer.tag_clusters == vocab.tag_clusters
    readme = (folder / "README.md").read_text()
    assert "rule_aggregation" in readme and "library_name: hf_prefsel" in readme


def test_report_shows_compression_per_step(embedder):
    vocab = TagNormalizer(TagNormalizerConfig(association_aggregation=False), embedder=embedder).fit(ROWS).vocabulary
    report = vocab.report()
    lines = report.splitlines()
    assert lines[0].startswith(f"Tag normalization: {vocab.n_raw} raw tags -> {vocab.n_canonical} canonical tags")
    for name in ("frequency_filter", "rule_aggregation", "semantic_aggregation", "association_aggregation"):
        assert any(line.strip().startswith(name) for line in lines), name
    steps = vocab.compression()
    assert steps[0][1] == vocab.n_raw and steps[-1][2] == vocab.n_canonical
    for (_, _, after), (_, before, _) in zip(steps, steps[1:]):
        assert after == before  # each step starts where the previous one ended
    assert vocab.canonical_counts["problem solving"] == 8  # "Problem Solving" x6 + "problem-solving" x2


def test_loading_a_malformed_folder_fails_with_a_clear_error(tmp_path, embedder):
    folder = _fitted(embedder).vocabulary.save_pretrained(tmp_path / "vocab")
    payload = json.loads((folder / "artifact.json").read_text())
    del payload["data"]["raw_to_canonical"]
    (folder / "artifact.json").write_text(json.dumps(payload))
    with pytest.raises(ArtifactError, match="fit and save it again"):
        TagVocabulary.from_pretrained(folder)
