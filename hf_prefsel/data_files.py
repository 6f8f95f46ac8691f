"""Loading the rows a pipeline runs on: a local file, a glob of files, a saved dataset folder, or a Hub dataset id.

Broken input fails here, before any model is started, with one typed error that names the file, the line and
what to do: an empty file, a line that is not JSON, a UTF-16 or Latin-1 file (checked up front, not halfway through
a paid run), a folder that is not a saved dataset, a path that does not exist (not sent to the Hub unless it looks
like `owner/name`, and then only when the Hub answers quickly), a `limit` below 1.
"""

from __future__ import annotations

import difflib
import glob
import json
import os
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, DataError, HubUnavailableError
from .llm.redact import error_text

if TYPE_CHECKING:
    import datasets

# file suffix -> `datasets` builder
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
_TEXT_BUILDERS = ("json", "csv", "text")
_SAVED_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
_CHUNK = 1 << 20
# how long to wait for the Hub to say whether an `owner/name` id exists before giving up
HUB_LOOKUP_TIMEOUT = 5.0


def load_data(path_or_id: str, *, limit: int | None = None, split: str = "train") -> "datasets.Dataset":
    """Load a local JSON/JSONL/CSV/Parquet/text file, a folder saved by `save_to_disk`, or a Hub dataset id.

    Files split in parts (`name-00.jsonl`, `name-01.jsonl`, ...) can be given as a glob.

    Raises:
        `ConfigError`: `limit` is below 1, or the file type is not supported.
        `DataError`: the input is missing, empty or unreadable; the message names the file and line.
        `HubUnavailableError`: an `owner/name` id that is no local path, with the Hub out of reach.
    """
    check_limit(limit)
    files = _local_files(path_or_id)
    if files is not None:
        ds = _load_files(files, split)
    elif os.path.isdir(path_or_id):
        ds = _load_folder(path_or_id, split)
    else:
        ds = _load_hub(path_or_id, split)
    if len(ds) == 0:
        raise DataError(f"{path_or_id} holds no rows (e.g. a header without data): nothing to run on. Pass data with rows.")
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return ds


def check_limit(limit: Any) -> None:
    """`limit` is unset or a whole number of rows >= 1."""
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be a number of rows >= 1, got {limit!r}. Leave it unset to use every row.")


# -- local files ---------------------------------------------------------------------------------------------
def _local_files(path: str) -> list[str] | None:
    """The files `path` names (a file or a glob), or None when it names none and is no glob."""
    if any(c in path for c in "*?["):
        files = sorted(f for f in glob.glob(path) if os.path.isfile(f))
        if not files:
            raise DataError(f"No file matches {path!r} (looked from {os.getcwd()}). Check the pattern.")
        return files
    return [path] if os.path.isfile(path) else None


def _load_files(files: list[str], split: str) -> "datasets.Dataset":
    import datasets

    builders = {_builder(f) for f in files}
    if len(builders) > 1:
        raise ConfigError(f"{files[0]} and the other files mix formats ({', '.join(sorted(builders))}); pass one format.")
    builder = builders.pop()
    for path in files:
        check_file(path)
    try:
        return datasets.load_dataset(builder, data_files=files, split=split)
    except Exception as exc:  # datasets/pyarrow/pandas errors name no line: find it ourselves
        raise _explain(files, builder, exc) from exc


