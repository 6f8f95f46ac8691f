"""The D_k split rule: prompts with several rated responses become pairs, each labelled for exactly one aspect.

`AspectSplitConfig` documents the rule; `clean_group` checks one prompt's responses and ratings (counting what it
drops in a `BadRowReport`), and `build_pairs` applies the rule to all prompt groups. The adapters in `adapters.py`
only read each source's layout into prompt groups.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any, Iterable, Literal, Mapping, Sequence

from ..errors import ConfigError
from .schema import BadRowReport, PairSet, rows_to_pairs

_MISSING_STRINGS = {"", "n/a", "na", "none", "null", "nan", "-"}


@dataclasses.dataclass
class AspectSplitConfig:
    """How prompts with several rated responses become pairs, each labelled for exactly one aspect.

    The rule (PD paper setup: the aggregated set is a disjoint union of single-aspect subsets D_k; the paper's exact
    conversion is unpublished, so this one is ours):

    1. *Units.* With `pair_mode="one_per_prompt"` a unit is a prompt and yields at most one pair; with
       `"all_pairs"` a unit is an unordered pair of responses (i, j) of a prompt.
    2. *Assignment.* Units are ordered by a keyed hash of `(seed, unit id)` (independent of input order) and the
       n-th unit is assigned aspect `aspects[n % len(aspects)]`: the D_k get equal shares, and the same seed always
       gives the same split.
    3. *Labelling.* Under its aspect k a unit yields a pair only if two responses have ratings for k that differ by
       more than `min_rating_gap`; the better-rated one (per `lower_is_better`) is `chosen`. In `one_per_prompt`
       mode `chosen` is the best-rated response and `rejected` a seeded pick among the strictly worse ones.
    4. *Fallback.* If the unit is tied or unrated under k and `fallback=True`, the next aspects in the cyclic
       order after k are tried. A unit with no usable aspect is counted as a bad row (`tie` or
       `missing_rating`), never silently dropped.

    Args:
        aspects (`Sequence[str]`, *optional*):
            The aspects to build D_k for. Defaults to every rating key found, minus `exclude_aspects`, sorted.
        exclude_aspects (`Sequence[str]`, *optional*, defaults to `("overall",)`):
            Rating keys never used as an aspect label. A holistic "overall" rating is what PD wants to do without;
            it stays in the stored ratings so conflicts against it can be measured.
        lower_is_better (`Sequence[str]`, *optional*):
            Rating keys where a smaller value is better (error counts). Defaults to keys starting with
            `n_errors` or `n_missing` (the FineGrainedRLHF counts in our QA file).
        pair_mode (`str`, *optional*, defaults to `"one_per_prompt"`):
            `"one_per_prompt"` keeps the D_k prompt-disjoint, so a proxy reward model never scores a pair whose
            prompt it was trained on; `"all_pairs"` uses every response pair (more pairs from small data).
        fallback (`bool`, *optional*, defaults to `True`):
            Try the other aspects when the assigned one gives no strict preference.
        min_rating_gap (`float`, *optional*, defaults to `0.0`):
            Ratings must differ by more than this to count as a preference.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the assignment hash and of the seeded picks.
    """

    aspects: Sequence[str] | None = None
    exclude_aspects: Sequence[str] = ("overall",)
    lower_is_better: Sequence[str] | None = None
    pair_mode: Literal["one_per_prompt", "all_pairs"] = "one_per_prompt"
    fallback: bool = True
    min_rating_gap: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pair_mode not in ("one_per_prompt", "all_pairs"):
            raise ConfigError(f"pair_mode must be 'one_per_prompt' or 'all_pairs', got {self.pair_mode!r}.")
        if self.min_rating_gap < 0:
            raise ConfigError(f"min_rating_gap must be >= 0, got {self.min_rating_gap}.")
        if self.aspects is not None and len(self.aspects) == 0:
            raise ConfigError("aspects must be None (use every rating key) or a non-empty list of names.")

    def is_lower_better(self, key: str) -> bool:
        """Whether a smaller rating is better for `key`."""
        if self.lower_is_better is not None:
            return key in self.lower_is_better
        return key.startswith("n_errors") or key.startswith("n_missing")


@dataclasses.dataclass
class _Response:
    index: int
    text: str
    ratings: dict[str, float]


@dataclasses.dataclass
class PromptGroup:
    """One prompt with its usable responses (two or more) and any explicit pairwise labels `(i, j, winner)`."""

    prompt_id: str
    prompt: str
    responses: list[_Response]
    source: str | None
    preferences: list[tuple[int, int, str]] = dataclasses.field(default_factory=list)


def _hash(*parts: Any) -> int:
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _pick(candidates: Sequence[int], *key: Any) -> int:
    """A seeded, order-independent choice among candidate response indices."""
    return min(candidates, key=lambda idx: _hash(*key, idx))


def prompt_id_for(prompt: str) -> str:
    """A stable id for a prompt without one: the first 16 hex digits of its SHA-1."""
    return hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:16]


def _parse_rating(value: Any) -> tuple[float | None, bool]:
    """(number or None, whether the value was a non-numeric non-empty string/object)."""
    if value is None or isinstance(value, bool):
        return None, value is not None
    if isinstance(value, (int, float)):
        return (None, False) if math.isnan(float(value)) else (float(value), False)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _MISSING_STRINGS:
            return None, text != "" and text.lower() not in ("none", "null")
        try:
            number = float(text)
        except ValueError:
            return None, True
        return (None, True) if math.isnan(number) else (number, False)
    return None, True


def parse_ratings(ratings: Mapping[str, Any] | None, item_id: str, report: BadRowReport) -> dict[str, float]:
    """`{aspect: number}` from raw ratings; missing ones are skipped, non-numeric ones counted under `item_id:aspect`."""
    parsed: dict[str, float] = {}
    for key, raw in (ratings or {}).items():
        number, bad = _parse_rating(raw)
        if bad:
            report.add("non_numeric_rating", f"{item_id}:{key}")
        if number is not None:
            parsed[str(key)] = number
    return parsed


def usable_text(value: Any) -> bool:
    """A non-blank string (a prompt or response worth pairing)."""
    return isinstance(value, str) and value.strip() != ""


def clean_group(
    prompt_id: str,
    prompt: Any,
    responses: Iterable[tuple[Any, Mapping[str, Any] | None]],
    source: str | None,
    report: BadRowReport,
    preferences: list[tuple[int, int, str]] | None = None,
) -> PromptGroup | None:
    """One prompt's responses with parsed ratings; `None` (counted in `report`) without two usable responses."""
    if not usable_text(prompt):
        report.add("empty_prompt", prompt_id)
        return None
    kept: list[_Response] = []
    for index, (text, ratings) in enumerate(responses):
        if not usable_text(text):
            report.add("empty_response", f"{prompt_id}#{index}")
            continue
        kept.append(_Response(index, text, parse_ratings(ratings, f"{prompt_id}#{index}", report)))
    if len(kept) < 2:
        report.add("fewer_than_two_responses", prompt_id)
        return None
    return PromptGroup(prompt_id, prompt, kept, source, list(preferences or []))


