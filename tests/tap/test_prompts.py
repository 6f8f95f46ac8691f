"""Prompt generation on a fake endpoint: language filter, exact/near-duplicate and copied-example drops, quota top-up,
seeds per round, resuming from the request cache; and the language detector on real Chinese and English prompts."""

from __future__ import annotations

import json

import pytest

from hf_prefsel.tap import LanguageDetector, PromptGenerationConfig, PromptGenerator
from hf_prefsel.tap.prompts import clean_prompt, demo_prompts


def _reply(req, prompts):
    return json.dumps({"topic": req.topic(), "prompts": list(prompts)[: req.count()]}, ensure_ascii=False)


@pytest.fixture
def scripted(zh_prompts, en_prompts):
    """Replies per (leaf name, round) built from real prompts; see the test for the expected outcome."""
    zh = zh_prompts
    en = en_prompts

    def supply(req):
        assert req.stage == "prompts"
        rnd = req.seed // 1000
        topic = req.topic()
        if topic.endswith("物理"):
            if rnd == 0:  # 1 kept; English, exact copy, near copy, few-shot example, too short dropped
                return _reply(req, [zh[0], en[0], zh[0], "请" + zh[0], demo_prompts("zh")[1], "好"])
            return _reply(req, [zh[4], zh[1], zh[2]])  # zh[4] was kept for biology: a cross-leaf duplicate
        if topic.endswith("生物"):
            return _reply(req, zh[4:10])
        return _reply(req, en[10 + 6 * rnd: 16 + 6 * rnd])  # cooking only ever gets English: never filled

    return supply


def _generator(fake, cache_path, **cfg):
    settings = dict(prompts_per_call=6, overgenerate=3.0, max_rounds=3, axes=[], progress=False)
    settings.update(cfg)
    return PromptGenerator(fake.config(cache_path, repair_attempts=0), PromptGenerationConfig(**settings))


def test_filters_topup_and_report(fake_llm, cache_path, tiny_taxonomy, scripted, zh_prompts):
    fake = fake_llm(scripted)
    gen = _generator(fake, cache_path)
    units = tiny_taxonomy.units(tiny_taxonomy.leaf_quotas(per_leaf=2), axes=[])
    rows, report = gen.generate(tiny_taxonomy, units, "zh")

    kept = {leaf: [r["prompt"] for r in rows if r["leaf_id"] == leaf] for leaf in ("physics", "biology", "cooking")}
    assert kept["physics"] == [zh_prompts[0], zh_prompts[1]]
    assert kept["biology"] == zh_prompts[4:6]
    assert kept["cooking"] == []
    by_unit = {u.leaf_id: u for u in report.units}
    phys = by_unit["physics"]
    assert phys.drops == {"language": 1, "duplicate": 2, "near_duplicate": 1, "copied_example": 1, "too_short": 1,
                          "over_quota": 1}
    assert (phys.calls, phys.rounds, phys.accepted, phys.missing) == (2, 2, 2, 0)
    assert by_unit["biology"].drops == {"over_quota": 4} and by_unit["biology"].calls == 1
    cooking = by_unit["cooking"]
    assert (cooking.calls, cooking.accepted, cooking.missing, cooking.drops["language"]) == (3, 0, 2, 18)
    # the composition report: specified vs realized
    assert report.by_leaf() == {"physics": (2, 2), "biology": (2, 2), "cooking": (2, 0)}
    assert report.by_top_level(tiny_taxonomy) == {"science": (4, 4), "life": (2, 0)}
    assert report.to_dict()["unfilled_units"] == 1 and report.dedup == "ngram"
    text = report.format(tiny_taxonomy)
    assert "prompts kept 4/6" in text and "0/2   日常生活 > 烹饪  (short)" in text
    # rows carry the taxonomy position, language and a stable id
    row = rows[0]
    assert row["node_path"] == ["科学", "物理"] and row["language"] == "zh" and len(row["prompt_id"]) == 16
    # one seed per round: top-ups are new calls, not cache hits
    seeds = sorted({b["seed"] for b in fake.requests})
    assert seeds == [0, 1000, 2000]
    assert report.usage["calls"] == 6 and report.usage["cache_hits"] == 0


def test_rerun_is_served_from_the_cache(fake_llm, cache_path, tiny_taxonomy, scripted):
    fake = fake_llm(scripted)
    units = tiny_taxonomy.units(tiny_taxonomy.leaf_quotas(per_leaf=2), axes=[])
    first, _ = _generator(fake, cache_path).generate(tiny_taxonomy, units, "zh")
    n = len(fake.requests)
    again, report = _generator(fake, cache_path).generate(tiny_taxonomy, units, "zh")
    assert again == first
    assert len(fake.requests) == n and report.usage["calls"] == 0 and report.usage["cache_hits"] == 6