def _builder(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in FILE_BUILDERS:
        raise ConfigError(f"Cannot read {path!r}: supported files are {', '.join(FILE_BUILDERS)}.")
    return FILE_BUILDERS[ext]


def check_file(path: str) -> None:
    """Raise `DataError` for a file that cannot hold rows: empty, not UTF-8 text, not Parquet."""
    builder = _builder(path)
    if os.path.getsize(path) == 0:
        raise DataError(f"{path} is empty (0 bytes): it holds no rows. Check that you passed the file with your data.")
    if builder == "parquet":
        with open(path, "rb") as fh:
            if fh.read(4) != b"PAR1":
                raise DataError(f"{path} is not a Parquet file (it does not start with PAR1). Check its suffix.")
        return
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        raise DataError(
            f"{path} is UTF-16 (or UTF-32) text; rows must be UTF-8. Convert it, e.g. "
            f"`iconv -f UTF-16 -t UTF-8 {path} > {_utf8_name(path)}`, and pass that file."
        )
    if not _check_utf8(path):
        raise DataError(f"{path} holds only blank lines: no rows. Check that you passed the file with your data.")


def _check_utf8(path: str) -> bool:
    """Raise `DataError` at the first byte that is not UTF-8, naming its line; return whether the file has any
    non-blank character."""
    line, carry, content = 1, b"", False
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            data = carry + chunk
            if not data:
                return content
            try:
                text = data.decode("utf-8")
                carry = b""
            except UnicodeDecodeError as exc:
                if chunk and exc.reason == "unexpected end of data":  # a character split across two chunks
                    text, carry = data[: exc.start].decode("utf-8"), data[exc.start :]
                else:
                    before = data[: exc.start]
                    where = line + before.count(b"\n")
                    column = len(before) - (before.rfind(b"\n") + 1) + 1
                    raise DataError(
                        f"{path}, line {where}, character {column}: byte 0x{data[exc.start]:02x} is not UTF-8 text; the "
                        f"file looks like Latin-1/Windows-1252. Save it as UTF-8 (e.g. `iconv -f WINDOWS-1252 -t UTF-8 "
                        f"{path} > {_utf8_name(path)}`) and pass that file."
                    ) from None
            content = content or bool(text.strip())
            line += text.count("\n")
            if not chunk:
                return content


def _utf8_name(path: str) -> str:
    stem, ext = os.path.splitext(path)
    return f"{stem}.utf8{ext}"


def _explain(files: list[str], builder: str, exc: BaseException) -> DataError:
    """A `DataError` for a file `datasets` could not load: the first bad line when we can find it."""
    if builder == "json":
        for path in files:
            problem = first_bad_json_line(path)
            if problem:
                return DataError(f"{path}, {problem}. Fix or remove that line and run again.")
    cause = _innermost(exc)
    where = files[0] if len(files) == 1 else f"{files[0]} (or another of the {len(files)} files)"
    return DataError(f"Could not read {where}: {error_text(cause)}. Fix the file (or convert it to JSONL) and run again.")


def first_bad_json_line(path: str) -> str | None:
    """Where a JSON Lines file (or a JSON array file) stops being rows: `"line N, column C: why"`, or None."""
    with open(path, encoding="utf-8-sig") as fh:
        text_start = fh.read(1024).lstrip()
    if text_start.startswith("["):  # one JSON array of rows
        with open(path, encoding="utf-8-sig") as fh:
            try:
                rows = json.load(fh)
            except json.JSONDecodeError as err:
                return f"line {err.lineno}, column {err.colno}: not valid JSON ({err.msg})"
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                return f"item {i} of the array: a JSON {type(row).__name__} where an object (one row) was expected"
        return None
    with open(path, encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line.rstrip("\r\n"))  # with the newline, an unclosed row is reported on "line 2"
            except json.JSONDecodeError as err:
                return f"line {number}, column {err.colno}: not valid JSON ({err.msg})"
            if not isinstance(row, dict):
                return f"line {number}: a JSON {type(row).__name__} where an object (one row) was expected"
    return None


def _innermost(exc: BaseException) -> BaseException:
    """The root cause: `datasets` wraps the reader's error (which says what was wrong) in a generic one."""
    seen = {id(exc)}
    while (nxt := exc.__cause__ or exc.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        exc = nxt
    return exc


# -- folders -------------------------------------------------------------------------------------------------
def _load_folder(path: str, split: str) -> "datasets.Dataset":
    import datasets

    if not any(os.path.exists(os.path.join(path, name)) for name in _SAVED_DATASET_MARKERS):
        data = sorted(f for f in os.listdir(path) if os.path.splitext(f)[1].lower() in FILE_BUILDERS)
        if data:
            ext = os.path.splitext(data[0])[1]
            hint = f" It holds {len(data)} data file(s) such as {data[0]!r}: pass '{os.path.join(path, '*' + ext)}' to read them."
        else:
            hint = f" It holds no data file ({', '.join(FILE_BUILDERS)})."
        raise DataError(f"{path} is a folder but not a dataset saved with `save_to_disk` (no dataset_info.json).{hint}")
    try:
        ds = datasets.load_from_disk(path)
    except Exception as exc:
        raise DataError(f"{path} looks like a saved dataset but cannot be loaded: {error_text(_innermost(exc))}") from exc
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataError(f"{path} has the splits {', '.join(ds)}, not {split!r}: choose one of them as the split.")
        ds = ds[split]
    return ds


# -- Hub ids -------------------------------------------------------------------------------------------------
def looks_like_hub_id(path: str) -> bool:
    """`owner/name`, not a data file name, and no local folder called `owner` (then it is a mistyped local path)."""
    parts = path.split("/")
    if len(parts) != 2 or not all(parts) or path.startswith((".", "~")) or "\\" in path:
        return False
    if os.path.splitext(path)[1].lower() in FILE_BUILDERS or os.path.isdir(parts[0]):
        return False
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    return all(set(part) <= allowed for part in parts)


def _load_hub(path: str, split: str) -> "datasets.Dataset":
    import datasets

    if not looks_like_hub_id(path):
        raise DataError(_missing(path))
    if _hub_offline():
        raise DataError(
            f"{_missing(path)} It is not read as a Hub dataset id either: Hub access is off (HF_HUB_OFFLINE or "
            "HF_DATASETS_OFFLINE is set)."
        )
    _check_hub_dataset(path)
    try:
        return datasets.load_dataset(path, split=split)
    except Exception as exc:
        raise DataError(f"Could not load the Hub dataset {path!r}: {error_text(_innermost(exc))}") from exc


def _check_hub_dataset(repo_id: str) -> None:
    """Ask the Hub, within `HUB_LOOKUP_TIMEOUT` seconds, whether `repo_id` is a dataset there."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().dataset_info(repo_id, timeout=HUB_LOOKUP_TIMEOUT)
    except GatedRepoError:
        raise DataError(
            f"The Hub dataset {repo_id!r} is gated: accept its conditions on https://huggingface.co/datasets/{repo_id} "
            "and log in (`hf auth login`), or pass a local file."
        ) from None
    except RepositoryNotFoundError:
        raise DataError(f"{_missing(repo_id)} No Hub dataset has that id either (or it is private to another account).") from None
    except HfHubHTTPError as exc:
        raise HubUnavailableError(
            f"{repo_id!r} is no local path, and the Hub could not say whether it is a dataset id "
            f"({error_text(exc)}). Check the path, or retry later."
        ) from None
    except Exception as exc:  # timeouts, DNS, refused connections
        raise HubUnavailableError(
            f"{repo_id!r} is no local path, and the Hub did not answer within {HUB_LOOKUP_TIMEOUT:g} s to look it up "
            f"as a dataset id ({error_text(exc)}). Check the path; without network, pass a local file."
        ) from None


def _hub_offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get("HF_DATASETS_OFFLINE", ""), os.environ.get("HF_HUB_OFFLINE", ""))
    return bool(constants.is_offline_mode()) or any(f.upper() in ("1", "ON", "YES", "TRUE") for f in flags)


def _missing(path: str) -> str:
    """`path` does not exist; the closest names in its folder, if any."""
    folder, name = os.path.split(path)
    hint = ""
    if os.path.isdir(folder or "."):
        close = difflib.get_close_matches(name, os.listdir(folder or "."), n=3, cutoff=0.6)
        if close:
            hint = " Did you mean " + " or ".join(repr(os.path.join(folder, c)) for c in close) + "?"
    return f"{path!r} is not a file or folder (looked from {os.getcwd()}).{hint}"


__all__ = ["FILE_BUILDERS", "HUB_LOOKUP_TIMEOUT", "check_file", "check_limit", "first_bad_json_line", "load_data",
           "looks_like_hub_id"]
