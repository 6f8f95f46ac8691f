"""`PDSelectionCallback`: make a TRL trainer (e.g. `DPOTrainer`) train only on the PD-selected pairs.

The `Trainer` builds its training dataloader once, at the start of `train()`, from `trainer._get_train_sampler`;
swapping datasets or dataloaders from a callback afterwards has no effect. So `attach(trainer)` installs the
callback's own sampler as the trainer's train sampler (an instance-level override of `_get_train_sampler`, so no
trainer subclass is needed) and registers the callback for logging. The sampler yields, each epoch, exactly the
selected row indices of `trainer.train_dataset`; the collator, model and optimizer never see the other rows.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from datasets import Dataset
from torch.utils.data import Sampler
from transformers import TrainerCallback

from ..errors import ConfigError, DataError, MissingColumnError
from .selection import rank_select

if TYPE_CHECKING:  # pragma: no cover
    from transformers import Trainer, TrainerControl, TrainerState, TrainingArguments

    from .divergence import PDConfig
    from .scorers import AspectScorer

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class PDSelectionConfig:
    """What the callback selects and how it feeds it to the trainer.

    Args:
        ratio (`float`, *optional*, defaults to `0.3`):
            λ, share of the training pool trained on per epoch (the paper: 0.3 UltraFeedback, 0.5 HelpSteer).
        budget_schedule (`Sequence[float]`, *optional*):
            Per-epoch ratios overriding `ratio` (epoch e uses `budget_schedule[min(e, len - 1)]`), e.g.
            `[0.1, 0.2, 0.3]` to start from the strongest-consensus pairs and widen. Each epoch's rows are the
            top-ranked ones, so the subsets are nested. The trainer plans its step count (and LR schedule) for the
            largest epoch; smaller epochs end early.
        stratify_by_aspect (`bool`, *optional*, defaults to `False`):
            Keep each aspect's share instead of ranking globally (as in `select_by_pd`).
        pd_column (`str`, *optional*, defaults to `"pd"`):
            Column of `trainer.train_dataset` with PD, used when no scores are given explicitly.
        id_column (`str`, *optional*, defaults to `"pair_id"`):
            Column used to match explicitly given scores to rows (the trainer may drop rows while preprocessing).
        aspect_column (`str`, *optional*, defaults to `"aspect"`):
            Aspect labels, needed with `stratify_by_aspect`.
        shuffle (`bool`, *optional*, defaults to `True`):
            Shuffle the selected rows each epoch (seeded by `seed + epoch`); otherwise dataset order.
        round_to_steps (`bool`, *optional*, defaults to `True`):
            With a schedule, round each epoch's budget up to whole optimizer steps (next-ranked rows fill the
            gap), so no gradient accumulation window is left half-done at the end of a short epoch.
        seed (`int`, *optional*, defaults to `0`):
            Seed of tie-breaking and shuffling.
    """

    ratio: float = 0.3
    budget_schedule: Sequence[float] | None = None
    stratify_by_aspect: bool = False
    pd_column: str = "pd"
    id_column: str = "pair_id"
    aspect_column: str = "aspect"
    shuffle: bool = True
    round_to_steps: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        ratios = list(self.budget_schedule) if self.budget_schedule is not None else [self.ratio]
        if not ratios:
            raise ConfigError("budget_schedule must be None or a non-empty list of ratios.")
        for r in ratios:
            if not 0.0 < r <= 1.0:
                raise ConfigError(f"Budget ratios must be in (0, 1], got {r}.")

    def ratio_for_epoch(self, epoch: int) -> float:
        """The budget ratio of epoch `epoch` (0-based)."""
        if self.budget_schedule is None:
            return self.ratio
        schedule = list(self.budget_schedule)
        return schedule[min(epoch, len(schedule) - 1)]


class PDSampler(Sampler[int]):
    """Yields the selected row indices of one epoch; records what it yielded.

    Args:
        epoch_indices (`Sequence[np.ndarray]`):
            Selected (sorted) indices per epoch; the last entry repeats for later epochs.
        shuffle (`bool`, *optional*, defaults to `True`):
            Shuffle within the epoch (seed `seed + epoch`).
        seed (`int`, *optional*, defaults to `0`):
            Shuffle seed.
    """

    def __init__(self, epoch_indices: Sequence[np.ndarray], *, shuffle: bool = True, seed: int = 0):
        if not epoch_indices:
            raise ConfigError("PDSampler needs the selected indices of at least one epoch.")
        self._per_epoch = [np.asarray(x, dtype=np.int64) for x in epoch_indices]
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.history: dict[int, list[int]] = {}

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer (through accelerate) before each epoch."""
        self.epoch = int(epoch)

    def selected(self, epoch: int) -> np.ndarray:
        """The selected indices of `epoch`, sorted."""
        return self._per_epoch[min(epoch, len(self._per_epoch) - 1)]

    def order(self, epoch: int) -> np.ndarray:
        """The indices of `epoch` in the order they are yielded."""
        chosen = self.selected(epoch)
        if self.shuffle:
            return np.random.default_rng(self.seed + epoch).permutation(chosen)
        return chosen

    def __iter__(self):
        order = self.order(self.epoch)
        self.history[self.epoch] = order.tolist()
        return iter(order.tolist())

    def __len__(self) -> int:
        return int(max(len(x) for x in self._per_epoch))


