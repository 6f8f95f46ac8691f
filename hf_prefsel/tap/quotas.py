"""How many prompts each part of a taxonomy gets: leaf quotas from weights, then leaves crossed with axis values.

`Taxonomy.leaf_quotas` and `Taxonomy.units` are the public entry points (their docstrings give the rules); the
functions here work on the taxonomy's nodes and axes only, so they can be tested and reused without a `Taxonomy`.
"""

from __future__ import annotations

import itertools
import math
from typing import Iterator, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from .taxonomy_nodes import PromptUnit, TaxonomyAxis, TaxonomyNode


def largest_remainder(total: int, weights: Sequence[float]) -> list[int]:
    """Split `total` into integers proportional to `weights` that add up to `total` exactly; all-zero weights split
    evenly (`hf_prefsel.result.largest_remainder`, in this module's argument order)."""
    from ..result import largest_remainder as split

    return split(weights, total, even_when_zero=True).tolist()


def _leaves(nodes: Sequence[TaxonomyNode]) -> Iterator[TaxonomyNode]:
    for node in nodes:
        if node.is_leaf:
            yield node
        else:
            yield from _leaves(node.children)


def leaf_quotas(nodes: Sequence[TaxonomyNode], *, per_leaf: int | None = None, total: int | None = None) -> dict[str, int]:
    """Leaf id → prompts for the tree under the top-level `nodes`, in leaf order (see `Taxonomy.leaf_quotas`)."""
    if (per_leaf is None) == (total is None):
        raise ConfigError("Give exactly one of per_leaf (prompts per leaf) and total (prompts overall).")
    amount = per_leaf if per_leaf is not None else total
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ConfigError(f"{'per_leaf' if per_leaf is not None else 'total'} must be a whole number >= 0, got {amount!r}.")
    out: dict[str, int] = {leaf.id: 0 for leaf in _leaves(nodes)}

    def split(siblings: Sequence[TaxonomyNode], amount: int) -> None:
        fixed = [n for n in siblings if n.quota is not None]
        free = [n for n in siblings if n.quota is None]
        rest = max(0, amount - sum(n.quota for n in fixed))  # type: ignore[misc]
        for n, a in zip(free, largest_remainder(rest, [n.weight for n in free])):
            assign(n, a)
        for n in fixed:
            assign(n, n.quota)  # type: ignore[arg-type]

    def assign(node: TaxonomyNode, amount: int) -> None:
        if node.is_leaf:
            out[node.id] = amount
        else:
            split(node.children, amount)

    if total is not None:
        split(nodes, total)
        return out
    # per-leaf mode: weights multiply down the path; explicit quotas take their subtree out of it
    exact: dict[str, float] = {}

    def walk(node: TaxonomyNode, factor: float) -> None:
        if node.quota is not None:
            assign(node, node.quota)
            return
        if node.is_leaf:
            exact[node.id] = per_leaf * factor * node.weight  # type: ignore[operator]
            return
        for child in node.children:
            walk(child, factor * node.weight)

    for top in nodes:
        walk(top, 1.0)
    if exact:
        ids = list(exact)
        counts = largest_remainder(int(round(sum(exact.values()))), [exact[i] for i in ids])
        out.update(zip(ids, counts))
    return out


def cross_axes(quotas: Mapping[str, int], axes: Sequence[TaxonomyAxis]) -> list[PromptUnit]:
    """Spread each leaf's quota over combinations of `axes` values (see `Taxonomy.units` for the rule)."""
    if not axes:
        return [PromptUnit(leaf, (), q) for leaf, q in quotas.items() if q > 0]
    combos = list(itertools.product(*[range(len(a.values)) for a in axes]))
    share = np.array([math.prod(axes[a].values[v].weight for a, v in enumerate(c)) for c in combos])
    share /= share.sum()
    marginal = [np.array([v.weight for v in a.values]) / sum(v.weight for v in a.values) for a in axes]
    given = np.zeros(len(combos))
    given_marginal = [np.zeros(len(a.values)) for a in axes]
    done = 0
    units: list[PromptUnit] = []
    for leaf_id, q in quotas.items():
        counts = np.zeros(len(combos), dtype=np.int64)
        leaf_marginal = [np.zeros(len(a.values)) for a in axes]
        for _ in range(q):
            joint_deficit = share * (done + 1) - given
            axis_deficit = [m * (done + 1) - g for m, g in zip(marginal, given_marginal)]

            def rank(c: int) -> tuple:
                combo = combos[c]
                # 1. a combination this leaf does not have yet; 2. axis values this leaf has fewest of (a leaf's
                # prompts differ on every axis); 3. values furthest behind their share over the whole run;
                # 4. the combination furthest behind; 5. file order
                return (
                    counts[c],
                    sum(leaf_marginal[a][v] for a, v in enumerate(combo)),
                    -sum(axis_deficit[a][v] for a, v in enumerate(combo)),
                    -joint_deficit[c],
                    c,
                )

            pick = min(range(len(combos)), key=rank)
            counts[pick] += 1
            given[pick] += 1
            for a, v in enumerate(combos[pick]):
                leaf_marginal[a][v] += 1
                given_marginal[a][v] += 1
            done += 1
        for c in np.flatnonzero(counts).tolist():
            axes_of = tuple((a.id, a.values[v].id) for a, v in zip(axes, combos[c]))
            units.append(PromptUnit(leaf_id, axes_of, int(counts[c])))
    return units


__all__ = ["cross_axes", "largest_remainder", "leaf_quotas"]
