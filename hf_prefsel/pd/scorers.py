"""Where per-aspect reward gaps come from: ratings in the data, reward models (trained proxies or existing), or any
other source implementing `AspectScorer` (an LLM judge through `hf_prefsel.llm` will plug in here).

A scorer answers one question: for these pairs and this aspect k', what is the pseudo-reward gap
`Δr̂_k'(z) = r̂_k'(x, y_w) − r̂_k'(x, y_l)`? `NaN` means "no evidence" (e.g. a missing rating); PD then counts that
aspect as contributing nothing for that pair.
"""

from __future__ import annotations

import abc
import dataclasses
import os
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from ..errors import ConfigError, DataError, DependencyError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclasses.dataclass(frozen=True)
class PairBatch:
    """A batch of pairs in the internal form, as plain lists (what a scorer receives).

    Args:
        pair_id, prompt, chosen, rejected, aspect (`list[str]`):
            The pair columns.
        chosen_ratings, rejected_ratings (`list[dict]`, *optional*):
            Per-response `{rating key: value or None}`, when the data carries ratings.
    """

    pair_id: list[str]
    prompt: list[str]
    chosen: list[str]
    rejected: list[str]
    aspect: list[str]
    chosen_ratings: list[dict] | None = None
    rejected_ratings: list[dict] | None = None

    def __len__(self) -> int:
        return len(self.pair_id)

    @classmethod
    def from_batch(cls, batch: Mapping[str, list]) -> "PairBatch":
        """Build from a `Dataset` batch (a dict of columns), e.g. `ds[i:j]`."""
        n = len(batch["prompt"])
        return cls(
            pair_id=list(batch.get("pair_id") or [str(i) for i in range(n)]),
            prompt=list(batch["prompt"]),
            chosen=list(batch["chosen"]),
            rejected=list(batch["rejected"]),
            aspect=list(batch.get("aspect") or [""] * n),
            chosen_ratings=list(batch["chosen_ratings"]) if "chosen_ratings" in batch else None,
            rejected_ratings=list(batch["rejected_ratings"]) if "rejected_ratings" in batch else None,
        )


@runtime_checkable
class AspectScorer(Protocol):
    """Anything that gives per-aspect reward gaps for pairs.

    Implement `reward_gaps`; set `aspects` to the aspects you can score (`None`: any aspect name). A scorer that
    rates responses one at a time can subclass `ResponseScorer` and implement `score_responses` instead.

    A scorer whose gaps are already in the data (ratings, precomputed reward scores) may also define
    `dataset_gaps(pairs: Dataset, aspect: str) -> np.ndarray | None`, the gaps of all pairs at once (`None`: use
    `reward_gaps`). `score_gaps` prefers it: building a `PairBatch` means converting every row to Python objects,
    which at a million pairs costs minutes, while a columnar read costs milliseconds.
    """

    aspects: Sequence[str] | None

    def reward_gaps(self, pairs: PairBatch, aspect: str) -> np.ndarray:
        """`Δr̂_aspect` for each pair (chosen minus rejected), shape `(len(pairs),)`, `NaN` where unknown."""
        ...


class ResponseScorer(abc.ABC):
    """Base class for pointwise scorers: gaps are `score(x, y_w) − score(x, y_l)`.

    Subclasses implement `score_responses`; chosen and rejected are scored in one call so batching covers both.
    """

    aspects: Sequence[str] | None = None

    @abc.abstractmethod
    def score_responses(self, prompts: Sequence[str], responses: Sequence[str], aspect: str) -> np.ndarray:
        """Score each (prompt, response) for `aspect`; shape `(len(responses),)`, `NaN` where unknown."""

    def reward_gaps(self, pairs: PairBatch, aspect: str) -> np.ndarray:
        n = len(pairs)
        scores = np.asarray(
            self.score_responses(list(pairs.prompt) * 2, list(pairs.chosen) + list(pairs.rejected), aspect),
            dtype=np.float64,
        )
        if scores.shape != (2 * n,):
            raise DataError(
                f"{type(self).__name__}.score_responses returned shape {scores.shape}, expected {(2 * n,)}: "
                "one score per (prompt, response)."
            )
        return scores[:n] - scores[n:]


