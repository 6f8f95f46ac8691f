"""Judging (parsing, overall modes, failures), responses (candidates, seeds, routes) and the pair rule (margin δ,
ties, identical answers) with TRL-format outputs."""

from __future__ import annotations

import json

import pytest

from hf_prefsel.errors import ConfigError
from hf_prefsel.tap import (
    JudgeConfig,
    PairConfig,
    PreferenceJudge,
    ResponseCandidate,
    ResponseGenerationConfig,
    ResponseGenerator,
    build_preference_rows,
    choose_pair,
    judgement_model,
)
from hf_prefsel.tap.judge import judge_prompt


def _resp(text, overall, **aspects):
    ratings = {"helpfulness": aspects.get("h", overall), "correctness": aspects.get("c", overall), "overall": overall}
    return {"text": text, "model": f"m{overall}", "ratings": ratings}


# ------------------------------------------------------------------------------------------- pair rule


def test_choose_pair_margin_and_ties():
    rs = [_resp("a", 7), _resp("b", 9), _resp("c", 4)]
    assert choose_pair(rs, 2.0) == (1, 2, 5.0)
    assert choose_pair(rs, 5.0) == (1, 2, 5.0)  # a gap equal to delta is kept
    assert choose_pair(rs, 5.5) == "margin_below_delta"
    assert choose_pair([_resp("a", 9)], 0) == "too_few_responses"
    assert choose_pair([_resp("a", 9), {"text": "b", "ratings": None}, {"text": None, "ratings": None}], 0) == "too_few_responses"
    assert choose_pair([_resp("same", 9), _resp(" same ", 3)], 1) == "identical_responses"
    # equal overall: the aspects' mean decides, then the earlier response is chosen
    tied = [_resp("x", 8, h=5), _resp("y", 8, h=9), _resp("z", 2)]
    assert choose_pair(tied, 1)[:2] == (1, 2)
    assert choose_pair([_resp("x", 6), _resp("y", 6)], 0) == (0, 1, 0.0)
    with pytest.raises(ConfigError, match="margin"):
        PairConfig(margin=-1)


def _judged_rows():
    return [
        {"prompt_id": "p1", "prompt": "什么是光合作用？", "leaf_id": "biology", "task_type": "open_qa", "language": "zh",
         "responses": [_resp("植物利用光能把二氧化碳和水合成有机物。", 9), _resp("Photosynthesis.", 3)]},
        {"prompt_id": "p2", "prompt": "写一首诗", "leaf_id": "poetry", "task_type": "writing", "language": "zh",
         "responses": [_resp("床前明月光", 6), _resp("月亮", 5)]},
        {"prompt_id": "p3", "prompt": "1+1=?", "leaf_id": "arithmetic", "task_type": "math", "language": "zh",
         "responses": [_resp("2", 8), {"text": None, "model": "m", "ratings": None}]},
    ]


def test_trl_standard_rows_and_sft():
    prefs, sft, drops = build_preference_rows(_judged_rows(), PairConfig(margin=2), meta_keys=["leaf_id", "task_type", "language"])
    assert drops == {"margin_below_delta": 1, "too_few_responses": 1}
    assert len(prefs) == 1
    row = prefs[0]
    assert (row["prompt"], row["chosen"], row["rejected"]) == ("什么是光合作用？", "植物利用光能把二氧化碳和水合成有机物。", "Photosynthesis.")
    assert row["margin"] == 6 and row["chosen_ratings"]["overall"] == 9 and row["rejected_ratings"]["helpfulness"] == 3
    assert (row["leaf_id"], row["task_type"], row["prompt_id"]) == ("biology", "open_qa", "p1")
    # SFT: by default the chosen side of kept pairs; with a threshold, the best answer of every prompt reaching it
    assert [(s["prompt"], s["completion"]) for s in sft] == [("什么是光合作用？", "植物利用光能把二氧化碳和水合成有机物。")]
    _, sft, _ = build_preference_rows(_judged_rows(), PairConfig(margin=2, sft_min_score=6))
    assert [s["prompt_id"] for s in sft] == ["p1", "p2", "p3"]


def test_trl_conversational_rows():
    from trl.data_utils import is_conversational

    prefs, sft, _ = build_preference_rows(_judged_rows(), PairConfig(margin=0, format="conversational"))
    assert len(prefs) == 2
    assert prefs[0]["prompt"] == [{"role": "user", "content": "什么是光合作用？"}]
    assert prefs[0]["chosen"][0]["role"] == "assistant"
    assert is_conversational(prefs[0]) and is_conversational(sft[0])
    assert sft[0]["messages"][-1]["role"] == "assistant"
    std, _, _ = build_preference_rows(_judged_rows(), PairConfig(margin=0))
    assert not is_conversational(std[0])


# ------------------------------------------------------------------------------------------- judge


