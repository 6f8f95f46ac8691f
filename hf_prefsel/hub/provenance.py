"""How a curated dataset was made (`Provenance`), made safe to publish: no secrets, no null fields, and nothing that
only means something on this machine (absolute paths, local endpoint URLs).

The same record is rendered into the dataset card and stored machine-readably in its YAML front matter, so it must be
fit to push as is: a card is public as soon as the repo is.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path, PureWindowsPath
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ._common import library_version

REDACTED = "<redacted>"
LOCAL_ENDPOINT = "<local endpoint>"

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
_URL_RE = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"`<>(),;]+")
_BARE_HOST_RE = re.compile(r"(?<![\w.:/-])(localhost|\d{1,3}(?:\.\d{1,3}){3})(:\d{1,5})?(?![\w.-])", re.IGNORECASE)
# An absolute path (POSIX, home-relative or Windows) standing as a word of its own, not the path part of a URL.
_ABS_PATH_RE = re.compile(r"(?<![\w.:/\\-])(~?/[^\s'\"`<>()\[\],;:]+|[A-Za-z]:\\[^\s'\"`<>()\[\],;]+)")
_COMMON_ROOTS = {"home", "Users", "tmp", "var", "mnt", "media", "data", "opt", "root", "private", "srv", "work",
                 "scratch", "content", "workspace", "app", "kaggle"}
_DATA_SUFFIXES = {".jsonl", ".json", ".parquet", ".csv", ".tsv", ".txt", ".arrow", ".gz", ".zst", ".bz2", ".xz",
                  ".yaml", ".yml", ".md"}


def is_local_host(host: str | None) -> bool:
    """Whether a URL's host only means something on this machine or its network (loopback, private, one-label)."""
    if not host:
        return True
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal", ".lan")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host  # "gpu-box": a name only this network resolves
    return address.is_private or address.is_loopback or address.is_link_local or address.is_unspecified


def _local_url(match: re.Match[str]) -> str:
    url = match.group(0)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return LOCAL_ENDPOINT
    scheme = parts.scheme.lower()
    if scheme == "file":
        return Path(parts.path.rstrip("/")).name or LOCAL_ENDPOINT
    if scheme not in ("http", "https", "ws", "wss", "grpc"):
        return url  # hf://datasets/user/name and the like name no machine
    return LOCAL_ENDPOINT if is_local_host(host) else url


def _bare_host(match: re.Match[str]) -> str:
    return LOCAL_ENDPOINT if is_local_host(match.group(1)) else match.group(0)


def _is_machine_path(text: str) -> bool:
    if text.startswith("~") or PureWindowsPath(text).drive:
        return True
    first = text.lstrip("/").split("/", 1)[0]
    return bool(first) and (first in _COMMON_ROOTS or os.path.exists("/" + first))


def _path_name(match: re.Match[str]) -> str:
    text = match.group(0)
    if not _is_machine_path(text):
        return text  # "/v1/chat/completions" is a route, not a file of this machine
    name = PureWindowsPath(text).name if PureWindowsPath(text).drive else Path(text.rstrip("/")).name
    return name or text


def publishable_text(value: str) -> str:
    """`value` without secrets, local endpoint URLs or this machine's absolute paths (a path keeps its file name)."""
    value = _SECRET_VALUE_RE.sub(REDACTED, value)
    value = _URL_RE.sub(_local_url, value)
    value = _BARE_HOST_RE.sub(_bare_host, value)
    return _ABS_PATH_RE.sub(_path_name, value)


def publishable_source(source: str) -> str:
    """The input as the user named it, minus this machine: a Hub id stays, a file path becomes its file name.

    Several inputs may be given separated by spaces (`"a.jsonl b.jsonl"`), as the CLI records them.
    """
    def one(item: str) -> str:
        if "://" in item:
            return publishable_text(item)
        path = Path(item).expanduser()
        looks_like_file = ("/" in item or "\\" in item) and path.suffix.lower() in _DATA_SUFFIXES
        if path.exists() or path.is_absolute() or item.startswith(("~", "./", "../", ".\\")) or looks_like_file:
            return path.name or item
        return publishable_text(item)

    return " ".join(one(item) for item in source.split())


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value)


def publishable(value: Any) -> Any:
    """A JSON/YAML-safe copy fit for a public card.

    Keys naming a credential get `<redacted>`, so do token-like strings; strings lose local endpoint URLs and
    absolute paths (see `publishable_text`); `None` values of mappings are dropped (a card has no `null` fields);
    sets are sorted; numpy values and dataclasses become plain values.
    """
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if _SECRET_KEY_RE.search(str(k)) and not _is_empty(v) else publishable(v))
            for k, v in value.items()
            if v is not None
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [publishable(v) for v in items]
    if isinstance(value, str):
        return publishable_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        try:
            return publishable(value.tolist())
        except (TypeError, ValueError):
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return publishable(dataclasses.asdict(value))
    return publishable_text(str(value))


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass
class Provenance:
    """How a curated dataset was made; rendered into its dataset card and stored in the card's metadata.

    What reaches the card (`to_dict`) is fit to publish: values under keys such as `token`/`api_key` and strings that
    look like tokens (`hf_...`, `sk-...`, `Bearer ...`) become `<redacted>`; URLs of local endpoints
    (`http://127.0.0.1:8080`, `localhost`, private addresses) become `<local endpoint>`; absolute paths of this
    machine keep only their file name; unset (`None`) fields are left out. The object itself keeps what it was given.

    Args:
        method (`str`):
            The method that produced the data, e.g. `"TACOS"`.
        papers (`list[dict]`, *optional*):
            Papers to cite, each `{"title": ..., "arxiv": "2402.01234"}`.
        parameters (`dict`, *optional*):
            The method's parameters (config fields), JSON-safe values.
        model (`str`, *optional*):
            Model id as the endpoint reports it (e.g. `"google/gemma-3-270m"`), or a description. Never a token.
        source (`str`, *optional*):
            Input dataset: a Hub id, or a file path (the card keeps only its file name).
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
        """A JSON/YAML-safe dict fit to publish (what the card stores): see the class docstring for what is removed."""
        return publishable(
            {
                "method": self.method,
                "papers": [{"title": p["title"], "arxiv": p["arxiv"]} for p in self.papers],
                "parameters": dict(self.parameters),
                "model": self.model or None,
                "source": publishable_source(self.source) if self.source else None,
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
