"""Adapters from fine-grained preference data to the internal pairwise form (one aspect label per pair).

Sources: UltraFeedback (Hub schema), HelpSteer / HelpSteer2 (Hub schema), our `preference_multiaspect/*.jsonl`
files, and a user's own data given column names (one row per response, one row per prompt with a list of
responses, or already-made pairs).

The split into disjoint single-aspect subsets D_k is explicit and seedable; see `AspectSplitConfig` (in
`aspect_split.py`, importable from here too).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any, Iterable, Iterator, Mapping, Sequence

from datasets import Dataset
from datasets.utils.tqdm import tqdm

from ..errors import ConfigError, DataError, MissingColumnError
from .aspect_split import (
    AspectSplitConfig,
    PromptGroup,
    build_pairs,
    clean_group,
    parse_ratings,
    prompt_id_for,
    usable_text,
)
from .schema import BadRowReport, PairSet, rows_to_pairs

ULTRAFEEDBACK_ASPECTS: tuple[str, ...] = ("helpfulness", "honesty", "instruction_following", "truthfulness")
HELPSTEER_ASPECTS: tuple[str, ...] = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


def _dig(row: Mapping, dotted: str) -> Any:
    """The value at a dotted path such as `"meta.pairwise_preferences"`, or `None` when any step is missing."""
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


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


def _require_columns(data: Dataset | Iterable[Mapping], columns: Sequence[tuple[str | None, str]]) -> None:
    """`columns` are `(keyword argument that named it, or None for a fixed schema column, column)`."""
    if isinstance(data, Dataset):
        for option, column in columns:
            if column not in data.column_names:
                raise MissingColumnError(column, data.column_names, option=option)


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
    _require_columns(data, [("prompt_column", prompt_column), ("responses_column", responses_column)])
    report = BadRowReport()
    groups: list[PromptGroup] = []
    for n, row in enumerate(_iter_rows(data)):
        report.rows_in += 1
        prompt = row.get(prompt_column)
        raw_id = row.get(id_column) if id_column else None
        if raw_id is not None:
            prompt_id = str(raw_id)
        else:
            prompt_id = prompt_id_for(prompt) if isinstance(prompt, str) else f"row{n}"
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
        group = clean_group(prompt_id, prompt, pairs_in, source, report, prefs)
        if group is not None:
            groups.append(group)
    return build_pairs(groups, config, report, preference_aspect)


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
    _require_columns(data, [(None, "instruction"), (None, "completions")])
    report = BadRowReport()
    groups: list[PromptGroup] = []
    for row in _iter_rows(data):
        report.rows_in += 1
        prompt = row.get("instruction")
        if isinstance(prompt, str):
            prompt_id = prompt_id_for(f"{row.get('source')}\x1f{prompt}")
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
        group = clean_group(prompt_id, prompt, responses, row.get("source"), report)
        if group is not None:
            groups.append(group)
    return build_pairs(groups, config, report, "preference")


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
    _require_columns(data, [("prompt_column", prompt_column), ("response_column", response_column),
                           *(("rating_columns", c) for c in rating_columns)])
    report = BadRowReport()
    grouped: dict[str, list[tuple[Any, dict]]] = defaultdict(list)
    prompts: dict[str, Any] = {}
    for row in _iter_rows(data):
        report.rows_in += 1
        prompt = row.get(prompt_column)
        key = prompt if isinstance(prompt, str) else f"\x00row{report.rows_in}"
        prompts.setdefault(key, prompt)
        grouped[key].append((row.get(response_column), {col: row.get(col) for col in rating_columns}))
    groups: list[PromptGroup] = []
    for key, responses in grouped.items():
        prompt = prompts[key]
        prompt_id = prompt_id_for(prompt) if isinstance(prompt, str) else key.strip("\x00")
        group = clean_group(prompt_id, prompt, responses, source, report)
        if group is not None:
            groups.append(group)
    return build_pairs(groups, config, report, "preference")


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
    _require_columns(data, [(None, c) for c in ("prompt", "response", *HELPSTEER_ASPECTS)])  # fixed by the schema
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
    needed = [("prompt_column", prompt_column), ("chosen_column", chosen_column), ("rejected_column", rejected_column)]
    if aspect is None and aspect_column:
        needed.append(("aspect_column", aspect_column))
    needed += [(o, c) for o, c in (("chosen_ratings_column", chosen_ratings_column),
                                   ("rejected_ratings_column", rejected_ratings_column), ("id_column", id_column)) if c]
    _require_columns(data, needed)
    report = BadRowReport()
    rows: list[dict] = []
    keys: set[str] = set()
    for n, row in enumerate(_iter_rows(data)):
        report.rows_in += 1
        prompt, chosen, rejected = row.get(prompt_column), row.get(chosen_column), row.get(rejected_column)
        prompt_id = prompt_id_for(prompt) if isinstance(prompt, str) else f"row{n}"
        pair_id = str(row[id_column]) if id_column and row.get(id_column) is not None else f"{prompt_id}#{n}"
        label = aspect if aspect is not None else row.get(aspect_column)  # type: ignore[arg-type]
        if not usable_text(prompt):
            report.add("empty_prompt", pair_id)
            continue
        if not usable_text(chosen) or not usable_text(rejected):
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
            raw = row.get(column) if column else None
            parsed = parse_ratings(raw if isinstance(raw, Mapping) else None, pair_id, report)
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