class RatingsScorer:
    """Gaps from the ratings stored with each pair: the paper's PD(rati.) variant, no model needed.

    Args:
        lower_is_better (`Sequence[str]`, *optional*):
            Rating keys where smaller is better (their gaps are negated). Defaults to keys starting with
            `n_errors` / `n_missing`, as in `AspectSplitConfig`.
        aspects (`Sequence[str]`, *optional*):
            Restrict to these rating keys; `None` scores any key present.

    Example:

    ```python
    >>> result = compute_pd(pairs, RatingsScorer())
    ```
    """

    def __init__(self, lower_is_better: Sequence[str] | None = None, aspects: Sequence[str] | None = None):
        self.lower_is_better = None if lower_is_better is None else set(lower_is_better)
        self.aspects = None if aspects is None else list(aspects)

    def _sign(self, aspect: str) -> float:
        if self.lower_is_better is not None:
            return -1.0 if aspect in self.lower_is_better else 1.0
        return -1.0 if aspect.startswith(("n_errors", "n_missing")) else 1.0

    def dataset_gaps(self, pairs: "Dataset", aspect: str) -> np.ndarray | None:
        """Gaps of every pair at once, read from the Arrow rating structs (no per-row Python work).

        Returns `None` (so `score_gaps` falls back to `reward_gaps` batches) when the ratings are not struct
        columns of numbers, e.g. ratings stored as JSON strings.
        """
        import pyarrow as pa

        from .schema import struct_field_floats

        if "chosen_ratings" not in pairs.column_names or "rejected_ratings" not in pairs.column_names:
            raise DataError(
                "RatingsScorer needs `chosen_ratings` and `rejected_ratings` columns; build the pairs with an adapter "
                "that keeps ratings, or use a reward-model scorer."
            )
        try:
            chosen = struct_field_floats(pairs, "chosen_ratings", aspect)
            rejected = struct_field_floats(pairs, "rejected_ratings", aspect)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # non-numeric fields: the row path reports them
            return None
        if chosen is None or rejected is None:
            return None
        return self._sign(aspect) * (chosen - rejected)

    def reward_gaps(self, pairs: PairBatch, aspect: str) -> np.ndarray:
        if pairs.chosen_ratings is None or pairs.rejected_ratings is None:
            raise DataError(
                "RatingsScorer needs `chosen_ratings` and `rejected_ratings` columns; build the pairs with an adapter "
                "that keeps ratings, or use a reward-model scorer."
            )
        out = np.full(len(pairs), np.nan)
        for i, (cr, rr) in enumerate(zip(pairs.chosen_ratings, pairs.rejected_ratings)):
            a = (cr or {}).get(aspect)
            b = (rr or {}).get(aspect)
            if a is not None and b is not None:
                out[i] = float(a) - float(b)
        return self._sign(aspect) * out


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise DependencyError("transformers", "train", "Scoring with a reward model") from err


def load_reward_model(path: str | os.PathLike, **kwargs: Any) -> "PreTrainedModel":
    """Load a sequence-classification reward model from a folder or Hub id, or a LoRA adapter folder over one."""
    _require_torch()
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, "adapter_config.json")):
        try:
            from peft import AutoPeftModelForSequenceClassification
        except ImportError as err:  # pragma: no cover
            raise DependencyError("peft", "train", "Loading a LoRA reward model") from err
        return AutoPeftModelForSequenceClassification.from_pretrained(path, **kwargs)
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path, **kwargs)


