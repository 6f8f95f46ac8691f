"""TaP's judge with probability verdicts: each field's rating is the expected digit under the judge's probabilities,
asked right before that field's number in the JSON; ratings land in the same row fields as sampled ones and the pair
rule works on them; a server without log-probabilities gets sampled ratings."""

from __future__ import annotations

import json
import math
from typing import Sequence

import pytest
from logprob_fakes import FakeSource

from hf_prefsel.errors import ConfigError
from hf_prefsel.llm import FewShotPrompt, LLMConfig
from hf_prefsel.tap import JudgeConfig, PairConfig, PreferenceJudge, build_preference_rows

ASPECTS = ("helpfulness", "fluency")


def table_source(table: dict[tuple[str, str], dict[int, float]], **kwargs) -> FakeSource:
    """`table[(quality, field)]` = {digit: probability}, where quality is "good" when the judged answer contains
    GOOD; digits not listed get no probability."""

    def answer(prompt: str, options: Sequence[str]) -> dict[str, float]:
        query = prompt.rsplit("Input: ", 1)[1]
        quality = "good" if "GOOD" in query else "bad"
        field = query.rsplit('"', 2)[-2]  # the prompt ends with `"field":`
        probs = table[(quality, field)]
        return {o: math.log(probs[int(o)]) if int(o) in probs else -math.inf for o in options}

    return FakeSource(answer, tokens=100, **kwargs)


TABLE = {
    ("good", "overall"): {4: 0.75, 5: 0.25}, ("good", "helpfulness"): {5: 1.0}, ("good", "fluency"): {3: 0.5, 4: 1.5},
    ("bad", "overall"): {1: 0.6, 2: 0.4}, ("bad", "helpfulness"): {1: 1.0}, ("bad", "fluency"): {2: 0.2, 3: 0.2},
}


def _rows() -> list[dict]:
    return [{"prompt": "Why is the sky blue?", "prompt_id": "p1", "language": "en",
             "responses": [{"text": "GOOD: Rayleigh scattering.", "model": "a"}, {"text": "Sky.", "model": "b"},
                           {"text": None, "model": "c"}]}]


def test_ratings_are_expected_digits_asked_before_each_number():
    source = table_source(TABLE)
    judge = PreferenceJudge(LLMConfig(), JudgeConfig(aspects=ASPECTS, scale=(1, 5), verdict="probability",
                                                     progress=False), source=source)
    good, bad, missing = judge.annotate(_rows())[0]["responses"]
    # by hand: 0.75*4 + 0.25*5; fluency 3 and 4 renormalised to 0.25 and 0.75
    assert good["ratings"] == pytest.approx({"helpfulness": 5.0, "fluency": 3.75, "overall": 4.25})
    assert bad["ratings"] == pytest.approx({"helpfulness": 1.0, "fluency": 2.5, "overall": 1.4})
    assert good["judge_error"] is None and good["rationale"] is None
    assert missing["ratings"] is None and missing["judge_error"] == "no response to judge"
    # one question per field, each after the digits greedy decoding would have written for the earlier fields; a
    # source outside this process is asked each field for all responses at once (good, bad, good, bad, ...)
    asked = [p.rsplit("Output: ", 1)[1] for p in source.prompts]
    assert asked[0::2] == ['{"overall":', '{"overall": 4, "helpfulness":', '{"overall": 4, "helpfulness": 5, "fluency":']
    assert asked[5] == '{"overall": 1, "helpfulness": 1, "fluency":'
    assert "from 1 (very poor) to 5 (excellent)" in source.prompts[0]
    assert judge.last_verdict == "probability"
    assert (judge.last_usage["calls"], judge.last_usage["prompt_tokens"], judge.last_usage["total_tokens"]) == (6, 600, 600)


def test_scale_beyond_one_digit_is_asked_on_1_to_9_and_rescaled():
    source = table_source(TABLE)
    judge = PreferenceJudge(LLMConfig(), JudgeConfig(aspects=ASPECTS, overall="mean", verdict="probability",
                                                     progress=False), source=source)
    good = judge.annotate(_rows())[0]["responses"][0]["ratings"]
    to_ten = lambda d: 1 + (d - 1) * 9 / 8  # noqa: E731 - 1-9 onto the configured 1-10
    assert good["helpfulness"] == pytest.approx(to_ten(5.0), abs=1e-3)
    assert good["fluency"] == pytest.approx(to_ten(3.75), abs=1e-3)
    assert good["overall"] == pytest.approx((to_ten(5.0) + to_ten(3.75)) / 2, abs=1e-3)  # overall="mean"
    assert "from 1 (very poor) to 9 (excellent)" in source.prompts[0]
    demo = json.loads(source.prompts[0].split("Output: ", 2)[1].split("\n")[0])
    assert demo == {"overall": 8, "helpfulness": 8, "fluency": 8}  # the demo's 9s of 10, rescaled to the digits asked
    with pytest.raises(ConfigError, match="one-digit"):
        JudgeConfig(verdict="probability", prompt=FewShotPrompt(system="x"))  # a custom prompt on 1-10
    JudgeConfig(verdict="probability", prompt=FewShotPrompt(system="x"), scale=(1, 5))
    with pytest.raises(ConfigError, match="verdict"):
        JudgeConfig(verdict="likely")