def test_english_uses_embedding_dedup(fake_llm, cache_path, tiny_taxonomy, en_prompts):
    paraphrase = "Give me three tips for staying healthy."
    original = "Give three tips for staying healthy."
    fake = fake_llm(lambda req: _reply(req, [original, paraphrase, en_prompts[20], en_prompts[21]]))
    gen = _generator(fake, cache_path, prompts_per_call=4, overgenerate=1.0, max_rounds=1)
    rows, report = gen.generate(tiny_taxonomy, tiny_taxonomy.units({"physics": 4}, axes=[]), "en")
    assert report.dedup == "embedding"
    assert [r["prompt"] for r in rows] == [original, en_prompts[20], en_prompts[21]]
    assert report.drops == {"near_duplicate": 1}


def test_failed_calls_are_counted_not_fatal(fake_llm, cache_path, tiny_taxonomy):
    fake = fake_llm(lambda req: "Sure! Here are some prompts: 1. what")
    gen = _generator(fake, cache_path, max_rounds=2)
    rows, report = gen.generate(tiny_taxonomy, tiny_taxonomy.units({"physics": 1}, axes=[]), "zh")
    assert rows == []
    unit = report.units[0]
    assert (unit.calls, unit.failed_calls, unit.accepted) == (2, 2, 0)
    assert "2 failed" in report.format()


def test_axes_and_descriptions_reach_the_prompt(fake_llm, cache_path, tiny_taxonomy, zh_prompts):
    fake = fake_llm(lambda req: _reply(req, zh_prompts[30:40]))
    gen = _generator(fake, cache_path, axes=None, max_rounds=1)
    units = tiny_taxonomy.units({"physics": 2})
    rows, _ = gen.generate(tiny_taxonomy, units, "zh")
    queries = sorted(b["prompt"].rsplit("Input: ", 1)[-1] for b in fake.requests)
    assert any("任务类型：开放问答" in q for q in queries) and any("任务类型：写作" in q for q in queries)
    assert {r["task_type"] for r in rows} == {"open_qa", "writing"}
    assert all("\nOutput:" in b["prompt"].rsplit("Input: ", 1)[-1] for b in fake.requests)  # base-model transcript


def test_clean_prompt():
    assert clean_prompt('  1. "Explain gravity."  ') == "Explain gravity."
    assert clean_prompt("（2）解释重力。") == "解释重力。"
    assert clean_prompt("- “写一首诗”") == "写一首诗"
    assert clean_prompt("2024年的奥运会在哪里举办？") == "2024年的奥运会在哪里举办？"


def test_language_detector_on_real_prompts(zh_prompts, en_prompts):
    det = LanguageDetector()
    zh = zh_prompts[:600]
    en = en_prompts
    assert sum(det.is_language(t, "zh") for t in zh) / len(zh) >= 0.97
    assert sum(det.is_language(t, "en") for t in en) / len(en) >= 0.98
    assert not any(det.is_language(t, "zh") for t in en)
    assert sum(det.is_language(t, "en") for t in zh) / len(zh) <= 0.02
    assert det.detect("请给我写一首关于秋天的诗").language == "zh"
    assert det.reject_reason("Write a poem about autumn", "zh") == "script"
    assert det.reject_reason("Écris un poème sur l'automne, avec des rimes et trois strophes.", "en") == "language"
    assert det.reject_reason("12345 !!!", "en") == "language"  # no letters at all
    assert det.is_language("用Python写一个函数, to check prime numbers", "zh")


def test_fewer_prompts_than_asked_are_kept_and_topped_up(fake_llm, cache_path, tiny_taxonomy, zh_prompts):
    fake = fake_llm(lambda req: _reply(req, [zh_prompts[50 + req.seed // 1000]]))  # always just one prompt
    gen = _generator(fake, cache_path, prompts_per_call=3, overgenerate=1.0, max_rounds=3)
    rows, report = gen.generate(tiny_taxonomy, tiny_taxonomy.units({"physics": 2}, axes=[]), "zh")
    assert [r["prompt"] for r in rows] == zh_prompts[50:52]
    assert [r["round"] for r in rows] == [0, 1]
    assert report.units[0].calls == 2 and report.usage["invalid_replies"] == 0
