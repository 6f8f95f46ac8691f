"""Loading data into the Space with hard bounds: uploads, bundled sample sets and Hub datasets.

Rows are kept as plain dicts (`LoadedData.rows`) because the methods need different shapes: TACOS/TAGS/TaP read
three text columns, PD reads nested `responses` lists. No user string is ever used as a file path: uploads come
from Gradio's upload folder, samples are looked up by name in a fixed table, and Hub ids are validated.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import ConfigError, DataError
from .limits import SpaceLimits

UPLOAD_TYPES = (".jsonl", ".json", ".csv", ".parquet")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
_SPLIT = re.compile(r"^[A-Za-z0-9_.\-\[\]:%+]{1,64}$")

INSTRUCTION_COLUMNS = ("instruction", "prompt", "question", "query", "input_text", "text")
INPUT_COLUMNS = ("input", "context")
RESPONSE_COLUMNS = ("output", "response", "answer", "completion", "chosen")


@dataclass
class LoadedData:
    """Rows loaded for one visitor, with where they came from and what was cut.

    Attributes:
        rows (`list[dict]`): at most `SpaceLimits.max_rows` rows, as read.
        source (`str`): a description safe to show and to put in a dataset card (never a server path).
        truncated_from (`int`, *optional*): rows available before the cap, when more were available
            (`-1`: more than were read).
    """

    rows: list[dict[str, Any]]
    source: str
    truncated_from: int | None = None
    columns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.columns:
            seen: dict[str, None] = {}
            for row in self.rows[:200]:
                for key in row:
                    seen.setdefault(str(key), None)
            self.columns = list(seen)

    @property
    def kind(self) -> str:
        """`preferences` (PD-ready: rated responses or chosen/rejected pairs) or `instructions`."""
        cols = set(self.columns)
        if {"prompt", "responses"} <= cols or {"prompt", "chosen", "rejected"} <= cols or {"instruction", "completions"} <= cols:
            return "preferences"
        return "instructions"

    def message(self) -> str:
        """One line for the status box: what was loaded, and the cap if it applied."""
        text = f"Loaded **{len(self.rows):,} rows** from {self.source} (columns: {', '.join(self.columns[:12]) or 'none'}"
        text += ", ..." if len(self.columns) > 12 else ""
        text += f"; looks like **{self.kind}** data)."
        if self.truncated_from is not None:
            more = "more" if self.truncated_from < 0 else f"{self.truncated_from:,}"
            text += f" The source has {more} rows; only the first {len(self.rows):,} were kept (the Space's row limit)."
        return text


def _check_rows(rows: list[Any], source: str) -> list[dict[str, Any]]:
    if not rows:
        raise DataError(f"{source} holds no rows.")
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
    if bad is not None:
        raise DataError(f"Row {bad + 1} of {source} is a {type(rows[bad]).__name__}, not an object with named columns.")
    return rows


def _clean_value(value: Any) -> Any:
    """pandas NaN/NaT -> None, numpy scalars -> Python, so rows serialize to JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str, bytes)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return value
    return value


def _read_jsonl(lines: Iterable[str], cap: int, name: str) -> tuple[list[dict], bool]:
    rows: list[dict] = []
    more = False
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if len(rows) >= cap:
            more = True
            break
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DataError(f"Line {line_no} of {name} is not valid JSON ({err.msg}). Fix or remove that line.") from err
    return rows, more


