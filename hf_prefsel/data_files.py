"""Reading the input data every front-end takes: local files, saved datasets, Hub ids."""

from __future__ import annotations

import os

from .errors import ConfigError, DataError

_FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


def load_data(path_or_id: str, *, limit: int | None = None, split: str = "train"):
    """Load a local JSON/JSONL/CSV/Parquet file, a folder saved by `save_to_disk`, or a Hub dataset id.

    Files split in parts (`name-00.jsonl`, `name-01.jsonl`, ...) can be given as a glob.
    """
    import glob

    import datasets

    files = sorted(glob.glob(path_or_id)) if any(c in path_or_id for c in "*?[") else []
    if files or os.path.isfile(path_or_id):
        files = files or [path_or_id]
        ext = os.path.splitext(files[0])[1].lower()
        if ext not in _FILE_BUILDERS:
            raise ConfigError(f"Cannot read {files[0]!r}: supported files are {', '.join(_FILE_BUILDERS)}.")
        ds = datasets.load_dataset(_FILE_BUILDERS[ext], data_files=files, split=split)
    elif os.path.isdir(path_or_id):
        ds = datasets.load_from_disk(path_or_id)
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[split]
    elif os.path.sep in path_or_id and not path_or_id.count("/") == 1:
        raise DataError(f"{path_or_id!r} is neither a file nor a folder.")
    else:
        try:
            ds = datasets.load_dataset(path_or_id, split=split)
        except Exception as exc:  # the Hub's offline and not-found errors vary between versions
            raise DataError(
                f"Could not load {path_or_id!r} as a local path or from the Hub ({type(exc).__name__}: {exc}). "
                "Without Hub access, pass a local .jsonl/.csv/.parquet file."
            ) from exc
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return ds


__all__ = ["load_data"]
