"""Publishing curated datasets: a dataset card that records how the data was made, local saving and Hub pushing.

The card is what makes a curated dataset reusable: it says which method selected or generated the rows, with which
parameters, model and source, how many rows went in and out, what the LLM calls cost, and which papers to cite. The
same record is stored machine-readably in the card's YAML front matter under `hf_prefsel`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ..errors import ConfigError, HubUnavailableError
from .artifact import LIBRARY_NAME, Artifact, _network_errors, library_version

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict
    from huggingface_hub import DatasetCard

logger = logging.getLogger(__name__)

AnyDataset = Union["Dataset", "DatasetDict"]

FILE_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
SUPPORTED_OUTPUTS = "'.jsonl' or '.json' (JSON lines), '.parquet', or a directory (no extension, `save_to_disk`)"

# Keys whose values are credentials: "token", "hf_token", "api_key", "password"... but not counters such as
# "max_tokens" or "prompt_tokens".
_SECRET_KEY_RE = re.compile(
    r"(^|[_-])(token|api[_-]?key|apikey|(secret|private)([_-]?key)?|password|passwd|authorization|bearer"
    r"|credentials?)$",
    re.IGNORECASE,
)
_SECRET_VALUE_RE = re.compile(
    r"(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_\-]{16,}|api_org_[A-Za-z0-9]{20,}|Bearer\s+[A-Za-z0-9._\-]{10,})"
)
_ARTIFACT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
REDACTED = "<redacted>"


def _redact_text(value: str) -> str:
    return _SECRET_VALUE_RE.sub(REDACTED, value)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value)


def _json_safe(value: Any) -> Any:
    """A JSON/YAML-safe copy with secrets removed: keys naming a credential get `<redacted>`, token-like strings too."""
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if _SECRET_KEY_RE.search(str(k)) and not _is_empty(v) else _json_safe(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [_json_safe(v) for v in items]
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        try:
            return _json_safe(value.tolist())
        except (TypeError, ValueError):
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _json_safe(dataclasses.asdict(value))
    return _redact_text(str(value))


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass
class Provenance:
    """How a curated dataset was made; rendered into its dataset card and stored in the card's metadata.

    Secrets never reach the card: values under keys such as `token`/`api_key` and strings that look like tokens
    (`hf_...`, `sk-...`, `Bearer ...`) are replaced by `<redacted>` when the provenance is serialized.

    Args:
        method (`str`):
            The method that produced the data, e.g. `"TACOS"`.
        papers (`list[dict]`, *optional*):
            Papers to cite, each `{"title": ..., "arxiv": "2402.01234"}`.
        parameters (`dict`, *optional*):
            The method's parameters (config fields), JSON-safe values.
        model (`str`, *optional*):
            Model id or endpoint description (e.g. `"gemma-3-270m (llama.cpp, 127.0.0.1)"`). Never a token.
        source (`str`, *optional*):
            Input dataset path or Hub id.
        counts (`dict`, *optional*):
            Numbers worth keeping: `rows_in`, `rows_out`, `llm_calls`, `prompt_tokens`, `completion_tokens`,
            `failures`, ...
        selection_budget (`int` or `float`, *optional*):
            The selection budget (a row count, or a fraction of the pool).
        library_version (`str`, *optional*):
            Filled with the installed hf_prefsel version.
        created (`str`, *optional*):
            ISO 8601 UTC timestamp; filled with the current time.

    Example:

    ```python
    >>> prov = Provenance(
    ...     method="TACOS",
    ...     papers=[{"title": "TACOS: ...", "arxiv": "2410.00000"}],
    ...     parameters={"n_clusters": 64},
    ...     model="google/gemma-3-270m",
    ...     source="lima_train_1k.jsonl",
    ...     counts={"rows_in": 1000, "rows_out": 200, "llm_calls": 1000},
    ...     selection_budget=200,
    ... )
    ```
    """

    method: str
    papers: list[dict[str, str]] = dataclasses.field(default_factory=list)
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    model: str | None = None
    source: str | None = None
    counts: dict[str, int | float] = dataclasses.field(default_factory=dict)
    selection_budget: int | float | None = None
    library_version: str = dataclasses.field(default_factory=library_version)
    created: str = dataclasses.field(default_factory=_utc_now)

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method.strip():
            raise ConfigError(f"Provenance.method must be a non-empty string such as 'TACOS', got {self.method!r}.")
        if not isinstance(self.papers, list):
            raise ConfigError("Provenance.papers must be a list of {'title': ..., 'arxiv': ...} dicts.")
        for paper in self.papers:
            if (
                not isinstance(paper, Mapping)
                or not isinstance(paper.get("title"), str)
                or not isinstance(paper.get("arxiv"), str)
            ):
                raise ConfigError(
                    f"Each paper must be a dict with string 'title' and 'arxiv' (e.g. '2402.01234'), got {paper!r}."
                )
        if not isinstance(self.parameters, Mapping):
            raise ConfigError(f"Provenance.parameters must be a dict, got {type(self.parameters).__name__}.")
        if not isinstance(self.counts, Mapping):
            raise ConfigError(f"Provenance.counts must be a dict, got {type(self.counts).__name__}.")
        for key, value in self.counts.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "item"):
                raise ConfigError(f"Provenance.counts[{key!r}] must be a number, got {value!r}.")
        if self.model is not None and not isinstance(self.model, str):
            raise ConfigError(
                f"Provenance.model must be a string (model id or endpoint), got {type(self.model).__name__}."
            )
        if self.source is not None and not isinstance(self.source, str):
            self.source = str(self.source)  # a Path is fine
        if self.selection_budget is not None and (
            isinstance(self.selection_budget, bool) or not isinstance(self.selection_budget, (int, float))
        ):
            raise ConfigError(f"Provenance.selection_budget must be a number, got {self.selection_budget!r}.")

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-safe dict with secrets redacted (what the card stores)."""
        return _json_safe(
            {
                "method": self.method,
                "papers": [{"title": p["title"], "arxiv": p["arxiv"]} for p in self.papers],
                "parameters": dict(self.parameters),
                "model": self.model,
                "source": self.source,
                "counts": dict(self.counts),
                "selection_budget": self.selection_budget,
                "library_version": self.library_version,
                "created": self.created,
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """Rebuild a `Provenance` from `to_dict()` output (e.g. read back from a card's metadata)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"Unknown Provenance fields: {', '.join(sorted(unknown))}.")
        return cls(**dict(data))


# ---------------------------------------------------------------------- card


def size_category(num_rows: int) -> str:
    """The Hub's `size_categories` label for a row count (e.g. `"1K<n<10K"`)."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
        (10_000_000_000, "1B<n<10B"),
        (100_000_000_000, "10B<n<100B"),
        (1_000_000_000_000, "100B<n<1T"),
    ]
    for bound, label in bounds:
        if num_rows < bound:
            return label
    return "n>1T"


def _splits(ds: AnyDataset) -> dict[str, Any]:
    from datasets import Dataset, DatasetDict

    if isinstance(ds, DatasetDict):
        return dict(ds.items())
    if isinstance(ds, Dataset):
        return {str(ds.split) if ds.split is not None else "train": ds}
    raise ConfigError(f"Expected a datasets.Dataset or DatasetDict, got {type(ds).__name__}.")


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = text.replace("|", "\\|").replace("\n", " ")
    return f"`{text}`" if text else "` `"


def _format_count(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.4g}"
    if isinstance(value, (int, float)):
        return f"{int(value):,}"
    return str(value)


def _card_body(
    ds: AnyDataset,
    prov: dict[str, Any],
    *,
    title: str,
    load_code: str,
    artifacts: Mapping[str, Artifact] | None,
    repo_id: str | None,
) -> str:
    splits = _splits(ds)
    total = sum(split.num_rows for split in splits.values())
    first = next(iter(splits.values()), None)
    columns = first.column_names if first is not None else []
    counts = prov["counts"]

    what = f"This dataset was built with **{prov['method']}** using hf_prefsel {prov['library_version']}"
    if prov["source"]:
        what += f", from `{prov['source']}`"
    what += "."
    if "rows_in" in counts and "rows_out" in counts:
        what += f" {_format_count(counts['rows_in'])} rows went in, {_format_count(counts['rows_out'])} came out."

    lines = [f"# {title}", "", what, ""]
    lines += ["## How it was made", ""]
    lines.append(f"- **Method:** {prov['method']}")
    if prov["model"]:
        lines.append(f"- **Model / endpoint:** `{prov['model']}`")
    if prov["source"]:
        lines.append(f"- **Source data:** `{prov['source']}`")
    if prov["selection_budget"] is not None:
        lines.append(f"- **Selection budget:** {_format_count(prov['selection_budget'])}")
    lines.append(f"- **Library:** hf_prefsel {prov['library_version']}")
    lines.append(f"- **Created:** {prov['created']}")
    lines.append("")

    lines += ["## Parameters", ""]
    if prov["parameters"]:
        lines += ["| parameter | value |", "| --- | --- |"]
        lines += [f"| {name} | {_cell(value)} |" for name, value in sorted(prov["parameters"].items())]
    else:
        lines.append("No parameters recorded.")
    lines.append("")

    lines += ["## Counts", ""]
    if counts:
        lines += ["| count | value |", "| --- | --- |"]
        lines += [f"| {name} | {_format_count(value)} |" for name, value in counts.items()]
    else:
        lines.append("No counts recorded.")
    lines.append("")

    lines += ["## Data", "", f"{total:,} rows; columns: " + (", ".join(f"`{c}`" for c in columns) or "none") + ".", ""]
    if len(splits) > 1 or next(iter(splits), "train") != "train":
        lines += ["| split | rows |", "| --- | --- |"]
        lines += [f"| {name} | {split.num_rows:,} |" for name, split in splits.items()]
        lines.append("")

    lines += ["## How to load", "", "```python", load_code, "```", ""]

    if artifacts:
        lines += ["## Artifacts", "", "Stored in this repo next to the data:", ""]
        for name, artifact in artifacts.items():
            cls = type(artifact)
            location = f"artifacts/{name}"
            lines.append(f"- `{location}/`: a `{cls.artifact_type}` artifact ({cls.__qualname__}).")
        name, artifact = next(iter(artifacts.items()))
        cls = type(artifact)
        lines += [
            "",
            "```python",
            f"from {cls.__module__} import {cls.__qualname__}",
            "",
            f'{name.replace("-", "_").replace(".", "_")} = {cls.__qualname__}.from_pretrained(',
            f'    "{repo_id or "<repo id>"}", repo_type="dataset", subfolder="artifacts/{name}"',
            ")",
            "```",
            "",
        ]

    if prov["papers"]:
        lines += ["## Citation", "", "Please cite the method's paper(s):", ""]
        lines += [f"- {p['title']} ([arXiv:{p['arxiv']}](https://arxiv.org/abs/{p['arxiv']}))" for p in prov["papers"]]
        lines.append("")
    return "\n".join(lines)


def _card(
    ds: AnyDataset,
    provenance: Provenance,
    *,
    load_code: str,
    repo_id: str | None = None,
    artifacts: Mapping[str, Artifact] | None = None,
    pretty_name: str | None = None,
) -> DatasetCard:
    from huggingface_hub import DatasetCard, DatasetCardData

    if not isinstance(provenance, Provenance):
        raise ConfigError(f"provenance must be a Provenance, got {type(provenance).__name__}.")
    prov = provenance.to_dict()
    total = sum(split.num_rows for split in _splits(ds).values())
    title = pretty_name or (repo_id.split("/")[-1] if repo_id else f"{prov['method']} curated dataset")
    tags = [LIBRARY_NAME, prov["method"].lower().replace(" ", "-")]
    if artifacts:
        tags += sorted({type(a).artifact_type for a in artifacts.values()})
    data = DatasetCardData(
        pretty_name=title,
        size_categories=[size_category(total)],
        tags=list(dict.fromkeys(tags)),
        library_name=LIBRARY_NAME,
        hf_prefsel=prov,
    )
    body = _card_body(ds, prov, title=title, load_code=load_code, artifacts=artifacts, repo_id=repo_id)
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def build_dataset_card(
    ds: AnyDataset,
    provenance: Provenance,
    *,
    repo_id: str | None = None,
    artifacts: Mapping[str, Artifact] | None = None,
) -> DatasetCard:
    """Build the dataset card of a curated dataset from its provenance.

    The card says what was done (method, model, source), lists the parameters and counts, cites the papers and shows
    how to load the data, so the dataset can be trusted and reproduced. Its metadata has `library_name: hf_prefsel`,
    tags, the Hub size category and the full provenance under `hf_prefsel`.

    Args:
        ds (`Dataset` or `DatasetDict`):
            The curated data (only its size, splits and columns are read).
        provenance (`Provenance`):
            How it was made.
        repo_id (`str`, *optional*):
            The Hub repo the card is for, used in the loading snippet and title.
        artifacts (`Mapping[str, Artifact]`, *optional*):
            Artifacts stored in the repo under `artifacts/<name>/`, listed with a loading snippet.

    Returns:
        `huggingface_hub.DatasetCard`.

    Example:

    ```python
    >>> card = build_dataset_card(curated, prov, repo_id="user/lima-tacos")
    >>> card.save("README.md")
    ```
    """
    load_code = (
        f'from datasets import load_dataset\n\nds = load_dataset("{repo_id}")'
        if repo_id
        else 'from datasets import load_dataset\n\nds = load_dataset("<repo id>")'
    )
    return _card(ds, provenance, load_code=load_code, repo_id=repo_id, artifacts=artifacts)


# ---------------------------------------------------------------------- local save


def _single_split(ds: AnyDataset, path: Path) -> Dataset:
    splits = _splits(ds)
    if len(splits) != 1:
        raise ConfigError(
            f"{path.name!r} is a single file, but the DatasetDict has {len(splits)} splits "
            f"({', '.join(splits)}). Save to a directory (a path without extension), or pick a split: `ds['train']`."
        )
    return next(iter(splits.values()))


def save_dataset(ds: AnyDataset, path: str | os.PathLike[str], provenance: Provenance | None = None) -> Path:
    """Save a curated dataset locally, in the format given by the path's extension, with its card.

    One call covers the usual outputs: `.jsonl`/`.json` write JSON lines, `.parquet` a Parquet file, and a path
    without extension (or an existing directory) `save_to_disk`. With a provenance the card is written next to a file
    as `<stem>.README.md`, or as `README.md` inside a directory.

    Args:
        ds (`Dataset` or `DatasetDict`):
            The data. A `DatasetDict` needs a directory unless it has a single split.
        path (`str` or `os.PathLike`):
            Output file or directory; parent folders are created.
        provenance (`Provenance`, *optional*):
            If given, a dataset card is written too.

    Returns:
        `Path`: the file or directory written.

    Raises:
        [`ConfigError`]: unsupported extension, or a multi-split `DatasetDict` to a single file.

    Example:

    ```python
    >>> save_dataset(curated, "out/lima_tacos.jsonl", prov)   # also writes out/lima_tacos.README.md
    ```
    """
    out = Path(path).expanduser()
    suffix = out.suffix.lower()
    is_dir = out.is_dir() or suffix == ""
    if not is_dir and suffix not in FILE_FORMATS:
        raise ConfigError(
            f"Cannot save a dataset to {out.name!r}: unknown extension {out.suffix!r}. Use {SUPPORTED_OUTPUTS}."
        )
    if provenance is not None and not isinstance(provenance, Provenance):
        raise ConfigError(f"provenance must be a Provenance, got {type(provenance).__name__}.")
    _splits(ds)  # type check before writing anything

    if is_dir:
        out.mkdir(parents=True, exist_ok=True)
        ds.save_to_disk(str(out))
        card_path = out / "README.md"
        load_code = f'from datasets import load_from_disk\n\nds = load_from_disk("{out.name}")'
    else:
        split = _single_split(ds, out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if FILE_FORMATS[suffix] == "json":
            split.to_json(str(out), lines=True, force_ascii=False)
        else:
            split.to_parquet(str(out))
        card_path = out.with_name(f"{out.stem}.README.md")
        load_code = (
            "from datasets import load_dataset\n\n"
            f'ds = load_dataset("{FILE_FORMATS[suffix]}", data_files="{out.name}", split="train")'
        )

    if provenance is not None:
        card = _card(ds, provenance, load_code=load_code, pretty_name=out.stem or out.name)
        card.save(str(card_path))
    logger.info("Saved %s to %s", type(ds).__name__, out)
    return out


# ---------------------------------------------------------------------- Hub push


def _merge_with_existing_card(new_card: DatasetCard, existing_text: str | None) -> DatasetCard:
    """Keep what `datasets` wrote into the README metadata (`configs`, `dataset_info`) and add ours on top."""
    from huggingface_hub import DatasetCard, DatasetCardData

    if not existing_text:
        return new_card
    try:
        existing = DatasetCard(existing_text, ignore_metadata_errors=True)
    except Exception:  # a hand-written README with broken front matter: ours replaces it
        logger.warning("The existing README.md front matter could not be parsed; replacing it.")
        return new_card
    merged = existing.data.to_dict()
    ours = new_card.data.to_dict()
    tags = list(dict.fromkeys(list(merged.get("tags") or []) + list(ours.get("tags") or [])))
    merged.update(ours)
    merged["tags"] = tags
    return DatasetCard(f"---\n{DatasetCardData(**merged).to_yaml()}\n---\n\n{new_card.text.lstrip()}")


def push_dataset(
    ds: AnyDataset,
    repo_id: str,
    provenance: Provenance,
    *,
    artifacts: Mapping[str, Artifact] | None = None,
    private: bool | None = None,
    token: str | None = None,
) -> str:
    """Push a curated dataset to a Hub dataset repo, with its card and the artifacts that produced it.

    The data goes up with `ds.push_to_hub` (Parquet shards, `configs` metadata); then the card and every artifact
    (under `artifacts/<name>/`) go up together in a single commit, so the card never lists an artifact that is not
    there. The metadata `datasets` wrote into the README is kept. Artifacts are serialized before anything is
    uploaded, so a broken artifact fails the call without a half-pushed repo.

    Args:
        ds (`Dataset` or `DatasetDict`):
            The curated data.
        repo_id (`str`):
            Dataset repo id, e.g. `"user/lima-tacos"`; created if missing.
        provenance (`Provenance`):
            How the data was made (goes into the card).
        artifacts (`Mapping[str, Artifact]`, *optional*):
            Artifacts to store next to the data, by folder name (letters, digits, `.`, `_`, `-`).
        private (`bool`, *optional*):
            Visibility of a newly created repo.
        token (`str`, *optional*):
            Hub token with write access; by default the one saved by `hf auth login`. Never logged.

    Returns:
        `str`: the URL of the last commit (card and artifacts).

    Raises:
        [`ConfigError`]: invalid provenance or artifact names.
        [`HubUnavailableError`]: the Hub could not be reached.

    Example:

    ```python
    >>> push_dataset(curated, "user/lima-tacos", prov, artifacts={"tag_vocabulary": vocab})
    ```
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import EntryNotFoundError

    if not isinstance(provenance, Provenance):
        raise ConfigError(f"provenance must be a Provenance, got {type(provenance).__name__}.")
    artifacts = dict(artifacts or {})
    for name, artifact in artifacts.items():
        if not isinstance(name, str) or not _ARTIFACT_NAME_RE.match(name):
            raise ConfigError(
                f"Artifact name {name!r} is not a valid folder name; use letters, digits, '.', '_' and '-'."
            )
        if not isinstance(artifact, Artifact):
            raise ConfigError(f"artifacts[{name!r}] must be an hf_prefsel Artifact, got {type(artifact).__name__}.")
    card = build_dataset_card(ds, provenance, repo_id=repo_id, artifacts=artifacts)

    api = HfApi(token=token, library_name=LIBRARY_NAME, library_version=library_version())
    with tempfile.TemporaryDirectory(prefix="hf_prefsel_push_") as tmp, tempfile.TemporaryDirectory() as cache:
        staging = Path(tmp)
        for name, artifact in artifacts.items():
            artifact.save_pretrained(staging / "artifacts" / name)
        try:
            ds.push_to_hub(repo_id, private=private, token=token)
            try:
                existing_path = api.hf_hub_download(repo_id, "README.md", repo_type="dataset", cache_dir=cache)
                existing_text = Path(existing_path).read_text(encoding="utf-8")
            except EntryNotFoundError:
                existing_text = None
            _merge_with_existing_card(card, existing_text).save(str(staging / "README.md"))
            info = api.upload_folder(
                repo_id=repo_id,
                repo_type="dataset",
                folder_path=staging,
                commit_message=f"Add hf_prefsel dataset card ({provenance.method})"
                + (f" and {len(artifacts)} artifact(s)" if artifacts else ""),
            )
        except _network_errors() as exc:
            raise HubUnavailableError(
                f"Could not reach the Hugging Face Hub to push {repo_id!r} ({type(exc).__name__}). Check the network "
                "(and that HF_HUB_OFFLINE is not set), or save locally with `save_dataset(ds, path, provenance)`."
            ) from exc
    logger.info("Pushed dataset, card and %d artifact(s) to %s", len(artifacts), repo_id)
    return str(getattr(info, "commit_url", info))
