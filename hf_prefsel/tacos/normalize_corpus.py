"""The tagged corpus as integer arrays, group arithmetic over it, and the two counting steps (frequency, rules).

Normalization is a sequence of maps raw tag id -> group id (-1 = dropped). Keeping the corpus as one entry per
distinct (sample, raw tag) pair, with how many times the row lists that tag, lets every count (samples or
occurrences) be a `bincount`, so fitting 1M tag occurrences takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

import numpy as np

from ..errors import DataError, MissingColumnError
from .normalize_rules import is_blank


@dataclass
class Corpus:
    """The fitted corpus: one entry per distinct (sample, raw tag) pair.

    Args:
        raw: raw id -> string.
        sample, raw_id (`np.ndarray` of int64): the pair's sample index and raw id, sorted by sample then raw id.
        repeats (`np.ndarray` of int64): how many times the sample lists that raw tag (>= 1).
        n_samples: rows in the corpus, untagged ones included.
        counts: what `raw_counts` and [`group_counts`] count: samples holding a tag, or its occurrences.
    """

    raw: list[str]
    sample: np.ndarray
    raw_id: np.ndarray
    repeats: np.ndarray
    n_samples: int
    counts: Literal["samples", "occurrences"] = "samples"
    raw_counts: np.ndarray = field(init=False)
    raw_rank: np.ndarray = field(init=False)  # lexicographic rank of each raw string, for deterministic ties

    def __post_init__(self) -> None:
        weights = self.repeats if self.counts == "occurrences" else None
        self.raw_counts = np.bincount(self.raw_id, weights=weights, minlength=len(self.raw)).astype(np.int64)
        order = np.argsort(np.asarray(self.raw, dtype=object), kind="stable")
        self.raw_rank = np.empty(len(self.raw), dtype=np.int64)
        self.raw_rank[order] = np.arange(len(self.raw))


def read_corpus(data: Any, column: str, counts: Literal["samples", "occurrences"] = "samples", *,
                option: str | None = None) -> Corpus:
    """A `Dataset` column, or a list of tag lists, as a [`Corpus`].

    `option` is the config field that named `column` (`"tags_column"`), for the missing-column message.

    Raises:
        [`MissingColumnError`]: the dataset has no `column`.
        [`DataError`]: a row's tags are not a list of strings.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        from datasets import Dataset
    except ImportError:  # pragma: no cover - core dependency
        Dataset = ()  # type: ignore[assignment,misc]
    if isinstance(data, Dataset):
        if column not in data.column_names:
            raise MissingColumnError(column, data.column_names, option=option)
        arr = data.with_format("arrow")[column]
    else:
        if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
            raise DataError(
                f"TagNormalizer.fit expects a datasets.Dataset or a list of tag lists, got {type(data).__name__}."
            )
        rows = list(data)
        for i, row in enumerate(rows):
            if isinstance(row, str):
                raise DataError(
                    f"Row {i} of the tag lists is a string ({row[:40]!r}); each row must be a list of tags, "
                    "e.g. [['math', 'reasoning'], ['coding']]."
                )
        try:
            arr = pa.array(rows, type=pa.list_(pa.string()))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(
                f"Tags must be lists of strings (tag names only, explanations elsewhere): {exc}. Extract the "
                "names first, e.g. [t['tag'] for t in row]."
            ) from exc
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_null(arr.type) or (
        (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)) and pa.types.is_null(arr.type.value_type)
    ):
        arr = arr.cast(pa.list_(pa.string()))  # every row is None or [] (e.g. all tagging failed)
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)) or not (
        pa.types.is_string(arr.type.value_type) or pa.types.is_large_string(arr.type.value_type)
    ):
        raise DataError(
            f"Column {column!r} has type {arr.type}; expected a list of strings (tag names only). If it holds "
            "[{'tag', 'explanation'}] records, map it to names first."
        )
    n = len(arr)
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(arr)
    sample = np.repeat(np.arange(n, dtype=np.int64), lengths)
    if flat.null_count:
        valid = flat.is_valid().to_numpy(zero_copy_only=False)
        flat = flat.filter(pa.array(valid))
        sample = sample[valid]
    encoded = pc.dictionary_encode(flat)
    raw = encoded.dictionary.to_pylist()
    raw_id = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    width = max(len(raw), 1)
    pairs, repeats = unique_counts(sample * width + raw_id)
    return Corpus(raw=raw, sample=pairs // width, raw_id=pairs % width, repeats=repeats, n_samples=n, counts=counts)


# ---------------------------------------------------------------------------------------------------- group arithmetic


def unique_int(x: np.ndarray) -> np.ndarray:
    """Sorted unique values of an integer array (numpy 2.4's hash-based `np.unique` is ~50x slower here)."""
    return unique_counts(x)[0]


def unique_counts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique values of an integer array and how often each occurs."""
    if not len(x):
        return x.astype(np.int64), np.zeros(0, dtype=np.int64)
    s = np.sort(x)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    return s[starts], np.diff(np.r_[starts, len(s)]).astype(np.int64)


def compact(group: np.ndarray) -> np.ndarray:
    """Renumber group ids to 0..G-1 in order of first appearance (by raw id), keeping -1."""
    out = np.full_like(group, -1)
    valid = group >= 0
    if valid.any():
        _, first, inverse = np.unique(group[valid], return_index=True, return_inverse=True)
        order = np.argsort(np.argsort(first, kind="stable"), kind="stable")
        out[valid] = order[inverse.reshape(-1)]
    return out


def n_groups(group: np.ndarray) -> int:
    return int(group.max()) + 1 if len(group) and group.max() >= 0 else 0


def apply_merge(group: np.ndarray, merged: np.ndarray) -> np.ndarray:
    """Compose raw -> group with group -> merged group, keeping -1."""
    out = group.copy()
    valid = out >= 0
    out[valid] = merged[out[valid]]
    return out


def group_counts(corpus: Corpus, group: np.ndarray) -> np.ndarray:
    """Each group's count in `corpus.counts` units.

    Samples: a sample holding two spellings of a group counts once. Occurrences: every listing of every member.
    """
    size = n_groups(group)
    if not size or not len(corpus.sample):
        return np.zeros(size, dtype=np.int64)
    g = group[corpus.raw_id]
    keep = g >= 0
    if corpus.counts == "occurrences":
        return np.bincount(g[keep], weights=corpus.repeats[keep], minlength=size).astype(np.int64)
    pairs = unique_int(corpus.sample[keep] * size + g[keep])
    return np.bincount(pairs % size, minlength=size).astype(np.int64)


def representatives(corpus: Corpus, group: np.ndarray) -> np.ndarray:
    """Raw id naming each group: its most frequent raw spelling (ties: lexicographically first)."""
    size = n_groups(group)
    members = np.flatnonzero(group >= 0)
    if not size:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((corpus.raw_rank[members], -corpus.raw_counts[members], group[members]))
    sorted_members = members[order]
    sorted_groups = group[sorted_members]
    first = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    return sorted_members[first]


# ---------------------------------------------------------------------------------------------------- counting steps


def frequency_filter(corpus: Corpus, group: np.ndarray, alpha: int) -> np.ndarray:
    """InsTag step 1: drop the groups counted fewer than `alpha` times."""
    keep = group_counts(corpus, group) >= alpha
    out = group.copy()
    valid = out >= 0
    out[valid] = np.where(keep[out[valid]], out[valid], -1)
    return out


def rule_groups(corpus: Corpus, group: np.ndarray, key: Callable[[str], str], keep_blank: bool) -> np.ndarray:
    """InsTag step 2: one group per rule key among the kept raw tags; blank keys dropped unless `keep_blank`."""
    keys: dict[str, int] = {}
    out = np.full_like(group, -1)
    for raw_id in np.flatnonzero(group >= 0).tolist():
        k = key(corpus.raw[raw_id])
        if keep_blank or not is_blank(k):
            out[raw_id] = keys.setdefault(k, len(keys))
    return out


__all__ = [
    "Corpus",
    "apply_merge",
    "compact",
    "frequency_filter",
    "group_counts",
    "n_groups",
    "read_corpus",
    "representatives",
    "rule_groups",
    "unique_counts",
    "unique_int",
]