class PDSelectionCallback(TrainerCallback):
    """Train a TRL trainer on the PD-selected subset only, optionally with a budget schedule, and log PD stats.

    PD scores come from (first match wins) `pd_scores` (a mapping `pair_id → PD`, a `Dataset` with id and PD
    columns, or a sequence aligned with the trainer's dataset), the `pd_column` of `trainer.train_dataset`, or
    `scorer` (PD computed on the trainer's dataset at attach time).

    Logged with every trainer log (`pd/` keys, also in `trainer.state.log_history`): the epoch's budget,
    the mean PD and conflict rate (share with PD > 0) of the epoch's selection and of the rows consumed since
    the previous log, and the pool's conflict rate.

    Args:
        config (`PDSelectionConfig`, *optional*):
            Budget, schedule, columns.
        pd_scores (`Mapping[str, float]` or `Dataset` or sequence, *optional*):
            Explicit PD scores.
        scorer (`AspectScorer`, *optional*):
            Computes PD when no scores are available.
        pd_config (`PDConfig`, *optional*):
            PD settings for `scorer`.

    Example:

    ```python
    >>> trainer = DPOTrainer(model=model, args=DPOConfig(...), train_dataset=compute_pd(pairs, scorer).dataset)
    >>> PDSelectionCallback(PDSelectionConfig(ratio=0.3)).attach(trainer)
    >>> trainer.train()   # trains on the 30 % most-consensual pairs only
    ```
    """

    def __init__(
        self,
        config: PDSelectionConfig | None = None,
        *,
        pd_scores: Mapping[str, float] | Dataset | Sequence[float] | np.ndarray | None = None,
        scorer: "AspectScorer | None" = None,
        pd_config: "PDConfig | None" = None,
    ):
        self.config = config or PDSelectionConfig()
        self.pd_scores = pd_scores
        self.scorer = scorer
        self.pd_config = pd_config
        self.sampler: PDSampler | None = None
        self.pd: np.ndarray | None = None
        self.pair_ids: list[str] | None = None
        self._trainer: Any = None
        self._dataset_len = 0
        self._aspects: np.ndarray | None = None
        self._epoch_start_step = 0
        self._epochs_begun = 0
        self._logged_rows = 0

    # ---- wiring -------------------------------------------------------------------------------------------------

    def attach(self, trainer: "Trainer") -> "PDSelectionCallback":
        """Install the PD sampler as `trainer`'s train sampler and register this callback (first, so the PD stats
        reach the reporters). Call after constructing the trainer and before `trainer.train()`.

        Raises:
            [`DataError`]: the trainer has no sized `datasets.Dataset`, or PD scores are missing or unmatched.
        """
        dataset = getattr(trainer, "train_dataset", None)
        if not isinstance(dataset, Dataset):
            raise DataError(
                "PDSelectionCallback needs `trainer.train_dataset` to be a `datasets.Dataset` (a map-style dataset "
                f"the sampler can index), got {type(dataset).__name__}."
            )
        self.pd = self._resolve_pd(dataset)
        self._dataset_len = len(dataset)
        self.pair_ids = list(dataset[self.config.id_column]) if self.config.id_column in dataset.column_names else None
        if self.config.stratify_by_aspect:
            if self.config.aspect_column not in dataset.column_names:
                raise MissingColumnError(self.config.aspect_column, dataset.column_names, option="aspect_column")
            self._aspects = np.asarray(dataset[self.config.aspect_column], dtype=object)
        trainer._get_train_sampler = self._train_sampler  # instance override: Trainer calls it when building the loader
        handler = trainer.callback_handler
        handler.callbacks = [cb for cb in handler.callbacks if cb is not self]
        handler.callbacks.insert(0, self)
        self._trainer = trainer
        return self

    def _resolve_pd(self, dataset: Dataset) -> np.ndarray:
        cfg = self.config
        scores = self.pd_scores
        if isinstance(scores, Dataset):
            for option, column in (("id_column", cfg.id_column), ("pd_column", cfg.pd_column)):
                if column not in scores.column_names:
                    raise MissingColumnError(column, scores.column_names, option=option)
            scores = dict(zip(scores[cfg.id_column], scores[cfg.pd_column]))
        if isinstance(scores, Mapping):
            if cfg.id_column not in dataset.column_names:
                raise DataError(
                    f"PD scores are keyed by id but the trainer's dataset has no {cfg.id_column!r} column. Keep the id "
                    "column in the training data (TRL keeps extra columns while preprocessing) or pass `id_column=`."
                )
            ids = dataset[cfg.id_column]
            missing = [i for i in ids if i not in scores]
            if missing:
                raise DataError(
                    f"{len(missing)} training rows have no PD score (e.g. {missing[:3]}). "
                    "Score the same pairs you train on."
                )
            return np.array([scores[i] for i in ids], dtype=np.float64)
        if scores is not None:
            values = np.asarray(scores, dtype=np.float64)
            if values.shape != (len(dataset),):
                raise DataError(
                    f"Got {values.shape[0] if values.ndim else 0} PD scores for {len(dataset)} training rows; "
                    "the trainer may have dropped rows while preprocessing. Pass scores keyed by pair id instead."
                )
            return values
        if cfg.pd_column in dataset.column_names:
            return np.array([np.nan if v is None else v for v in dataset[cfg.pd_column]], dtype=np.float64)
        if self.scorer is not None:
            from .divergence import compute_pd

            return np.asarray(compute_pd(dataset, self.scorer, self.pd_config).dataset["pd"], dtype=np.float64)
        raise DataError(
            f"No PD scores: the trainer's dataset has no {cfg.pd_column!r} column and neither `pd_scores` nor `scorer` "
            "was given. Train on `compute_pd(pairs, scorer).dataset`, or pass scores or a scorer."
        )

    def _effective_batch(self, args: "TrainingArguments") -> int:
        per_device = getattr(self._trainer, "_train_batch_size", None) or args.per_device_train_batch_size
        return int(per_device) * int(args.gradient_accumulation_steps) * max(1, int(args.world_size))

    def _budget(self, epoch: int, args: "TrainingArguments") -> int:
        n = self._dataset_len
        count = int(round(self.config.ratio_for_epoch(epoch) * n))
        if self.config.budget_schedule is not None and self.config.round_to_steps:
            step = self._effective_batch(args)
            count = min(n, int(math.ceil(count / step) * step))
        return max(count, 1) if n else 0

    def _train_sampler(self, train_dataset: Any = None) -> PDSampler:
        trainer = self._trainer
        dataset = train_dataset if train_dataset is not None else trainer.train_dataset
        if len(dataset) != self._dataset_len:
            raise DataError(
                f"The trainer's training set changed size after attach ({self._dataset_len} -> {len(dataset)} rows). "
                "Call `attach` again after changing `trainer.train_dataset`."
            )
        args = trainer.args
        schedule = self.config.budget_schedule
        n_epochs = len(schedule) if schedule is not None else 1
        per_epoch = []
        for epoch in range(n_epochs):
            per_epoch.append(
                rank_select(self.pd, self._budget(epoch, args), groups=self._aspects, seed=self.config.seed)
            )
        self.sampler = PDSampler(per_epoch, shuffle=self.config.shuffle, seed=self.config.seed)
        return self.sampler

    # ---- what was selected / consumed ---------------------------------------------------------------------------

    def selected_indices(self, epoch: int = 0) -> np.ndarray:
        """Sorted row indices (into `trainer.train_dataset`) selected for `epoch`."""
        if self.sampler is None:
            raise ConfigError("Nothing selected yet: the sampler is built when `trainer.train()` starts.")
        return self.sampler.selected(epoch)

    def selected_ids(self, epoch: int = 0) -> list[str]:
        """Pair ids selected for `epoch` (needs the id column)."""
        if self.pair_ids is None:
            raise ConfigError(f"The training set has no {self.config.id_column!r} column.")
        return [self.pair_ids[i] for i in self.selected_indices(epoch)]

    # ---- callback events ----------------------------------------------------------------------------------------

    def on_train_begin(
        self, args: "TrainingArguments", state: "TrainerState", control: "TrainerControl", **kwargs: Any
    ) -> None:
        if self._trainer is None or self.sampler is None:
            raise ConfigError(
                "PDSelectionCallback is registered but not attached: call `callback.attach(trainer)` before "
                "`trainer.train()`, otherwise the trainer would train on every row."
            )
        logger.info(
            "PD selection: %d of %d rows per epoch (pool conflict rate %.3f).",
            len(self.sampler.selected(0)), self._dataset_len, float((self.pd > 0).mean()),
        )

    def on_epoch_begin(
        self, args: "TrainingArguments", state: "TrainerState", control: "TrainerControl", **kwargs: Any
    ) -> None:
        self._epoch_start_step = state.global_step
        self._logged_rows = 0
        if self.sampler is not None:
            self.sampler.set_epoch(self._epochs_begun)
        self._epochs_begun += 1

    def on_log(
        self,
        args: "TrainingArguments",
        state: "TrainerState",
        control: "TrainerControl",
        logs: dict | None = None,
        **kwargs: Any,
    ) -> None:
        if self.sampler is None or logs is None or self.pd is None:
            return
        epoch = self.sampler.epoch
        order = self.sampler.history.get(epoch)
        if order is None:
            order = self.sampler.order(epoch).tolist()
        consumed = min(len(order), (state.global_step - self._epoch_start_step) * self._effective_batch(args))
        window = np.asarray(order[self._logged_rows : consumed], dtype=np.int64)
        selected = self.sampler.selected(epoch)
        stats = {
            "pd/epoch_budget": float(len(selected)),
            "pd/selected_mean": float(np.nanmean(self.pd[selected])) if len(selected) else float("nan"),
            "pd/selected_conflict_rate": float((self.pd[selected] > 0).mean()) if len(selected) else float("nan"),
            "pd/pool_conflict_rate": float((self.pd > 0).mean()),
        }
        if len(window):
            stats["pd/batch_mean"] = float(np.nanmean(self.pd[window]))
            stats["pd/batch_conflict_rate"] = float((self.pd[window] > 0).mean())
            self._logged_rows = consumed
        logs.update(stats)
        # `Trainer.log` appended a copy of the logs to the history just before calling us; keep them in sync.
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(stats)