def test_probability_ratings_fill_the_sampled_fields_and_make_pairs(fake_llm, cache_path):
    sampled_server = fake_llm(lambda req: json.dumps({"overall": 5 if "GOOD" in req.query else 2,
                                                      "helpfulness": 4, "fluency": 4}))
    config = JudgeConfig(aspects=ASPECTS, scale=(1, 5), progress=False)
    sampled = PreferenceJudge(sampled_server.config(cache_path), config).annotate(_rows())
    judge = PreferenceJudge(LLMConfig(), JudgeConfig(aspects=ASPECTS, scale=(1, 5), verdict="probability",
                                                     progress=False), source=table_source(TABLE))
    probable = judge.annotate(_rows())
    for s, p in zip(sampled[0]["responses"], probable[0]["responses"]):
        assert set(s) == set(p)
        assert (s["ratings"] is None) == (p["ratings"] is None)
        if s["ratings"]:
            assert list(s["ratings"]) == list(p["ratings"]) and all(isinstance(v, float) for v in p["ratings"].values())
    prefs, _, drops = build_preference_rows(probable, PairConfig(margin=2.0))
    assert not drops and len(prefs) == 1
    assert (prefs[0]["chosen_model"], prefs[0]["rejected_model"]) == ("a", "b")
    assert prefs[0]["margin"] == pytest.approx(4.25 - 1.4)
    assert build_preference_rows(probable, PairConfig(margin=3.0))[2] == {"margin_below_delta": 1}


def test_no_logprobs_falls_back_to_sampled(fake_llm, cache_path):
    server = fake_llm(lambda req: json.dumps({"overall": 4, "helpfulness": 3, "fluency": 5}))
    config = JudgeConfig(aspects=ASPECTS, scale=(1, 5), verdict="probability", progress=False)
    refused = PreferenceJudge(server.config(cache_path), config, source=table_source(TABLE, refuse=True))
    good = refused.annotate(_rows())[0]["responses"][0]
    assert good["ratings"] == {"helpfulness": 3.0, "fluency": 5.0, "overall": 4.0} and refused.last_verdict == "sampled"
    # over HTTP: the first log-probability request fails (llama-cpp-python's server without logits_all)
    server.plan = [("status", 500, {"error": "logits_all is False"})]
    judge = PreferenceJudge(server.config(), config)
    rows = judge.annotate(_rows())
    assert [r["ratings"] and r["ratings"]["overall"] for r in rows[0]["responses"]] == [4.0, 4.0, None]
    assert judge.last_verdict == "sampled" and judge.last_usage["calls"] == 2


def test_embedded_model_in_process():
    """The bundled Gemma: every digit is one token (so servers' top lists hold them too), and one response's field
    questions extend each other, so the model evaluates its prompt about once. Kept small (6 short decodes)."""
    pytest.importorskip("llama_cpp")
    from hf_prefsel.llm import render_transcript
    from hf_prefsel.llm.logprobs import LocalLogprobs

    source = LocalLogprobs(n_ctx=1024, n_threads=1)
    assert all(len(source.llm.tokenize(str(d).encode(), add_bos=False)) == 1 for d in range(10))
    config = JudgeConfig(aspects=("helpfulness",), scale=(1, 3), verdict="probability", progress=False)
    judge = PreferenceJudge(LLMConfig(), config, source=source)
    rows = [{"prompt": "Why is the sky blue?", "responses": [{"text": "Sky."}]}]
    ratings = judge.annotate(rows)[0]["responses"][0]["ratings"]
    assert set(ratings) == {"helpfulness", "overall"} and all(1.0 <= v <= 3.0 for v in ratings.values())
    prompt = render_transcript(judge.messages("Why is the sky blue?", "Sky.", "en", scale=(1, 3)))
    assert judge.last_usage["calls"] == 2  # one decode per field reads all its digits
    assert judge.last_usage["total_tokens"] < len(source.llm.tokenize(prompt.encode())) + 30  # the prompt about once