def test_judge_schema_and_prompt():
    model = judgement_model(("helpfulness", "fluency"), (1, 5), rationale=False)
    schema = model.model_json_schema()
    assert list(schema["properties"]) == ["overall", "helpfulness", "fluency"]  # overall first
    assert schema["properties"]["overall"]["enum"] == [1, 2, 3, 4, 5]
    # the few-shot answers follow the field order and the scale
    prompt = judge_prompt("zh", JudgeConfig(aspects=("helpfulness", "fluency"), scale=(1, 5), rationale=False))
    demo = json.loads(prompt.examples[0][1])
    assert list(demo) == ["overall", "helpfulness", "fluency"] and all(1 <= v <= 5 for v in demo.values())
    assert "\n" not in prompt.examples[0][1]
    with pytest.raises(ConfigError, match="identifier"):
        JudgeConfig(aspects=("overall",))
    with pytest.raises(ConfigError, match="scale"):
        JudgeConfig(scale=(5, 1))


def _judge_responder(req):
    if "不好" in req.query or "bad" in req.query:
        return json.dumps({"helpfulness": 2, "correctness": 3, "instruction_following": 2, "harmlessness": 10,
                           "fluency": 3, "overall": 2, "rationale": "poor"})
    if "garbage" in req.query:
        return "I would rate it highly"
    return json.dumps({"helpfulness": 8, "correctness": 9, "instruction_following": 8, "harmlessness": 10,
                       "fluency": 9, "overall": 9, "rationale": "good"})


def test_judge_parses_scores_and_records_failures(fake_llm, cache_path):
    fake = fake_llm(_judge_responder)
    rows = [{"prompt": "问题", "language": "zh", "responses": [
        {"text": "好的回答"}, {"text": "不好的回答"}, {"text": "garbage"}, {"text": None, "error": "empty response"}]}]
    judge = PreferenceJudge(fake.config(cache_path, repair_attempts=1), JudgeConfig(rationale=True, progress=False))
    out = judge.annotate(rows)
    good, bad, broken, missing = out[0]["responses"]
    assert good["ratings"] == {"helpfulness": 8.0, "correctness": 9.0, "instruction_following": 8.0,
                               "harmlessness": 10.0, "fluency": 9.0, "overall": 9.0}
    assert good["rationale"] == "good" and good["judge_error"] is None
    assert bad["ratings"]["overall"] == 2.0
    assert broken["ratings"] is None and "StructuredOutputError" in broken["judge_error"]
    assert missing["ratings"] is None and missing["judge_error"] == "no response to judge"
    assert rows[0]["responses"][0] == {"text": "好的回答"}  # inputs untouched
    assert judge.last_usage["calls"] == 4 and judge.last_usage["repairs"] == 1  # 3 judged + 1 repair
    mean = PreferenceJudge(fake.config(cache_path), JudgeConfig(overall="mean", progress=False)).annotate(rows[:1])
    assert mean[0]["responses"][0]["ratings"]["overall"] == pytest.approx((8 + 9 + 8 + 10 + 9) / 5)
    # Chinese judge prompt for Chinese data, with Chinese aspect descriptions
    assert "评审员" in fake.requests[0]["prompt"] and "有用性" in fake.requests[0]["prompt"]


# ------------------------------------------------------------------------------------------- responses


def test_responses_differ_by_candidate(fake_llm, cache_path):
    fake = fake_llm(lambda req: f"answer at t={req.temperature} seed={req.seed}")
    gen = ResponseGenerator(fake.config(cache_path), ResponseGenerationConfig(n_responses=3, temperatures=(0.2, 1.0), progress=False))
    rows = gen.generate([{"prompt": "What is DNA?", "language": "en"}, {"prompt": "什么是DNA？", "language": "zh"}])
    texts = [r["text"] for r in rows[0]["responses"]]
    assert texts == ["answer at t=0.2 seed=0", "answer at t=0.6 seed=1", "answer at t=1.0 seed=2"]
    # a local fake server is not the embedded Gemma: rows name the model the server reported (issue 13)
    assert [r["model"] for r in rows[0]["responses"]] == ["fake.gguf@t0.2", "fake.gguf@t0.6", "fake.gguf@t1"]
    assert rows[0]["responses"][0]["language"] == "en"
    # the base-model transcript has answer examples in the prompt's language and stops at a blank line
    zh_body = [b for b in fake.requests if "什么是DNA" in b["prompt"]][0]
    assert "请用中文" in zh_body["prompt"] and "\n\n" in zh_body["stop"]
    assert gen.last_usage["calls"] == 6
    again = gen.generate([{"prompt": "What is DNA?", "language": "en"}])
    assert gen.last_usage["calls"] == 0 and again[0]["responses"] == rows[0]["responses"]


def test_responses_chat_route_and_candidates(fake_llm, cache_path):
    fake = fake_llm(lambda req: "" if req.temperature == 0.5 else "ok")
    other = fake_llm(lambda req: "from the other model")
    cands = [ResponseCandidate(temperature=0.0, seed=1), ResponseCandidate(name="other", llm=other.config(cache_path), temperature=0.9),
             ResponseCandidate(temperature=0.5)]
    chat = fake.config(cache_path, route="chat")
    rows = ResponseGenerator(chat, ResponseGenerationConfig(candidates=cands, progress=False)).generate([{"prompt": "Hi"}])
    first, second, third = rows[0]["responses"]
    assert first["text"] == "ok" and second == {**second, "text": "from the other model", "model": "other"}
    assert third["text"] is None and third["error"] == "empty response"
    chat_body = [b for b in fake.requests if "messages" in b][0]
    assert [m["role"] for m in chat_body["messages"]] == ["system", "user"]  # no few-shot turns on the chat route