def build_pairs(
    groups: list[PromptGroup], config: AspectSplitConfig, report: BadRowReport, preference_aspect: str
) -> PairSet:
    """Apply the split rule of `AspectSplitConfig` to cleaned prompt groups."""
    rating_keys = sorted({key for g in groups for r in g.responses for key in r.ratings})
    if config.aspects is not None:
        aspects = list(config.aspects)
    else:
        aspects = [key for key in rating_keys if key not in set(config.exclude_aspects)]
    sign = {key: (-1.0 if config.is_lower_better(key) else 1.0) for key in rating_keys}
    seed = config.seed

    # Units to assign, with stable ids.
    units: list[tuple[str, PromptGroup, tuple[int, int] | None]] = []
    for group in groups:
        if config.pair_mode == "one_per_prompt":
            units.append((group.prompt_id, group, None))
        else:
            resp = group.responses
            for a in range(len(resp)):
                for b in range(a + 1, len(resp)):
                    units.append((f"{group.prompt_id}#{resp[a].index}-{resp[b].index}", group, (a, b)))
    order = sorted(range(len(units)), key=lambda n: (_hash(seed, "unit", units[n][0]), units[n][0]))
    assigned = [0] * len(units)
    for position, n in enumerate(order):
        assigned[n] = position % len(aspects) if aspects else 0

    out_rows: list[dict] = []

    def emit(group: PromptGroup, chosen: _Response, rejected: _Response, aspect: str) -> None:
        out_rows.append(
            {
                "pair_id": f"{group.prompt_id}#{chosen.index}>{rejected.index}@{aspect}",
                "prompt_id": group.prompt_id,
                "prompt": group.prompt,
                "chosen": chosen.text,
                "rejected": rejected.text,
                "aspect": aspect,
                "chosen_ratings": chosen.ratings,
                "rejected_ratings": rejected.ratings,
                "source": group.source,
            }
        )

    for n, (unit_id, group, pair) in enumerate(units):
        k0 = assigned[n]
        tries = (len(aspects) if config.fallback else 1) if aspects else 0  # no aspects: every unit is unrated
        rotation = [aspects[(k0 + step) % len(aspects)] for step in range(tries)]
        saw_rated = False
        done = False
        for aspect in rotation:
            s = sign.get(aspect, 1.0)
            if pair is None:
                rated = [r for r in group.responses if aspect in r.ratings]
                if len(rated) < 2:
                    continue
                saw_rated = True
                best = max(s * r.ratings[aspect] for r in rated)
                top = [r.index for r in rated if s * r.ratings[aspect] == best]
                worse = [r.index for r in rated if best - s * r.ratings[aspect] > config.min_rating_gap]
                if not worse:
                    continue
                by_index = {r.index: r for r in rated}
                chosen = by_index[_pick(top, seed, "chosen", group.prompt_id, aspect)]
                rejected = by_index[_pick(worse, seed, "rejected", group.prompt_id, aspect)]
                emit(group, chosen, rejected, aspect)
                done = True
                break
            first, second = group.responses[pair[0]], group.responses[pair[1]]
            if aspect not in first.ratings or aspect not in second.ratings:
                continue
            saw_rated = True
            diff = s * (first.ratings[aspect] - second.ratings[aspect])
            if abs(diff) <= config.min_rating_gap:
                continue
            if diff > 0:
                emit(group, first, second, aspect)
            else:
                emit(group, second, first, aspect)
            done = True
            break
        if not done:
            report.add("tie" if saw_rated else "missing_rating", unit_id)

    # Explicit pairwise labels (e.g. human preferences over response pairs) form their own aspect.
    for group in groups:
        by_index = {r.index: r for r in group.responses}
        for i, j, winner in group.preferences:
            unit_id = f"{group.prompt_id}#{i}-{j}"
            if i not in by_index or j not in by_index:
                continue  # the response itself was already counted as empty
            if winner == "tie":
                report.add("tie", unit_id)
            elif winner in ("i", "j"):
                chosen, rejected = (by_index[i], by_index[j]) if winner == "i" else (by_index[j], by_index[i])
                emit(group, chosen, rejected, preference_aspect)
            else:
                report.add("unknown_winner", unit_id)

    report.pairs_out += len(out_rows)
    return PairSet(rows_to_pairs(out_rows, rating_keys), report)


__all__ = ["AspectSplitConfig", "PromptGroup", "build_pairs", "clean_group", "parse_ratings", "prompt_id_for", "usable_text"]
