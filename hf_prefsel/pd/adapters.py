"""Adapters from fine-grained preference data to the internal pairwise form (one aspect label per pair).

Sources: UltraFeedback (Hub schema), HelpSteer / HelpSteer2 (Hub schema), our `preference_multiaspect/*.jsonl`
files, and a user's own data given column names (one row per response, one row per prompt with a list of
responses, or already-made pairs).

The split into disjoint single-aspect subsets D_k is explicit and seedable; see `AspectSplitConfig`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from collections import defaultdict
from typing import Any, Iterable, Iterator, Literal, Mapping, Sequence

from datasets import Dataset
from datasets.utils.tqdm import tqdm

from ..errors import ConfigError, DataError, MissingColumnError
from .schema import BadRowReport, PairSet, rows_to_pairs

logger = logging.getLogger(__name__)

ULTRAFEEDBACK_ASPECTS: tuple[str, ...] = ("helpfulness", "honesty", "instruction_following", "truthfulness")
HELPSTEER_ASPECTS: tuple[str, ...] = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
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
class _Group:
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


def _prompt_id_for(prompt: str) -> str:
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


def _dig(row: Mapping, dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _usable_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _clean_group(
    prompt_id: str,
    prompt: Any,
    responses: Iterable[tuple[Any, Mapping[str, Any] | None]],
    source: str | None,
    report: BadRowReport,
    preferences: list[tuple[int, int, str]] | None = None,
) -> _Group | None:
    if not _usable_text(prompt):
        report.add("empty_prompt", prompt_id)
        return None
    kept: list[_Response] = []
    for index, (text, ratings) in enumerate(responses):
        if not _usable_text(text):
            report.add("empty_response", f"{prompt_id}#{index}")
            continue
        parsed: dict[str, float] = {}
        for key, raw in (ratings or {}).items():
            number, bad = _parse_rating(raw)
            if bad:
                report.add("non_numeric_rating", f"{prompt_id}#{index}:{key}")
            if number is not None:
                parsed[str(key)] = number
        kept.append(_Response(index, text, parsed))
    if len(kept) < 2:
        report.add("fewer_than_two_responses", prompt_id)
        return None
    return _Group(prompt_id, prompt, kept, source, list(preferences or []))


def _build_pairs(
    groups: list[_Group], config: AspectSplitConfig, report: BadRowReport, preference_aspect: str
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
    units: list[tuple[str, _Group, tuple[int, int] | None]] = []
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

    def emit(group: _Group, chosen: _Response, rejected: _Response, aspect: str) -> None:
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


def _iter_rows(data: Dataset | Iterable[Mapping]) -> Iterator[Mapping]:
    """Rows of `data` with a progress bar (Hub-sized inputs take minutes; `datasets.disable_progress_bars()`
    hides it, as it hides the `datasets` bars)."""
    total = len(data) if hasattr(data, "__len__") else None
    bar = tqdm(total=total, desc="Building pairs", unit="row", mininterval=0.5)
    try:
        if isinstance(data, Dataset):
            for row in data:
                bar.update(1)
                yield row
        else:
            for row in data:
                if not isinstance(row, Mapping):
                    raise DataError(
                        f"Expected dict rows, got {type(row).__name__}. Pass a `datasets.Dataset` or dicts."
                    )
                bar.update(1)
                yield row
    finally:
        bar.close()


def _require_columns(data: Dataset | Iterable[Mapping], columns: Sequence[str]) -> None:
    if isinstance(data, Dataset):
        for column in columns:
            if column not in data.column_names:
                raise MissingColumnError(column, data.column_names)


def from_multi_response(
    data: Dataset | Iterable[Mapping],
    *,
    config: AspectSplitConfig | None = None,
    prompt_column: str = "prompt",
    responses_column: str = "responses",
    text_key: str = "text",
    ratings_key: str = "ratings",
    id_column: str | None = "id",
    source_column: str | None = "source",
    preferences_key: str | None = None,
    preference_aspect: str = "preference",
) -> PairSet:
    """Pairs from rows holding one prompt and a list of rated responses (our `preference_multiaspect` format).

    Args:
        data (`Dataset` or iterable of dicts):
            One row per prompt: `{prompt, responses: [{text, ratings: {aspect: score}}], ...}`.
        config (`AspectSplitConfig`, *optional*):
            The D_k split rule; defaults to `AspectSplitConfig()`.
        prompt_column, responses_column (`str`):
            Where the prompt and the response list are.
        text_key, ratings_key (`str`):
            Keys of a response's text and of its `{aspect: score}` ratings.
        id_column (`str`, *optional*, defaults to `"id"`):
            Stable prompt id; a hash of the prompt text when absent.
        source_column (`str`, *optional*, defaults to `"source"`):
            Copied to the pairs' `source` column when present.
        preferences_key (`str`, *optional*):
            Dotted path to explicit pairwise labels in a row, a list of `{"i", "j", "winner": "i"|"j"|"tie"}` over
            response indices (e.g. `"meta.pairwise_preferences"` in the FineGrainedRLHF file). Such pairs are
            labelled with `preference_aspect`.
        preference_aspect (`str`, *optional*, defaults to `"preference"`):
            Aspect name of the explicitly labelled pairs.

    Returns:
        `PairSet`: the pairs and the report of skipped items.

    Example:

    ```python
    >>> ps = from_multi_response([{"id": "p1", "prompt": "2+2?", "responses": [
    ...     {"text": "4", "ratings": {"correct": 1}}, {"text": "5", "ratings": {"correct": 0}}]}])
    >>> ps.pairs[0]["chosen"], ps.pairs[0]["aspect"]
    ('4', 'correct')
    ```
    """
    config = config or AspectSplitConfig()
    _require_columns(data, [prompt_column, responses_column])
    report = BadRowReport()
    groups: list[_Group] = []
    for n, row in enumerate(_iter_rows(data)):
        report.rows_in += 1
        prompt = row.get(prompt_column)
        raw_id = row.get(id_column) if id_column else None
        if raw_id is not None:
            prompt_id = str(raw_id)
        else:
            prompt_id = _prompt_id_for(prompt) if isinstance(prompt, str) else f"row{n}"
        responses = row.get(responses_column) or []
        if not isinstance(responses, list):
            raise DataError(
                f"Row {prompt_id}: {responses_column!r} must be a list of response dicts, got "
                f"{type(responses).__name__}. Point `responses_column` at the list of responses."
            )
        pairs_in = []
        for response in responses:
            response = response if isinstance(response, Mapping) else {}
            ratings = response.get(ratings_key)
            pairs_in.append((response.get(text_key), ratings if isinstance(ratings, Mapping) else None))
        prefs: list[tuple[int, int, str]] = []
        if preferences_key:
            for item in _dig(row, preferences_key) or []:
                try:
                    prefs.append((int(item["i"]), int(item["j"]), str(item.get("winner"))))
                except (TypeError, KeyError, ValueError):
                    report.add("unknown_winner", f"{prompt_id}#{item!r}"[:200])
        source = row.get(source_column) if source_column else None
        group = _clean_group(prompt_id, prompt, pairs_in, source, report, prefs)
        if group is not None:
            groups.append(group)
    return _build_pairs(groups, config, report, preference_aspect)


def read_jsonl(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[dict]:
    """Read one or more JSON-lines files (a directory means every `*.jsonl` in it, sorted) into dicts."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[str] = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            files.extend(sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".jsonl")))
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise DataError(f"No such file or directory: {path!r}. Pass a JSONL file or a folder of them.")
    rows: list[dict] = []
    total = sum(os.path.getsize(f) for f in files)
    with tqdm(total=total, desc="Reading JSONL", unit="B", unit_scale=True, mininterval=0.5) as bar:
        for file in files:
            with open(file, encoding="utf-8") as fh:
                for line_no, line in enumerate(fh, 1):
                    bar.update(len(line.encode("utf-8")))
                    if not line.strip():
                        continue
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise DataError(
                            f"{file}:{line_no} is not valid JSON ({err}). Fix or remove that line."
                        ) from err
    return rows