def read_upload(path: str | os.PathLike[str], limits: SpaceLimits | None = None, *, display_name: str | None = None) -> LoadedData:
    """Read an uploaded JSONL/JSON/CSV/Parquet file, refusing big files and keeping at most `limits.max_rows` rows.

    Args:
        path: the file Gradio stored the upload in (never a path typed by the user).
        limits (`SpaceLimits`, *optional*): the caps; defaults to `SpaceLimits.from_env()`.
        display_name (`str`, *optional*): the original file name, for messages and cards.
    """
    limits = limits or SpaceLimits.from_env()
    path = Path(path)
    name = display_name or path.name
    ext = path.suffix.lower()
    if ext not in UPLOAD_TYPES:
        raise ConfigError(f"{name!r}: upload a {', '.join(UPLOAD_TYPES)} file.")
    size_mb = path.stat().st_size / 2**20
    if size_mb > limits.max_upload_mb:
        raise DataError(
            f"{name!r} is {size_mb:.1f} MB; this Space accepts files up to {limits.max_upload_mb:g} MB. "
            "Upload a smaller sample (for example the first few thousand rows)."
        )
    cap = limits.max_rows
    more: bool | int = False
    if ext in (".jsonl", ".json"):
        with open(path, encoding="utf-8") as fh:
            head = fh.read(1 << 16).lstrip()
            fh.seek(0)
            if head.startswith("["):
                try:
                    data = json.load(fh)
                except json.JSONDecodeError as err:
                    raise DataError(f"{name!r} is not valid JSON ({err.msg}).") from err
                if not isinstance(data, list):
                    raise DataError(f"{name!r} must hold a list of objects or one object per line.")
                rows, more = data[:cap], (len(data) if len(data) > cap else False)
            else:
                rows, more = _read_jsonl(fh, cap, repr(name))
    elif ext == ".csv":
        import pandas as pd

        try:
            frame = pd.read_csv(path, nrows=cap + 1)
        except (ValueError, pd.errors.ParserError) as err:
            raise DataError(f"{name!r} could not be read as CSV ({err}).") from err
        more = len(frame) > cap
        rows = [{k: _clean_value(v) for k, v in r.items()} for r in frame.head(cap).to_dict(orient="records")]
    else:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except Exception as err:  # pyarrow raises several unrelated types for a bad file
            raise DataError(f"{name!r} could not be read as Parquet ({type(err).__name__}).") from err
        total = pf.metadata.num_rows
        rows = []
        for batch in pf.iter_batches(batch_size=min(cap, 1024)):
            rows.extend(batch.to_pylist())
            if len(rows) >= cap:
                break
        rows = rows[:cap]
        more = total if total > cap else False
    rows = _check_rows(rows, repr(name))
    truncated = None if more is False else (-1 if more is True else int(more))
    return LoadedData(rows=rows, source=f"the uploaded file `{name}`", truncated_from=truncated)


# ---------------------------------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class SampleSet:
    """A bundled sample: a file under the shared data folder (read at run time, never copied), or generated rows."""

    name: str
    description: str
    kind: str  # "instructions" | "preferences"
    relpath: str | None = None
    generate: Callable[[], list[dict[str, Any]]] | None = None


