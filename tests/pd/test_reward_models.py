"""Proxy reward models: length-balanced sampling, the length penalty inside TRL's RewardTrainer loss, training and
scoring a tiny random Llama (built in conftest, no downloads)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hf_prefsel.errors import ConfigError, DataError
from hf_prefsel.pd import (
    AspectSplitConfig,
    PDConfig,
    ProxyRMConfig,
    balanced_share,
    build_reward_dataset,
    compute_pd,
    length_balanced_indices,
    load_multiaspect_jsonl,
)

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

TRAIN_ARGS = dict(
    max_steps=2,
    per_device_train_batch_size=4,
    use_cpu=True,
    bf16=False,
    logging_steps=1,
    disable_tqdm=True,
    dataloader_num_workers=0,
)


def test_balanced_share_formula():
    # f^+ = 0.7, tau = 1: exp(0.7) / (exp(0.7) + exp(0.3))
    assert balanced_share(0.7, 1.0) == pytest.approx(math.exp(0.7) / (math.exp(0.7) + math.exp(0.3)))
    assert balanced_share(0.7, 1000.0) == pytest.approx(0.5, abs=1e-3)  # large tau -> 50/50
    assert balanced_share(0.7, 0.01) == pytest.approx(1.0)  # small tau -> majority side only
    assert balanced_share(0.5, 0.3) == pytest.approx(0.5)


def test_length_balanced_indices_hits_target_without_repeats():
    delta = np.array([5.0] * 70 + [-5.0] * 30)  # 70 % of winners are longer
    idx, stats = length_balanced_indices(delta, temperature=1.0, sample_ratio=1.0, seed=0)
    assert len(set(idx.tolist())) == len(idx)
    f_hat = balanced_share(0.7, 1.0)
    assert stats.f_hat_pos == pytest.approx(f_hat)
    # the 30 shorter-winner pairs cap the draw: total = floor(30 / (1 - f_hat))
    assert stats.n_sampled == math.floor(30 / (1 - f_hat))
    assert (delta[idx] >= 0).mean() == pytest.approx(f_hat, abs=0.02)
    assert (delta[idx] < 0).sum() == 30
    small, s2 = length_balanced_indices(delta, temperature=1.0, sample_ratio=0.3, seed=0)
    assert s2.n_sampled == 30 and (delta[small] >= 0).sum() == round(f_hat * 30)
    again, _ = length_balanced_indices(delta, temperature=1.0, sample_ratio=0.3, seed=0)
    assert again.tolist() == small.tolist()
    one_sided, s3 = length_balanced_indices(np.ones(10), temperature=1.0, sample_ratio=0.5)
    assert not s3.balanced and len(one_sided) == 5
    off, s4 = length_balanced_indices(delta, temperature=None, sample_ratio=1.0)
    assert len(off) == 100 and not s4.balanced


def test_config_validation():
    with pytest.raises(ConfigError):
        ProxyRMConfig(balance_temperature=0)
    with pytest.raises(ConfigError):
        ProxyRMConfig(sample_ratio=0)
    with pytest.raises(ConfigError):
        ProxyRMConfig(length_unit="words")


@pytest.fixture(scope="module")
def sf_pairs(sf_path):
    return load_multiaspect_jsonl(sf_path, AspectSplitConfig()).pairs.select(range(48))


def test_length_penalty_changes_reward_trainer_loss_as_the_formula_says(tiny_model_dir, sf_pairs):
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rho = 0.05
    config = ProxyRMConfig(length_penalty=rho, balance_temperature=None)
    subset = sf_pairs.filter(lambda p: p["aspect"] == "informativeness")
    train_ds, _ = build_reward_dataset(subset, config, tok)
    # Δlen is the response token count difference; the TRL margin is -ρ·Δlen
    for row in train_ds.select(range(5)):
        n_c = len(tok(row["chosen"], add_special_tokens=False)["input_ids"])
        n_r = len(tok(row["rejected"], add_special_tokens=False)["input_ids"])
        assert row["delta_len"] == n_c - n_r
        assert row["margin"] == pytest.approx(-rho * (n_c - n_r))
    assert any(d != 0 for d in train_ds["delta_len"])

    args = RewardConfig(output_dir=str(tiny_model_dir) + "-rm-loss", report_to="none", save_strategy="no", seed=0, **TRAIN_ARGS)
    trainer = RewardTrainer(model=tiny_model_dir, args=args, train_dataset=train_ds, processing_class=tok)
    rows = [trainer.train_dataset[i] for i in range(8)]
    batch = trainer.data_collator(rows)
    assert "margin" in batch
    delta = torch.tensor([r["delta_len"] for r in rows], dtype=torch.float32)
    with torch.no_grad():
        rewards = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)
        r_w, r_l = rewards.chunk(2)
        penalised = trainer.compute_loss(trainer.model, dict(batch))
        plain = trainer.compute_loss(trainer.model, {k: v for k, v in batch.items() if k != "margin"})
    expected_penalised = -torch.nn.functional.logsigmoid(r_w - r_l + rho * delta).mean()
    expected_plain = -torch.nn.functional.logsigmoid(r_w - r_l).mean()
    assert penalised.item() == pytest.approx(expected_penalised.item(), rel=1e-5)
    assert plain.item() == pytest.approx(expected_plain.item(), rel=1e-5)
    assert abs(penalised.item() - plain.item()) > 1e-4
    # per pair: a longer winner lowers the loss (length explains part of the preference), a shorter one raises it
    per_pen = -torch.nn.functional.logsigmoid(r_w - r_l + rho * delta)
    per_plain = -torch.nn.functional.logsigmoid(r_w - r_l)
    assert torch.all((per_pen < per_plain)[delta > 0]) and torch.all((per_pen > per_plain)[delta < 0])

    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_train_proxy_rms_full_and_lora_then_score(tiny_model_dir, sf_pairs, tmp_path):
    from peft import LoraConfig

    from hf_prefsel.pd import train_proxy_reward_models

    config = ProxyRMConfig(output_dir=str(tmp_path / "rms"), training_args=TRAIN_ARGS, seed=0)
    rms = train_proxy_reward_models(sf_pairs, tiny_model_dir, config)
    assert set(rms.models) == {"informativeness", "naturalness"}
    for aspect, stats in rms.balance.items():
        assert stats.n_sampled <= stats.n_pool and rms.metrics[aspect]["train_loss"] > 0
        assert (tmp_path / "rms" / aspect / "config.json").exists()
    scorer = rms.scorer(batch_size=16)
    # scoring tokenizes exactly as RewardTrainer trained: prompt + "\n\n" + response + eos
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    train_ds, _ = build_reward_dataset(sf_pairs.select(range(4)), ProxyRMConfig(length_penalty=0), rms.tokenizer)
    args = RewardConfig(output_dir=str(tmp_path / "tok"), report_to="none", **TRAIN_ARGS)
    prepared = RewardTrainer(model=tiny_model_dir, args=args, train_dataset=train_ds,
                             processing_class=AutoTokenizer.from_pretrained(tiny_model_dir)).train_dataset
    pair = sf_pairs[0]
    assert scorer.texts_to_ids([pair["prompt"]], [pair["chosen"]])[0] == prepared[0]["chosen_ids"]

    result = compute_pd(sf_pairs, scorer, PDConfig(progress=False))
    pd = np.array(result.dataset["pd"])
    assert np.isfinite(pd).all() and np.all(np.abs(pd) <= 1.0)  # one other aspect, clipped to [-1, 1]
    assert all(np.isfinite(v) and v > 0 for v in result.scales.values())
    # the saved models load back and score the same
    from hf_prefsel.pd import RewardModelScorer

    reloaded = RewardModelScorer(rms.paths, batch_size=16)
    again = compute_pd(sf_pairs, reloaded, PDConfig(progress=False))
    np.testing.assert_allclose(again.dataset["pd"], pd, atol=1e-5)

    lora = train_proxy_reward_models(
        sf_pairs,
        tiny_model_dir,
        ProxyRMConfig(aspects=["naturalness"], training_args=TRAIN_ARGS),
        peft_config=LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    model = lora.models["naturalness"]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert 0 < trainable < total  # only adapters (and the score head) train
    gaps = compute_pd(sf_pairs, lora.scorer(), PDConfig(aspects=["naturalness"], progress=False)).gaps
    assert np.isfinite(gaps).all()


def test_too_few_pairs_is_refused(tiny_model_dir, sf_pairs):
    from hf_prefsel.pd import train_proxy_reward_models

    with pytest.raises(DataError, match="min_pairs"):
        train_proxy_reward_models(sf_pairs.select(range(3)), tiny_model_dir, ProxyRMConfig(min_pairs=10, training_args=TRAIN_ARGS))