def load_multiaspect_jsonl(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    config: AspectSplitConfig | None = None,
    *,
    limit: int | None = None,
) -> PairSet:
    """Pairs from our `preference_multiaspect/*.jsonl` files (`{id, prompt, responses, source, meta}` rows).

    Explicit human pairwise labels under `meta.pairwise_preferences` (the FineGrainedRLHF QA file) become pairs of
    the aspect `"preference"`; that file rates only one response of four per prompt, so its rating-based units
    mostly end up counted as `missing_rating`.

    Args:
        paths (`str` or list of `str`):
            Files, or a folder of `*.jsonl` files.
        config (`AspectSplitConfig`, *optional*):
            The D_k split rule.
        limit (`int`, *optional*):
            Use only the first `limit` rows (files in the given order), for a quick try on large data.

    Returns:
        `PairSet`: pairs of all files together (one rating struct with the union of the files' rating keys).
    """
    rows = read_jsonl(paths)
    if limit is not None:
        rows = rows[: max(int(limit), 0)]
    has_prefs = any(isinstance(_dig(r, "meta.pairwise_preferences"), list) for r in rows)
    return from_multi_response(rows, config=config, preferences_key="meta.pairwise_preferences" if has_prefs else None)


def from_ultrafeedback(
    data: Dataset | Iterable[Mapping],
    config: AspectSplitConfig | None = None,
    *,
    aspects: Sequence[str] = ULTRAFEEDBACK_ASPECTS,
    overall_key: str | None = "overall",
) -> PairSet:
    """Pairs from `openbmb/UltraFeedback` (Hub schema): `instruction`, `completions[*].annotations[aspect].Rating`.

    Ratings are strings ("1".."5", sometimes "N/A"); "N/A" counts as a missing rating and is reported under
    `non_numeric_rating`. The completion's `overall_score` is kept as the rating `overall_key` (excluded from the
    aspect labels by default) so conflicts with the holistic score can be measured.

    Args:
        data (`Dataset` or iterable of dicts):
            Rows in the UltraFeedback schema.
        config (`AspectSplitConfig`, *optional*):
            The D_k split rule.
        aspects (`Sequence[str]`, *optional*):
            Annotation keys to read; defaults to the four UltraFeedback aspects.
        overall_key (`str`, *optional*, defaults to `"overall"`):
            Name under which `overall_score` is stored; `None` drops it.

    Returns:
        `PairSet`.
    """
    config = config or AspectSplitConfig()
    _require_columns(data, ["instruction", "completions"])
    report = BadRowReport()
    groups: list[_Group] = []
    for row in _iter_rows(data):
        report.rows_in += 1
        prompt = row.get("instruction")
        if isinstance(prompt, str):
            prompt_id = _prompt_id_for(f"{row.get('source')}\x1f{prompt}")
        else:
            prompt_id = f"row{report.rows_in}"
        responses = []
        for completion in row.get("completions") or []:
            completion = completion or {}
            annotations = completion.get("annotations") or {}
            ratings: dict[str, Any] = {}
            for aspect in aspects:
                entry = annotations.get(aspect)
                if isinstance(entry, list):  # some exports store one annotation per list item
                    entry = entry[0] if entry else None
                ratings[aspect] = entry.get("Rating") if isinstance(entry, Mapping) else None
            if overall_key is not None:
                ratings[overall_key] = completion.get("overall_score")
            responses.append((completion.get("response"), ratings))
        group = _clean_group(prompt_id, prompt, responses, row.get("source"), report)
        if group is not None:
            groups.append(group)
    return _build_pairs(groups, config, report, "preference")


