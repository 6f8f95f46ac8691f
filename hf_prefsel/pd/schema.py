"""The one internal pairwise form every PD stage reads, and the bad-row report every adapter returns."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, Features, Value

from ..errors import ConfigError, DataError, MissingColumnError

# Columns of the internal pairwise form, in order. Each row is one pair labelled for exactly one aspect.
PAIR_COLUMNS: tuple[str, ...] = (
    "pair_id",
    "prompt_id",
    "prompt",
    "chosen",
    "rejected",
    "aspect",
    "chosen_ratings",
    "rejected_ratings",
    "source",
)

BAD_ROW_REASONS: dict[str, str] = {
    "empty_prompt": "the prompt is empty or not a string; the whole prompt group is skipped",
    "empty_response": "a response text is empty or not a string; that response is skipped",
    "non_numeric_rating": "a rating is not a number (e.g. 'N/A'); it is treated as missing",
    "fewer_than_two_responses": "fewer than two usable responses remain for the prompt, so no pair exists",
    "missing_rating": "no aspect has a rating on both responses of the pair (or on two responses of the prompt)",
    "tie": "every aspect with ratings on both sides rates the two responses the same (or the label says tie)",
    "identical_responses": "chosen and rejected are the same text",
    "missing_aspect": "a pairwise row has no aspect label",
    "unknown_winner": "a pairwise preference label is not one of the accepted values",
}


def pair_features(rating_keys: Sequence[str]) -> Features:
    """`datasets.Features` of the internal pairwise form for the given rating keys.

    Ratings are stored raw (as in the source, e.g. error counts stay counts) in a struct with one float field per
    rating key found anywhere in the input, `None` where a response has no such rating. Fixing the struct up front
    keeps the Arrow schema identical across files and shards, so pair sets from different sources concatenate.
    """
    ratings = {key: Value("float64") for key in rating_keys}
    return Features(
        {
            "pair_id": Value("string"),
            "prompt_id": Value("string"),
            "prompt": Value("string"),
            "chosen": Value("string"),
            "rejected": Value("string"),
            "aspect": Value("string"),
            "chosen_ratings": ratings if ratings else {"_none": Value("float64")},
            "rejected_ratings": ratings if ratings else {"_none": Value("float64")},
            "source": Value("string"),
        }
    )


def rating_keys_of(pairs: Dataset) -> list[str]:
    """The rating keys (struct fields) stored in a pair dataset, `[]` if it carries no ratings."""
    feature = pairs.features.get("chosen_ratings")
    if feature is None or not isinstance(feature, dict):
        return []
    return [key for key in feature if key != "_none"]


def check_pairs(pairs: Dataset, *, need_ratings: bool = False) -> None:
    """Raise a `DataError` naming what to do if `pairs` is not in the internal pairwise form."""
    if not isinstance(pairs, Dataset):
        raise DataError(
            f"Expected a `datasets.Dataset` of pairs, got {type(pairs).__name__}. Build one with an adapter from "
            "`hf_prefsel.pd` (e.g. `from_multi_response`, `from_ultrafeedback`, `from_pairwise`)."
        )
    for column in ("pair_id", "prompt", "chosen", "rejected", "aspect"):
        if column not in pairs.column_names:
            raise MissingColumnError(column, pairs.column_names)
    if need_ratings:
        for column in ("chosen_ratings", "rejected_ratings"):
            if column not in pairs.column_names:
                raise MissingColumnError(column, pairs.column_names)


def arrow_column(ds: Dataset, name: str) -> pa.ChunkedArray:
    """Column `name` as Arrow, with any `select`/`shuffle` indices applied.

    Reading columns through Arrow costs no Python work per row; `ds[name]` converts every value to a Python object,
    which dominates the run time at a million pairs.
    """
    if name not in ds.column_names:
        raise MissingColumnError(name, ds.column_names)
    return ds.with_format("arrow")[name]


def float_column(ds: Dataset, name: str) -> np.ndarray:
    """A numeric column as `float64`, `None` → `NaN`."""
    column = arrow_column(ds, name)
    if len(column) == 0:
        return np.zeros(0, dtype=np.float64)
    return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def string_column(ds: Dataset, name: str) -> np.ndarray:
    """A string column as an object array (labels such as `aspect`)."""
    column = arrow_column(ds, name)
    if len(column) == 0:
        return np.zeros(0, dtype=object)
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def label_codes(ds: Dataset, name: str, names: Sequence[str]) -> np.ndarray:
    """Position of each row's label of column `name` in `names` (`-1` for other labels), via Arrow dictionary
    encoding: a handful of comparisons per distinct label instead of one Python comparison per row."""
    column = arrow_column(ds, name)
    if len(column) == 0:
        return np.zeros(0, dtype=np.int64)
    encoded = pc.dictionary_encode(column).combine_chunks()
    lookup = {label: j for j, label in enumerate(names)}
    mapping = np.array([lookup.get(v, -1) for v in encoded.dictionary.to_pylist()] + [-1], dtype=np.int64)
    indices = encoded.indices.fill_null(len(mapping) - 1).to_numpy(zero_copy_only=False)
    return mapping[indices]


def distinct_strings(ds: Dataset, name: str) -> list[str]:
    """Sorted distinct non-null values of a string column."""
    column = arrow_column(ds, name)
    return sorted(v for v in pc.unique(column).to_pylist() if v is not None)


def struct_field_floats(ds: Dataset, column: str, field: str) -> np.ndarray | None:
    """Field `field` of a struct column (e.g. one rating of `chosen_ratings`) as `float64`, `NaN` where the field or
    the whole struct is null, all `NaN` if the struct has no such field; `None` if `column` is not a struct.
    """
    values = arrow_column(ds, column)
    if not pa.types.is_struct(values.type):
        return None
    if values.type.get_field_index(field) < 0:
        return np.full(len(values), np.nan)
    if len(values) == 0:
        return np.zeros(0, dtype=np.float64)
    # `pc.struct_field` (unlike `StructArray.field`) keeps the struct's own nulls: a response without ratings.
    out = pc.cast(pc.struct_field(values, field), pa.float64())
    return np.asarray(out.to_numpy(zero_copy_only=False), dtype=np.float64)


@dataclasses.dataclass
class BadRowReport:
    """Everything an adapter skipped, by reason, with the ids involved, so nothing disappears silently.

    Args:
        counts (`Counter[str]`):
            Number of skipped items per reason (see `BAD_ROW_REASONS`). Items are prompts, responses or pair
            candidates depending on the reason; the reason's description says which.
        ids (`dict[str, list[str]]`):
            The ids of the skipped items per reason (prompt ids, `"<prompt_id>#<response index>"` for responses,
            `"<prompt_id>#<i>-<j>"` for pair candidates), in input order.
        rows_in (`int`):
            Input rows read.
        pairs_out (`int`):
            Pairs produced.
    """

    counts: Counter = dataclasses.field(default_factory=Counter)
    ids: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    rows_in: int = 0
    pairs_out: int = 0

    def add(self, reason: str, item_id: str) -> None:
        """Count one skipped item under `reason`."""
        if reason not in BAD_ROW_REASONS:
            raise ConfigError(f"Unknown bad-row reason {reason!r}; use one of {sorted(BAD_ROW_REASONS)}.")
        self.counts[reason] += 1
        self.ids.setdefault(reason, []).append(item_id)

    def merge(self, other: "BadRowReport") -> "BadRowReport":
        """A new report adding up `self` and `other` (e.g. one per input file)."""
        ids = {k: list(v) for k, v in self.ids.items()}
        out = BadRowReport(Counter(self.counts), ids, self.rows_in, self.pairs_out)
        out.counts.update(other.counts)
        for reason, ids in other.ids.items():
            out.ids.setdefault(reason, []).extend(ids)
        out.rows_in += other.rows_in
        out.pairs_out += other.pairs_out
        return out

    @property
    def total(self) -> int:
        """Total number of skipped items, all reasons."""
        return sum(self.counts.values())

    def summary(self) -> str:
        """A few human-readable lines: rows in, pairs out, one line per reason with its count."""
        lines = [f"rows in: {self.rows_in}, pairs out: {self.pairs_out}, skipped items: {self.total}"]
        for reason in BAD_ROW_REASONS:
            if self.counts.get(reason):
                lines.append(f"  {reason}: {self.counts[reason]} ({BAD_ROW_REASONS[reason]})")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-safe form (counts only, ids left out), for dataset cards and logs."""
        return {"rows_in": self.rows_in, "pairs_out": self.pairs_out, "skipped": dict(self.counts)}


