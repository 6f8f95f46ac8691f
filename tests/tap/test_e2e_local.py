"""TaP end to end on the real embedded Gemma 3 270M (two llama.cpp servers): a 3-leaf run producing well-formed
TRL preference rows. The model is a small *base* model, so the test checks the pipeline, not the data's quality."""

from __future__ import annotations

import pytest

from hf_prefsel.tap import (
    JudgeConfig,
    PairConfig,
    PromptGenerationConfig,
    ResponseGenerationConfig,
    TaPConfig,
    TaPPipeline,
    Taxonomy,
)


@pytest.mark.slow
def test_three_leaves_on_the_local_model(local_servers, cache_path):
    taxonomy = Taxonomy.load("default")
    config = TaPConfig(
        language="zh",  # the multilingual case TaP is for; Chinese prompts are also shorter here than English ones
        per_leaf=1,
        max_leaves=3,
        # one prompt per request and short replies: grammar-constrained sampling is the slow part on 2 cores
        prompts=PromptGenerationConfig(max_tokens=160, max_rounds=2, overgenerate=1.0, progress=False),
        responses=ResponseGenerationConfig(n_responses=2, max_tokens=48, progress=False),
        judge=JudgeConfig(rationale=False, max_tokens=60, progress=False),
        pairs=PairConfig(margin=0),  # keep every distinct pair: the point here is the row format
    )
    llm = local_servers.config(cache_path=cache_path, repair_attempts=1)
    result = TaPPipeline(llm, config).run(taxonomy)
    report = result.report
    print(report.format(result.taxonomy))

    assert result.taxonomy.n_leaves == 3
    assert report.prompts.quota == 3
    assert len(result.prompts) >= 1, report.prompts.format(result.taxonomy)
    assert set(result.prompts["leaf_id"]) <= {leaf.id for leaf in result.taxonomy.leaves()}
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in p) for p in result.prompts["prompt"])  # language filter
    assert report.usage["total"]["calls"] > 0 and report.usage["total"]["completion_tokens"] > 0
    assert report.responses["generated"] >= 1
    for row in result.ratings:
        assert len(row["responses"]) == 2
    # well-formed TRL rows: strings, chosen scored at least as high as rejected
    assert result.preferences.column_names[:3] == ["prompt", "chosen", "rejected"]
    for row in result.preferences:
        assert isinstance(row["prompt"], str) and row["prompt"].strip()
        assert isinstance(row["chosen"], str) and isinstance(row["rejected"], str) and row["chosen"] != row["rejected"]
        assert row["chosen_score"] >= row["rejected_score"] and row["margin"] >= 0
        assert set(row["chosen_ratings"]) == {"helpfulness", "correctness", "instruction_following", "harmlessness",
                                              "fluency", "overall"}
    # a rerun is served entirely from the request cache
    again = TaPPipeline(llm, config).run(taxonomy)
    assert again.report.usage["total"]["calls"] == 0
    assert again.preferences.to_list() == result.preferences.to_list()