def from_rated_responses(
    data: Dataset | Iterable[Mapping],
    *,
    rating_columns: Sequence[str],
    config: AspectSplitConfig | None = None,
    prompt_column: str = "prompt",
    response_column: str = "response",
    source: str | None = None,
) -> PairSet:
    """Pairs from one row per (prompt, response) with one rating column per attribute (HelpSteer layout).

    Rows with the same prompt text form one prompt group; pairs come from responses to the same prompt.

    Args:
        data (`Dataset` or iterable of dicts):
            One row per response.
        rating_columns (`Sequence[str]`):
            The per-attribute rating columns.
        config (`AspectSplitConfig`, *optional*):
            The D_k split rule.
        prompt_column, response_column (`str`):
            Column names of the prompt and the response.
        source (`str`, *optional*):
            Written to the pairs' `source` column.

    Returns:
        `PairSet`.
    """
    config = config or AspectSplitConfig()
    if not rating_columns:
        raise ConfigError("rating_columns must name at least one rating column.")
    _require_columns(data, [prompt_column, response_column, *rating_columns])
    report = BadRowReport()
    grouped: dict[str, list[tuple[Any, dict]]] = defaultdict(list)
    prompts: dict[str, Any] = {}
    for row in _iter_rows(data):
        report.rows_in += 1
        prompt = row.get(prompt_column)
        key = prompt if isinstance(prompt, str) else f"\x00row{report.rows_in}"
        prompts.setdefault(key, prompt)
        grouped[key].append((row.get(response_column), {col: row.get(col) for col in rating_columns}))
    groups: list[_Group] = []
    for key, responses in grouped.items():
        prompt = prompts[key]
        prompt_id = _prompt_id_for(prompt) if isinstance(prompt, str) else key.strip("\x00")
        group = _clean_group(prompt_id, prompt, responses, source, report)
        if group is not None:
            groups.append(group)
    return _build_pairs(groups, config, report, "preference")


