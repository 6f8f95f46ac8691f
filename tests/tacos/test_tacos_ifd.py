"""TACOS with the likelihood scorer instead of the pairwise judge (`TacosConfig(scorer="ifd")`): tags from a fake
endpoint, IFD from the embedded model in process; the selection ranks by Cherry's quality within the clusters."""

from __future__ import annotations

import json
import math

import pytest
from datasets import Dataset

from hf_prefsel.errors import ConfigError
from hf_prefsel.llm import LLMConfig
from hf_prefsel.tacos import IFDScorer
from hf_prefsel.tacos.likelihood import cherry_quality
from hf_prefsel.tacos.pipeline import TacosConfig, TacosPipeline
from hf_prefsel.tacos.select import plan_selection


def _tags(body: dict) -> str:
    text = body.get("prompt") or body["messages"][-1]["content"]
    query = text.rsplit("Input:", 1)[-1].lower()
    topic = "cooking" if "recipe" in query or "bake" in query else "science"
    return json.dumps([{"tag": topic, "explanation": "topic"}])


def test_ifd_scores_and_selects_within_clusters(fault_server, lima_rows, cache_path):
    rows = [{"instruction": f"Give a recipe to bake {food}.", "output": text} for food, text in (
        ("bread", "Mix flour, water, yeast and salt; knead, let it rise for an hour, bake at 230 C for 30 minutes."),
        ("a cake", "Cake."),
        ("cookies", "Cream butter and sugar, add an egg and flour, scoop onto a tray and bake 10 minutes at 180 C."),
    )] + [{"instruction": r["instruction"][:200], "output": r["output"][:300]} for r in lima_rows[:3]]
    server = fault_server(responder=_tags)
    config = TacosConfig(budget=2, scorer="ifd", input_column=None)
    config.cluster.n_clusters = 2
    config.normalizer.alpha = 1
    result = TacosPipeline(server.config(cache_path), config, judge_llm=LLMConfig(cache_path=cache_path)).run(
        Dataset.from_list(rows), progress=False)

    pool = result.pool
    by_hand = IFDScorer(LLMConfig(cache_path=cache_path), input_column=None)  # the same passes: from the cache
    for row, score in zip(pool, pool["score"]):
        ifd = by_hand.score_one(row["instruction"], " ".join(row["output"].split()))[2]  # as the judges read it
        assert score == pytest.approx(cherry_quality(ifd)) and not math.isnan(score)
    plan = plan_selection(pool["score"], pool["cluster_ids"], 2)
    assert sorted(result.dataset["instruction"]) == sorted(pool.select(plan.indices)["instruction"])
    counts, usage = result.report.counts, result.report.usage["judging"]
    assert counts["verdict"] == "likelihood" and counts["pairs_judged"] == 0 and counts["unscored"] == 0
    assert usage["calls"] == 2 * len(pool)  # two passes per row, nothing judged in pairs
    assert result.parameters["scorer"] == "ifd"
    assert len(server.requests) == len(rows)  # the endpoint only tagged


def test_unknown_scorer_is_a_config_error():
    with pytest.raises(ConfigError, match="scorer must be 'judge' or 'ifd'"):
        TacosConfig(budget=1, scorer="bt")
