"""Association aggregation (InsTag step 4): merge a tag into another it (almost) always comes with.

Only 2-itemsets are needed (rules a -> b), and the support of every pair is one entry of the co-occurrence matrix
`X.T @ X` of the samples x tags 0/1 matrix `X`: a sparse product replaces frequent-itemset mining.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import ConfigError
from .normalize_corpus import Corpus, apply_merge, compact, n_groups, unique_int


def _indicator(samples: np.ndarray, items: np.ndarray, n_samples: int, n_items: int) -> Any:
    """The samples x items 0/1 matrix (CSC), repeated (sample, item) entries counted once."""
    from scipy import sparse

    x = sparse.csc_matrix(
        (np.ones(len(items), dtype=np.int64), (samples, items)), shape=(n_samples, n_items), dtype=np.int64
    )
    x.sum_duplicates()
    x.data[:] = 1
    return x


def pair_counts(
    samples: np.ndarray, items: np.ndarray, n_items: int, min_support: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Number of samples holding both `a` and `b`, for every pair `a < b` seen together at least `min_support` times.

    Args:
        samples, items (`np.ndarray` of int): one entry per (sample, item) occurrence; repeats count once.
        n_items (`int`): items are `0..n_items-1`.
        min_support (`int`): smallest pair count returned (>= 1).

    Returns:
        `(a, b, count)` int64 arrays sorted by `(a, b)`.

    Example:
        >>> pair_counts(np.array([0, 0, 1, 1, 1, 2]), np.array([1, 2, 1, 2, 3, 1]), 4)
        (array([1, 1, 2]), array([2, 3, 3]), array([2, 1, 1]))
    """
    samples = np.asarray(samples, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    if not len(items):
        return empty, empty, empty.copy()
    x = _indicator(samples, items, int(samples.max()) + 1, n_items)
    kept = np.flatnonzero(np.asarray(x.sum(axis=0)).ravel() >= min_support)  # a rarer item is in no frequent pair
    x = x[:, kept]
    co = (x.T @ x).tocoo()
    upper = (co.row < co.col) & (co.data >= min_support)
    a, b, count = kept[co.row[upper]], kept[co.col[upper]], co.data[upper].astype(np.int64)
    order = np.lexsort((b, a))
    return a[order].astype(np.int64), b[order].astype(np.int64), count[order]


def associate(
    corpus: Corpus, group: np.ndarray, min_support: int, min_confidence: float, max_rounds: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Merge tag a into tag b while some rule a -> b has support >= min_support and confidence >= min_confidence.

    Supports count samples. Each tag is merged into its best consequent (highest confidence, then support, then the
    bigger tag); a rule only points to a tag with strictly higher (support, -id), so chains end and no cycle forms.
    Rounds repeat on the merged sets.
    """
    g = group.copy()
    merged_total = rules_total = rounds = 0
    for rounds in range(1, max_rounds + 1):
        size = n_groups(g)
        if size < 2:
            break
        occ = g[corpus.raw_id]
        keep = occ >= 0
        pairs = unique_int(corpus.sample[keep] * size + occ[keep])
        samples, items = pairs // size, pairs % size
        support = np.bincount(items, minlength=size)  # over all samples, single-tag ones included
        a, b, s = pair_counts(samples, items, size, min_support)
        x, y, s = np.r_[a, b], np.r_[b, a], np.r_[s, s]  # both directions of every pair
        confidence = s / support[x]
        bigger = (support[y] > support[x]) | ((support[y] == support[x]) & (y < x))
        ok = (confidence >= min_confidence) & bigger
        if not ok.any():
            break
        x, y, s, confidence = x[ok], y[ok], s[ok], confidence[ok]
        rules_total += len(x)
        # Best rule per antecedent: highest confidence, then support, then the bigger consequent, then lower id.
        order = np.lexsort((y, -support[y], -s, -confidence, x))
        x, y = x[order], y[order]
        first = np.r_[True, x[1:] != x[:-1]]
        target = np.arange(size)
        target[x[first]] = y[first]
        for _ in range(size):  # follow pointers to the end of each chain
            nxt = target[target]
            if np.array_equal(nxt, target):
                break
            target = nxt
        merged_total += int(first.sum())
        g = compact(apply_merge(g, target))
    return g, {"rounds": rounds, "rules": rules_total, "merged_tags": merged_total}


def fpgrowth(
    transactions: Iterable[Sequence[int]], min_support: int, max_len: int | None = None
) -> dict[tuple[int, ...], int]:
    """Deprecated: every itemset in at least `min_support` transactions (TACOS only needs pairs: [`pair_counts`]).

    Kept for callers of earlier versions. Counts level by level on the sparse transactions x items matrix: single
    items by column sums, pairs by `X.T @ X`, longer itemsets from frequent shorter ones (every subset of a
    frequent itemset is frequent). Duplicate items inside a transaction are ignored.

    Returns:
        `dict[tuple[int, ...], int]`: sorted itemset -> support, shorter itemsets first.

    Example:
        >>> fpgrowth([[1, 2], [1, 2, 3], [1]], min_support=2)
        {(1,): 3, (2,): 2, (1, 2): 2}
    """
    warnings.warn(
        "fpgrowth is deprecated and will be removed: association aggregation only mines tag pairs, with "
        "hf_prefsel.tacos.normalize.pair_counts (a sparse co-occurrence product).",
        DeprecationWarning,
        stacklevel=2,
    )
    if min_support < 1:
        raise ConfigError(f"min_support must be >= 1, got {min_support}.")
    rows = [sorted(set(t)) for t in transactions]
    item_ids = sorted({i for row in rows for i in row})
    column = {item: k for k, item in enumerate(item_ids)}
    samples = np.repeat(np.arange(len(rows), dtype=np.int64), [len(r) for r in rows])
    items = np.array([column[i] for row in rows for i in row], dtype=np.int64)
    out: dict[tuple[int, ...], int] = {}
    if not len(items):
        return out
    x = _indicator(samples, items, len(rows), len(item_ids))
    support = np.asarray(x.sum(axis=0)).ravel()
    level = [(int(k),) for k in np.flatnonzero(support >= min_support)]
    out.update({k: int(support[k[0]]) for k in level})
    if max_len is None or max_len >= 2:
        a, b, s = pair_counts(samples, items, len(item_ids), min_support)
        level = list(zip(a.tolist(), b.tolist()))
        out.update(zip(level, s.tolist()))
    size = 3
    while level and (max_len is None or size <= max_len):
        frequent = set(level)
        # Join two frequent (size-1)-itemsets sharing all but their last item; keep it if every subset is frequent.
        joined = [p + q[-1:] for i, p in enumerate(level) for q in level[i + 1 :] if p[:-1] == q[:-1]]
        candidates = [c for c in joined if all(c[:j] + c[j + 1 :] in frequent for j in range(size))]
        counts = [int((np.asarray(x[:, list(c)].sum(axis=1)).ravel() == size).sum()) for c in candidates]
        level = [c for c, n in zip(candidates, counts) if n >= min_support]
        out.update((c, n) for c, n in zip(candidates, counts) if n >= min_support)
        size += 1
    named = {tuple(item_ids[k] for k in itemset): n for itemset, n in out.items()}
    return dict(sorted(named.items(), key=lambda kv: (len(kv[0]), kv[0])))


__all__ = ["associate", "fpgrowth", "pair_counts"]