@dataclasses.dataclass
class PairSet:
    """What an adapter returns: the pairs and the report of what was skipped.

    Args:
        pairs (`datasets.Dataset`):
            The internal pairwise form (columns `PAIR_COLUMNS`), one aspect label per pair.
        bad_rows (`BadRowReport`):
            The skipped items, by reason.
    """

    pairs: Dataset
    bad_rows: BadRowReport

    @property
    def aspects(self) -> list[str]:
        """Aspect labels present in the pairs, sorted."""
        return sorted(set(self.pairs["aspect"])) if len(self.pairs) else []

    def pairs_per_aspect(self) -> dict[str, int]:
        """Number of pairs in each D_k."""
        return dict(sorted(Counter(self.pairs["aspect"]).items()))


def rows_to_pairs(rows: Iterable[Mapping], rating_keys: Sequence[str]) -> Dataset:
    """Build the pair dataset from python dicts, with the fixed schema of `pair_features`."""
    keys = list(rating_keys)
    columns: dict[str, list] = {name: [] for name in PAIR_COLUMNS}
    for row in rows:
        for name in PAIR_COLUMNS:
            if name in ("chosen_ratings", "rejected_ratings"):
                ratings = row.get(name) or {}
                columns[name].append({k: ratings.get(k) for k in keys} if keys else {"_none": None})
            else:
                columns[name].append(row.get(name))
    return Dataset.from_dict(columns, features=pair_features(keys))
