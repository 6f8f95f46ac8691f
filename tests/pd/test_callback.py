"""PDSelectionCallback with TRL's DPOTrainer on a tiny random Llama: prove which rows the trainer consumed."""

from __future__ import annotations

import numpy as np
import pytest

from hf_prefsel.errors import ConfigError, DataError
from hf_prefsel.pd import AspectSplitConfig, PDConfig, RatingsScorer, compute_pd, load_multiaspect_jsonl, select_indices_by_pd

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from hf_prefsel.pd import PDSampler, PDSelectionCallback, PDSelectionConfig  # noqa: E402


@pytest.fixture(scope="module")
def scored_pairs(sf_path):
    pairs = load_multiaspect_jsonl(sf_path, AspectSplitConfig()).pairs.select(range(40))
    return compute_pd(pairs, RatingsScorer(), PDConfig(progress=False)).dataset


def _dpo_trainer(model_dir, train_dataset, tmp_path, **overrides):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    kwargs = dict(
        output_dir=str(tmp_path / "dpo"),
        num_train_epochs=1,
        per_device_train_batch_size=4,
        max_length=96,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        beta=0.1,
        disable_tqdm=True,
        seed=0,
    )
    kwargs.update(overrides)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    return DPOTrainer(model=model, args=DPOConfig(**kwargs), train_dataset=train_dataset, processing_class=tok)


class _Recorder:
    """Wraps the trainer's collator and maps every example it receives back to a dataset row by its token ids.

    This sits between the dataloader and the model: what it sees is exactly what the trainer trains on.
    """

    def __init__(self, trainer):
        self.inner = trainer.data_collator
        ds = trainer.train_dataset
        self.row_of = {}
        for i in range(len(ds)):
            key = self._key(ds[i])
            assert key not in self.row_of, "test data must have distinct tokenized rows"
            self.row_of[key] = i
        self.batches: list[list[int]] = []
        trainer.data_collator = self

    @staticmethod
    def _key(example):
        return (tuple(example["prompt_ids"]), tuple(example["chosen_ids"]), tuple(example["rejected_ids"]))

    def __call__(self, features):
        self.batches.append([self.row_of[self._key(f)] for f in features])
        return self.inner(features)


def test_dpo_consumes_exactly_the_pd_selection(tiny_model_dir, scored_pairs, tmp_path):
    trainer = _dpo_trainer(tiny_model_dir, scored_pairs, tmp_path, num_train_epochs=2)
    assert len(trainer.train_dataset) == len(scored_pairs)  # nothing dropped by preprocessing here
    callback = PDSelectionCallback(PDSelectionConfig(ratio=0.3)).attach(trainer)
    recorder = _Recorder(trainer)
    trainer.train()

    expected = select_indices_by_pd(scored_pairs, ratio=0.3)  # same rule as select_by_pd
    assert len(expected) == 12
    consumed = [i for batch in recorder.batches for i in batch]
    per_epoch = [consumed[:12], consumed[12:]]
    assert len(consumed) == 24  # 2 epochs x 12 selected rows, nothing else
    for epoch, rows in enumerate(per_epoch):
        assert sorted(rows) == expected.tolist()  # each selected row exactly once per epoch
        assert rows == callback.sampler.history[epoch]
    assert per_epoch[0] != per_epoch[1]  # reshuffled between epochs
    unselected_pd = np.delete(np.array(scored_pairs["pd"]), expected)
    assert np.array(scored_pairs["pd"])[consumed].max() <= unselected_pd.min()
    assert trainer.state.global_step == 6
    assert callback.selected_ids(0) == [scored_pairs[int(i)]["pair_id"] for i in expected]

    # PD statistics reach the trainer's log history; the per-step batch mean is the mean PD of the rows consumed
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 6
    pd = np.array(scored_pairs["pd"])
    for log, batch in zip(logs, recorder.batches):
        assert log["pd/batch_mean"] == pytest.approx(pd[batch].mean())
        assert log["pd/epoch_budget"] == 12
        assert log["pd/selected_conflict_rate"] == 0.0
        assert log["pd/pool_conflict_rate"] == pytest.approx((pd > 0).mean())


def test_budget_schedule_and_scores_by_id(tiny_model_dir, scored_pairs, tmp_path):
    ids = scored_pairs["pair_id"]
    scores = dict(zip(ids, scored_pairs["pd"]))
    trainer = _dpo_trainer(tiny_model_dir, scored_pairs.remove_columns("pd"), tmp_path, num_train_epochs=3)
    callback = PDSelectionCallback(
        PDSelectionConfig(budget_schedule=[0.1, 0.2, 0.3], shuffle=False), pd_scores=scores
    ).attach(trainer)
    recorder = _Recorder(trainer)
    trainer.train()
    # budgets 4, 8, 12 rows (already whole batches of 4): nested top-ranked subsets, in dataset order
    sizes = [len(callback.selected_indices(e)) for e in range(3)]
    assert sizes == [4, 8, 12]
    consumed = [i for batch in recorder.batches for i in batch]
    assert consumed == (
        callback.selected_indices(0).tolist() + callback.selected_indices(1).tolist() + callback.selected_indices(2).tolist()
    )
    assert set(callback.selected_indices(0)) <= set(callback.selected_indices(1)) <= set(callback.selected_indices(2))
    assert trainer.state.global_step == 1 + 2 + 3
    budgets = [h["pd/epoch_budget"] for h in trainer.state.log_history if "loss" in h]
    assert budgets == [4, 8, 8, 12, 12, 12]


def test_unattached_callback_refuses_to_train(tiny_model_dir, scored_pairs, tmp_path):
    trainer = _dpo_trainer(tiny_model_dir, scored_pairs, tmp_path, max_steps=1)
    trainer.add_callback(PDSelectionCallback())
    with pytest.raises(ConfigError, match="attach"):
        trainer.train()


def test_missing_scores_are_reported(tiny_model_dir, scored_pairs, tmp_path):
    trainer = _dpo_trainer(tiny_model_dir, scored_pairs.remove_columns("pd"), tmp_path, max_steps=1)
    with pytest.raises(DataError, match="No PD scores"):
        PDSelectionCallback().attach(trainer)
    with pytest.raises(DataError, match="no PD score"):
        PDSelectionCallback(pd_scores={"unknown": 0.0}).attach(trainer)
    with pytest.raises(DataError, match="dropped rows"):
        PDSelectionCallback(pd_scores=[0.0, 1.0]).attach(trainer)


def test_sampler_and_config_units():
    sampler = PDSampler([np.array([1, 3, 5]), np.array([1, 2, 3, 5])], shuffle=False)
    assert len(sampler) == 4 and list(sampler) == [1, 3, 5]
    sampler.set_epoch(5)
    assert list(sampler) == [1, 2, 3, 5] and sampler.history[5] == [1, 2, 3, 5]
    shuffled = PDSampler([np.arange(10)], seed=1)
    assert sorted(shuffled) == list(range(10))
    assert PDSelectionConfig(budget_schedule=[0.1, 0.5]).ratio_for_epoch(7) == 0.5
    with pytest.raises(ConfigError):
        PDSelectionConfig(ratio=0.0)
    with pytest.raises(ConfigError):
        PDSelectionConfig(budget_schedule=[])