def default_sample_root() -> Path:
    """`$HF_PREFSEL_SAMPLE_DATA`, else `../shared/data` next to the repository this package was installed from."""
    env = os.environ.get("HF_PREFSEL_SAMPLE_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


_DEMO_INSTRUCTIONS = (
    # Written for this Space; short so that a first run on the embedded CPU model is quick.
    ("Write a haiku about the first snow of winter.", "Silent flakes descend / the garden holds its breath, white / footprints not yet made."),
    ("Explain what a hash table is to a new programmer.", "A hash table stores values under keys. A hash function turns each key into a slot number, so finding a value takes about the same time however many items there are."),
    ("Give three tips for saving money on groceries.", "Plan meals for the week and shop with a list; buy store brands; compare the unit price rather than the package price."),
    ("Translate 'Where is the train station?' into German.", "Wo ist der Bahnhof?"),
    ("Why is the sky blue?", "Air molecules scatter short (blue) wavelengths of sunlight much more than long (red) ones, so blue light reaches our eyes from every direction of the sky."),
    ("Write a Python function that reverses a string.", "def reverse(s: str) -> str:\n    return s[::-1]"),
    ("Summarize the plot of Romeo and Juliet in two sentences.", "Two young lovers from feuding families in Verona marry in secret. A chain of misunderstandings ends with both taking their own lives, which finally reconciles their families."),
    ("What is the difference between weather and climate?", "Weather is the state of the atmosphere over hours or days; climate is the average pattern of weather in a region over decades."),
    ("Suggest a name for a bakery that sells sourdough bread.", "Rise & Crumb"),
    ("How do I fix a 'permission denied' error when running a shell script?", "Make the script executable with `chmod +x script.sh`, or run it through the shell: `bash script.sh`."),
    ("List four renewable sources of energy.", "Solar, wind, hydroelectric and geothermal power."),
    ("Write a polite email declining a meeting invitation.", "Dear Sam,\n\nThank you for the invitation. Unfortunately I cannot attend on Thursday; could you share the notes afterwards?\n\nBest regards,\nAlex"),
    ("What causes inflation?", "Prices rise across the economy when demand grows faster than supply, when production costs rise, or when the money supply expands quickly."),
    ("Plan a one-day itinerary for a rainy day in London.", "Morning at the British Museum, lunch at Borough Market, afternoon at the Tate Modern, and an evening show in the West End."),
    ("Convert 72 degrees Fahrenheit to Celsius.", "(72 - 32) x 5/9 = 22.2 degrees Celsius."),
    ("Explain recursion with an example.", "A recursive function calls itself on a smaller problem. Factorial: n! = n x (n-1)!, with 0! = 1 as the base case."),
)


def demo_instructions() -> list[dict[str, Any]]:
    """16 short instruction/response rows written for the Space (always available)."""
    return [{"id": f"demo-{i}", "instruction": q, "input": "", "output": a} for i, (q, a) in enumerate(_DEMO_INSTRUCTIONS)]


def demo_ratings(n_prompts: int = 40, seed: int = 0) -> list[dict[str, Any]]:
    """Generated multi-aspect preference rows (`{id, prompt, responses: [{text, ratings}]}`), always available.

    The ratings are synthetic: a hidden quality per response plus aspect-specific noise, so some aspects disagree,
    which is exactly what PD measures.
    """
    rng = random.Random(seed)
    aspects = ("helpfulness", "correctness", "fluency")
    rows = []
    for p in range(n_prompts):
        question, answer = _DEMO_INSTRUCTIONS[p % len(_DEMO_INSTRUCTIONS)]
        responses = []
        for variant, text in enumerate((answer, answer.split(".")[0] + ".", "I am not sure, sorry.", answer + " Hope this helps!")):
            quality = [4.0, 2.8, 1.2, 3.6][variant] + rng.gauss(0, 0.6)
            ratings = {a: round(min(5.0, max(1.0, quality + rng.gauss(0, 0.9))), 1) for a in aspects}
            ratings["overall"] = round(min(5.0, max(1.0, quality)), 1)
            responses.append({"text": text, "model": f"variant-{variant}", "ratings": ratings})
        rows.append({"id": f"demo-pref-{p}", "prompt": question, "responses": responses, "source": "generated"})
    return rows


_SHARED_SAMPLES = (
    SampleSet("LIMA training set (1,000 curated instructions)", "StackExchange/wikiHow/Reddit + manual answers (CC BY-NC-SA, research use)",
              "instructions", "instructions/lima_train_1k.jsonl"),
    SampleSet("Self-Instruct seed tasks (175)", "human-written seed tasks (Apache-2.0)", "instructions",
              "instructions/selfinstruct_seed_tasks.jsonl"),
    SampleSet("Alpaca selected subsets, part 1", "Alpaca rows kept by published selection methods (CC BY-NC 4.0)",
              "instructions", "instructions/alpaca_selected_subsets-00.jsonl"),
    SampleSet("Auto-J real user queries (58 scenarios)", "real user queries with scenario labels", "instructions",
              "instructions/autoj_scenario_classification.jsonl"),
    SampleSet("Topical-Chat multi-aspect ratings (60 prompts)", "6 responses per dialogue, human ratings on 6 aspects (MIT)",
              "preferences", "preference_multiaspect/topicalchat_usr_multiaspect.jsonl"),
    SampleSet("SF data2text multi-aspect ratings (978 prompts)", "2-4 utterances per meaning representation, 3 rated aspects (MIT)",
              "preferences", "preference_multiaspect/sf_data2text_multiaspect.jsonl"),
)
_GENERATED_SAMPLES = (
    SampleSet("Tiny demo instructions (16, generated)", "short instruction/response rows written for this Space",
              "instructions", generate=demo_instructions),
    SampleSet("Tiny demo ratings (40 prompts, generated)", "synthetic multi-aspect ratings, for trying PD", "preferences",
              generate=demo_ratings),
)


def available_samples(root: str | os.PathLike[str] | None = None) -> list[SampleSet]:
    """The generated samples, plus every shared-data sample whose file exists under `root`."""
    base = Path(root) if root is not None else default_sample_root()
    shared = [s for s in _SHARED_SAMPLES if s.relpath and (base / s.relpath).is_file()]
    return [*_GENERATED_SAMPLES[:1], *shared, *_GENERATED_SAMPLES[1:]]


def load_sample(name: str, root: str | os.PathLike[str] | None = None, limits: SpaceLimits | None = None) -> LoadedData:
    """Load a sample set by its display name (only names from `available_samples` are accepted)."""
    limits = limits or SpaceLimits.from_env()
    sample = next((s for s in available_samples(root) if s.name == name), None)
    if sample is None:
        raise ConfigError(f"Unknown sample set {name!r}; pick one from the list.")
    if sample.generate is not None:
        rows = sample.generate()
        more = len(rows) > limits.max_rows
        return LoadedData(rows=rows[: limits.max_rows], source=f"the sample set *{sample.name}*",
                          truncated_from=len(rows) if more else None)
    base = Path(root) if root is not None else default_sample_root()
    with open(base / str(sample.relpath), encoding="utf-8") as fh:
        rows, more = _read_jsonl(fh, limits.max_rows, sample.name)
    return LoadedData(rows=_check_rows(rows, sample.name), source=f"the sample set *{sample.name}*",
                      truncated_from=-1 if more else None)


# ---------------------------------------------------------------------------------------------------- Hub


def load_hub_dataset(repo_id: str, split: str = "train", limits: SpaceLimits | None = None, *, config_name: str | None = None) -> LoadedData:
    """Stream the first `limits.max_rows` rows of a Hub dataset, failing fast with a clear message when offline.

    Args:
        repo_id (`str`): e.g. `"tatsu-lab/alpaca"`; only Hub ids are accepted, never local paths.
        split (`str`, defaults to `"train"`).
        limits (`SpaceLimits`, *optional*).
        config_name (`str`, *optional*): the dataset's configuration (subset), if it has several.
    """
    from huggingface_hub import HfApi

    from ..errors import HubUnavailableError

    limits = limits or SpaceLimits.from_env()
    repo_id = (repo_id or "").strip()
    split = (split or "train").strip()
    if not _HUB_ID.match(repo_id) or ".." in repo_id:
        raise ConfigError(f"{repo_id!r} is not a Hub dataset id; write it as 'owner/name' (for example 'tatsu-lab/alpaca').")
    if not _SPLIT.match(split):
        raise ConfigError(f"{split!r} is not a split name such as 'train' or 'test'.")
    if config_name is not None and not _SPLIT.match(config_name):
        raise ConfigError(f"{config_name!r} is not a dataset configuration name.")
    try:
        HfApi().dataset_info(repo_id, timeout=limits.hub_timeout)
    except Exception as exc:  # connection errors, 404, gated repos: all end in one clear message
        kind = type(exc).__name__
        if "NotFound" in kind or "404" in str(exc):
            raise DataError(f"The Hub has no dataset {repo_id!r} (or it is private/gated).") from exc
        raise HubUnavailableError(
            f"The Hugging Face Hub cannot be reached from this Space right now ({kind}). Upload a file or pick a "
            "bundled sample set instead."
        ) from exc
    import datasets

    try:
        stream = datasets.load_dataset(repo_id, config_name, split=split, streaming=True)
        rows = list(itertools.islice(iter(stream), limits.max_rows + 1))
    except Exception as exc:
        raise DataError(f"Could not stream {repo_id!r} split {split!r} ({type(exc).__name__}: {str(exc)[:300]}).") from exc
    more = len(rows) > limits.max_rows
    rows = [{k: _clean_value(v) for k, v in r.items()} for r in rows[: limits.max_rows]]
    return LoadedData(rows=_check_rows(rows, repo_id), source=f"the Hub dataset `{repo_id}` ({split})",
                      truncated_from=-1 if more else None)


# ---------------------------------------------------------------------------------------------------- views of rows


def guess_columns(data: LoadedData) -> dict[str, str | None]:
    """Best guesses for the instruction, input and response columns (None when absent)."""
    cols = data.columns

    def first(names: Iterable[str], exclude: set[str] = set()) -> str | None:
        lower = {c.lower(): c for c in cols}
        return next((lower[n] for n in names if n in lower and lower[n] not in exclude), None)

    instruction = first(INSTRUCTION_COLUMNS) or next((c for c in cols if _is_text_column(data, c)), None)
    used = {instruction} if instruction else set()
    inp = first(INPUT_COLUMNS, used)
    response = first(RESPONSE_COLUMNS, used | ({inp} if inp else set()))
    return {"instruction": instruction, "input": inp, "response": response}


def _is_text_column(data: LoadedData, column: str) -> bool:
    values = [r.get(column) for r in data.rows[:20]]
    return bool(values) and all(isinstance(v, str) for v in values if v is not None)


def text_columns(data: LoadedData) -> list[str]:
    """Columns whose values are text (choices for the column pickers)."""
    return [c for c in data.columns if _is_text_column(data, c)]


def short(value: Any, width: int = 160) -> str:
    """A one-line preview of any cell."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def preview_frame(data: LoadedData, n: int = 8):
    """The first `n` rows as a pandas DataFrame of short strings (nested values shown as JSON)."""
    import pandas as pd

    head = data.rows[:n]
    columns = [c for c in data.columns if any(r.get(c) not in (None, "", [], {}) for r in head)][:10]  # skip empty ones
    return pd.DataFrame([{c: short(r.get(c), 120) for c in columns} for r in head], columns=columns)


def instruction_rows(data: LoadedData, columns: dict[str, str | None], limit: int) -> list[dict[str, str]]:
    """`{id, instruction, input, output}` string rows for the instruction methods; rows without text are skipped."""
    ins = columns.get("instruction")
    if not ins or ins not in data.columns:
        raise ConfigError("Choose the instruction column (the text to tag) in the data section first.")
    inp, out = columns.get("input"), columns.get("response")
    rows: list[dict[str, str]] = []
    for i, row in enumerate(data.rows):
        text = row.get(ins)
        if not isinstance(text, str) or not text.strip():
            continue
        rows.append({
            "id": str(row.get("id", i)),
            "instruction": text,
            "input": _as_text(row.get(inp)) if inp else "",
            "output": _as_text(row.get(out)) if out else "",
        })
        if len(rows) >= limit:
            break
    if not rows:
        raise DataError(f"No row has text in the column {ins!r}.")
    return rows


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def iter_chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive slices of `items` of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