def from_helpsteer(data: Dataset | Iterable[Mapping], config: AspectSplitConfig | None = None) -> PairSet:
    """Pairs from `nvidia/HelpSteer` or `nvidia/HelpSteer2` (Hub schema: prompt, response, five 0–4 attributes).

    All five attributes are higher-is-better, as the dataset card states (including complexity and verbosity).

    Args:
        data (`Dataset` or iterable of dicts):
            Rows in the HelpSteer schema.
        config (`AspectSplitConfig`, *optional*):
            The D_k split rule.

    Returns:
        `PairSet`.
    """
    return from_rated_responses(data, rating_columns=HELPSTEER_ASPECTS, config=config, source="nvidia/HelpSteer")


def from_pairwise(
    data: Dataset | Iterable[Mapping],
    *,
    prompt_column: str = "prompt",
    chosen_column: str = "chosen",
    rejected_column: str = "rejected",
    aspect_column: str | None = "aspect",
    aspect: str | None = None,
    chosen_ratings_column: str | None = None,
    rejected_ratings_column: str | None = None,
    id_column: str | None = None,
    source: str | None = None,
) -> PairSet:
    """Adopt a user's own pairwise data (already chosen/rejected, one aspect per pair) into the internal form.

    Args:
        data (`Dataset` or iterable of dicts):
            One pair per row.
        prompt_column, chosen_column, rejected_column (`str`):
            Column names of the prompt and the two responses.
        aspect_column (`str`, *optional*, defaults to `"aspect"`):
            Column holding the pair's aspect label.
        aspect (`str`, *optional*):
            One aspect label for all rows (a single D_k), instead of `aspect_column`.
        chosen_ratings_column, rejected_ratings_column (`str`, *optional*):
            Columns with `{aspect: score}` dicts for each side, if the data has per-aspect ratings.
        id_column (`str`, *optional*):
            Stable pair id column; otherwise ids are `"<hash of prompt>#<row number>"`.
        source (`str`, *optional*):
            Written to the pairs' `source` column.

    Returns:
        `PairSet`.
    """
    if aspect is None and aspect_column is None:
        raise ConfigError("Pass `aspect_column` (a column with each pair's aspect) or `aspect` (one label for all).")
    needed = [prompt_column, chosen_column, rejected_column]
    if aspect is None and aspect_column:
        needed.append(aspect_column)
    needed += [c for c in (chosen_ratings_column, rejected_ratings_column, id_column) if c]
    _require_columns(data, needed)
    report = BadRowReport()
    rows: list[dict] = []
    keys: set[str] = set()
    for n, row in enumerate(_iter_rows(data)):
        report.rows_in += 1
        prompt, chosen, rejected = row.get(prompt_column), row.get(chosen_column), row.get(rejected_column)
        prompt_id = _prompt_id_for(prompt) if isinstance(prompt, str) else f"row{n}"
        pair_id = str(row[id_column]) if id_column and row.get(id_column) is not None else f"{prompt_id}#{n}"
        label = aspect if aspect is not None else row.get(aspect_column)  # type: ignore[arg-type]
        if not _usable_text(prompt):
            report.add("empty_prompt", pair_id)
            continue
        if not _usable_text(chosen) or not _usable_text(rejected):
            report.add("empty_response", pair_id)
            continue
        if chosen == rejected:
            report.add("identical_responses", pair_id)
            continue
        if not isinstance(label, str) or not label.strip():
            report.add("missing_aspect", pair_id)
            continue
        sides = []
        for column in (chosen_ratings_column, rejected_ratings_column):
            parsed: dict[str, float] = {}
            raw = row.get(column) if column else None
            for key, value in (raw or {}).items() if isinstance(raw, Mapping) else ():
                number, bad = _parse_rating(value)
                if bad:
                    report.add("non_numeric_rating", f"{pair_id}:{key}")
                if number is not None:
                    parsed[str(key)] = number
            keys.update(parsed)
            sides.append(parsed)
        rows.append(
            {
                "pair_id": pair_id,
                "prompt_id": prompt_id,
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "aspect": label,
                "chosen_ratings": sides[0],
                "rejected_ratings": sides[1],
                "source": source,
            }
        )
    report.pairs_out = len(rows)
    return PairSet(rows_to_pairs(rows, sorted(keys)), report)