class RewardModelScorer(ResponseScorer):
    """Per-aspect scores from sequence-classification reward models (our trained proxies or existing ones).

    Either one model per aspect (`models={"helpfulness": m1, "honesty": m2}`), or one multi-output model with
    `output_index={"helpfulness": 0, "honesty": 3}` naming the logit of each aspect. Texts are built the way
    TRL's `RewardTrainer` builds non-conversational examples (`prompt + separator + response + eos`), or with the
    tokenizer's chat template when `use_chat_template=True`.

    Args:
        models (`Mapping[str, PreTrainedModel | str]` or `PreTrainedModel` or `str`):
            Aspect → model (or path), or a single model (path) used for every aspect.
        tokenizer (`PreTrainedTokenizerBase`, *optional*):
            Defaults to the tokenizer saved with the (first) model path.
        output_index (`Mapping[str, int]`, *optional*):
            Logit index per aspect for a multi-output model; index 0 otherwise.
        separator (`str`, *optional*, defaults to `"\\n\\n"`):
            Put between prompt and response in plain-text mode; must match what the model was trained with.
        use_chat_template (`bool`, *optional*, defaults to `False`):
            Render `[user: prompt, assistant: response]` with the tokenizer's chat template instead.
        append_eos (`bool`, *optional*, defaults to `True`):
            Append the EOS token in plain-text mode (TRL's `RewardTrainer` does).
        batch_size (`int`, *optional*, defaults to `8`):
            Sequences per forward pass.
        max_length (`int`, *optional*, defaults to `1024`):
            Longer sequences keep their last `max_length` tokens, so the scored final token is kept.
        device (`str`, *optional*):
            Defaults to the model's device.
    """

    def __init__(
        self,
        models: "Mapping[str, PreTrainedModel | str] | PreTrainedModel | str",
        tokenizer: "PreTrainedTokenizerBase | None" = None,
        *,
        output_index: Mapping[str, int] | None = None,
        separator: str = "\n\n",
        use_chat_template: bool = False,
        append_eos: bool = True,
        batch_size: int = 8,
        max_length: int = 1024,
        device: str | None = None,
    ):
        _require_torch()
        if batch_size < 1 or max_length < 2:
            raise ConfigError("batch_size must be >= 1 and max_length >= 2.")
        self._per_aspect = isinstance(models, Mapping)
        self._models: dict[str, Any] = dict(models) if isinstance(models, Mapping) else {"*": models}
        self.output_index = dict(output_index or {})
        if self._per_aspect:
            self.aspects = list(self._models)
        elif self.output_index:
            self.aspects = list(self.output_index)
        else:
            self.aspects = None
        self.separator = separator
        self.use_chat_template = use_chat_template
        self.append_eos = append_eos
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self._loaded: dict[str, Any] = {}
        if tokenizer is None:
            first = next(iter(self._models.values()))
            if not isinstance(first, (str, os.PathLike)):
                raise ConfigError("Pass `tokenizer=` when the reward models are given as objects, not paths.")
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(os.fspath(first))
        self.tokenizer = tokenizer
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def _model_for(self, aspect: str) -> Any:
        key = aspect if self._per_aspect else "*"
        if key not in self._models:
            raise ConfigError(
                f"No reward model for aspect {aspect!r}; this scorer has {sorted(self._models)}. "
                "Add a model for it, or restrict PD to the scored aspects with `PDConfig(aspects=...)`."
            )
        if key not in self._loaded:
            model = self._models[key]
            if isinstance(model, (str, os.PathLike)):
                model = load_reward_model(model)
            model.eval()
            if self.device is not None:
                model.to(self.device)
            if getattr(model.config, "pad_token_id", None) is None:
                model.config.pad_token_id = self.tokenizer.pad_token_id
            self._loaded[key] = model
        return self._loaded[key]

    def texts_to_ids(self, prompts: Sequence[str], responses: Sequence[str]) -> list[list[int]]:
        """Token ids of each (prompt, response) exactly as they are scored (exposed for tests and debugging)."""
        tok = self.tokenizer
        ids: list[list[int]] = []
        for prompt, response in zip(prompts, responses):
            if self.use_chat_template:
                messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
                out = tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
            else:
                text = f"{prompt}{self.separator}{response}"
                if self.append_eos and tok.eos_token and not text.endswith(tok.eos_token):
                    text += tok.eos_token
                out = tok(text)["input_ids"]
            ids.append(list(out)[-self.max_length :])
        return ids

    def score_responses(self, prompts: Sequence[str], responses: Sequence[str], aspect: str) -> np.ndarray:
        import torch

        model = self._model_for(aspect)
        column = self.output_index.get(aspect, 0)
        ids = self.texts_to_ids(prompts, responses)
        order = np.argsort([len(x) for x in ids], kind="stable")
        scores = np.empty(len(ids), dtype=np.float64)
        device = self.device or next(model.parameters()).device
        pad = self.tokenizer.pad_token_id
        with torch.no_grad():
            for start in range(0, len(ids), self.batch_size):
                chunk = order[start : start + self.batch_size]
                width = max(len(ids[i]) for i in chunk)
                input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, i in enumerate(chunk):
                    input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                    mask[row, : len(ids[i])] = 1
                logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
                scores[chunk] = logits[:, column].float().cpu().numpy()
        return scores
