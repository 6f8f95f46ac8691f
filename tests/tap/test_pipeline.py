"""The whole TaP pipeline on a fake endpoint: TRL-format outputs, the PD adapter reading the ratings, saving, the
`tap_generate` command, and TRL's DPO data path on the generated file."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from hf_prefsel.errors import ConfigError

from hf_prefsel.tap import (
    JudgeConfig,
    PairConfig,
    PromptGenerationConfig,
    ResponseGenerationConfig,
    TaPConfig,
    TaPPipeline,
    Taxonomy,
)


@pytest.fixture
def responder(zh_prompts):
    """Prompts: real Chinese instructions picked by topic and seed. Responses: a Chinese answer at low temperature,
    an English one at high temperature. Judge: 9 for Chinese answers, 3 for English ones."""

    def respond(req):
        if req.stage == "prompts":
            start = int(hashlib.sha1(f"{req.topic()}|{req.seed}".encode()).hexdigest(), 16) % (len(zh_prompts) - 10)
            return json.dumps({"topic": req.topic(), "prompts": zh_prompts[start:start + req.count()]}, ensure_ascii=False)
        if req.stage == "judge":
            good = "回答：这是" in req.query
            s = 9 if good else 3
            return json.dumps({"helpfulness": s, "correctness": s, "instruction_following": s, "harmlessness": 10,
                               "fluency": s, "overall": s, "rationale": "ok"})
        if req.temperature < 0.5:
            return "这是一个认真、准确的中文回答。"
        return "This answer is in English."

    return respond


def _config(**pairs):
    return TaPConfig(
        language="zh", per_leaf=2,
        prompts=PromptGenerationConfig(progress=False),
        responses=ResponseGenerationConfig(n_responses=2, progress=False),
        judge=JudgeConfig(progress=False),
        pairs=PairConfig(**pairs),
    )


def test_pipeline_outputs(fake_llm, cache_path, tiny_taxonomy, responder, tmp_path):
    from hf_prefsel.pd import from_multi_response

    fake = fake_llm(responder)
    result = TaPPipeline(fake.config(cache_path), _config()).run(tiny_taxonomy)
    prefs = result.preferences
    assert len(result.prompts) == 6 and len(prefs) == 6 and len(result.sft) == 6
    assert prefs.column_names[:3] == ["prompt", "chosen", "rejected"]
    for row in prefs:
        assert row["chosen"] == "这是一个认真、准确的中文回答。" and row["rejected"] == "This answer is in English."
        assert row["margin"] == 6 and row["language"] == "zh" and row["task_type"] in ("open_qa", "writing")
        assert row["chosen_ratings"]["fluency"] == 9 and row["rejected_ratings"]["overall"] == 3
        assert row["node_path"][0] in ("科学", "日常生活")
    assert set(result.sft.column_names) >= {"prompt", "completion", "score"}
    rep = result.report
    assert rep.responses == {"generated": 12, "failed": 0, "wrong_language": 6}
    assert rep.pairs["kept"] == 6 and rep.judged == {"judged": 12, "failed": 0}
    assert rep.usage["total"]["calls"] == rep.usage["prompts"]["calls"] + 12 + 12
    text = rep.format(result.taxonomy)
    assert "pairs kept: 6 of 6 prompts" in text and "6 not in zh" in text
    # the ratings are in the multi-response layout the PD selector reads
    pairs = from_multi_response(result.ratings)
    assert len(pairs.pairs) == 6 and pairs.bad_rows.total == 0
    # one aspect per pair (the PD split); harmlessness is tied (10 vs 10) so never used
    assert set(pairs.aspects) <= {"helpfulness", "correctness", "instruction_following", "fluency", "overall"}
    # saving writes every dataset, the report, the taxonomy artifact and its picture
    out = result.save(tmp_path / "run")
    for name in ("preferences.jsonl", "preferences.README.md", "sft.jsonl", "ratings.jsonl", "prompts.jsonl",
                 "report.json", "taxonomy.html", "taxonomy/artifact.json"):
        assert (out / name).exists(), name
    assert Taxonomy.from_pretrained(out / "taxonomy") == result.taxonomy
    card = (out / "preferences.README.md").read_text(encoding="utf-8")
    assert "2506.23979" in card
    lines = (out / "preferences.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6 and "中文回答" in lines[0]  # not \u-escaped


def test_margin_drops_pairs_and_max_leaves(fake_llm, cache_path, responder):
    fake = fake_llm(responder)
    config = _config(margin=7)
    config.max_leaves = 3
    result = TaPPipeline(fake.config(cache_path), config).run(Taxonomy.load("default"))
    assert result.taxonomy.n_leaves == 3 and result.report.leaves_total == Taxonomy.load("default").n_leaves
    assert len(result.preferences) == 0 and result.report.pairs["drops"]["margin_below_delta"] == 6
    assert result.preferences.column_names[:3] == ["prompt", "chosen", "rejected"]  # empty but well-formed
    assert len(result.sft) == 0


def test_command_line(fake_llm, cache_path, responder, tmp_path, capsys):
    from hf_prefsel.cli.tap import main

    fake = fake_llm(responder)
    out = tmp_path / "cli"
    code = main(["--taxonomy", "default", "--language", "zh", "--per-leaf", "1", "--responses", "2", "--max-leaves", "2",
                 "--endpoint", fake.url, "--cache-path", cache_path, "--output", str(out), "--show", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "TaP run: taxonomy 'general-assistant', 2 of" in printed and "pairs kept: 2 of 2 prompts" in printed
    assert "prompt:" in printed and (out / "preferences.jsonl").exists()
    assert any("messages" in b for b in fake.requests)  # an endpoint defaults to the chat route
    # a rerun pays nothing: every reply comes from the request cache
    n = len(fake.requests)
    main(["--taxonomy", "default", "--language", "zh", "--per-leaf", "1", "--max-leaves", "2", "--endpoint", fake.url,
          "--cache-path", cache_path, "--show", "0"])
    assert len(fake.requests) == n
    assert "   0 calls" in capsys.readouterr().out
    # a file --output is refused before any call, as one line and exit status 2 (issue 14); --debug raises
    n = len(fake.requests)
    assert main(["--endpoint", fake.url, "--output", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pass a folder" in err and "Traceback" not in err and len(fake.requests) == n
    with pytest.raises(ConfigError, match="pass a folder"):
        main(["--endpoint", fake.url, "--output", str(tmp_path / "x.jsonl"), "--debug"])


def test_registers_as_a_subcommand():
    import argparse

    from hf_prefsel.cli import tap

    root = argparse.ArgumentParser(prog="hf-prefsel")
    sub = root.add_subparsers(dest="command")
    tap.build_parser(sub.add_parser("tap", description=tap.__doc__))
    args = root.parse_args(["tap", "--language", "zh", "--max-leaves", "3", "--temperatures", "0.2,0.9"])
    assert (args.command, args.language, args.max_leaves, args.temperatures, args.per_leaf) == ("tap", "zh", 3, (0.2, 0.9), None)


def test_generated_file_goes_through_trl_dpo(fake_llm, cache_path, tiny_taxonomy, responder, tmp_path, tiny_lm_dir):
    pytest.importorskip("trl")
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    fake = fake_llm(responder)
    out = TaPPipeline(fake.config(cache_path), _config()).run(tiny_taxonomy).save(tmp_path / "run")
    data = load_dataset("json", data_files=str(out / "preferences.jsonl"), split="train")
    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=1, per_device_train_batch_size=2, max_length=256,
                     use_cpu=True, bf16=False, report_to="none", save_strategy="no", disable_tqdm=True, seed=0)
    trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    assert len(trainer.train_dataset) == 6
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(trainer.train_dataset.column_names)
    metrics = trainer.train().metrics
    assert math.isfinite(metrics["train_loss"])


def test_card_parameters_hold_no_secrets():
    from hf_prefsel.llm import LLMConfig
    from hf_prefsel.tap import ResponseCandidate

    other = LLMConfig(endpoints=["https://example.invalid"], model="big-model", token="hf_" + "x" * 30)
    config = _config()
    config.responses = ResponseGenerationConfig(candidates=[ResponseCandidate(llm=other, temperature=0.7)])
    params = config.parameters()
    text = json.dumps(params)
    # the model is named; neither its token nor its URL reaches a card (issues 13 and 17)
    assert "hf_xxx" not in text and "big-model (chat route)" in text and "example.invalid" not in text
    assert params["language"] == "zh" and params["judge"]["aspects"][0] == "helpfulness"