def detect_format(data: Dataset) -> str:
    """Guess which adapter fits a dataset from its columns: `ultrafeedback`, `helpsteer`, `multi_response`, `pairwise`.

    Raises:
        [`DataError`]: no known layout matches; call the matching adapter with column names instead.
    """
    columns = set(data.column_names)
    if {"instruction", "completions"} <= columns:
        return "ultrafeedback"
    if {"prompt", "response"} <= columns and set(HELPSTEER_ASPECTS) <= columns:
        return "helpsteer"
    if {"prompt", "responses"} <= columns:
        return "multi_response"
    if {"prompt", "chosen", "rejected"} <= columns:
        return "pairwise"
    raise DataError(
        f"Could not recognise the dataset layout from its columns {sorted(columns)}. Call an adapter directly: "
        "`from_multi_response`, `from_rated_responses`, or `from_pairwise` with your column names."
    )


def to_pairs(data: Dataset, config: AspectSplitConfig | None = None) -> PairSet:
    """Run the adapter `detect_format` picks for `data` (UltraFeedback, HelpSteer, multi-response or pairwise)."""
    kind = detect_format(data)
    if kind == "ultrafeedback":
        return from_ultrafeedback(data, config)
    if kind == "helpsteer":
        return from_helpsteer(data, config)
    if kind == "multi_response":
        return from_multi_response(data, config=config)
    return from_pairwise(data, aspect_column="aspect" if "aspect" in data.column_names else None,
                         aspect=None if "aspect" in data.column_names else "preference")
