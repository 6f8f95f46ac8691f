"""Saving a curated dataset locally, with its card: atomically, and never over files hf_prefsel did not write.

Every file is written under a temporary name in the target folder and renamed into place, so an interrupted save
leaves the previous output whole (a reader sees the old file or the new one, never a truncated one). A folder output
is refused when the folder holds anything but a previous `save_to_disk` output and our card, so `--output .` in a
project can never replace its README.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from ..errors import ConfigError
from ._common import LIBRARY_NAME, atomic_write_text, temporary_sibling
from .card import AnyDataset, render_dataset_card, splits_of
from .provenance import Provenance

logger = logging.getLogger(__name__)

FILE_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
SUPPORTED_OUTPUTS = "'.jsonl' or '.json' (JSON lines), '.parquet', or a directory (no extension, `save_to_disk`)"

# What `Dataset.save_to_disk` / `DatasetDict.save_to_disk` write, plus our card.
_OUR_FILES = re.compile(r"^(README\.md|dataset_dict\.json|dataset_info\.json|state\.json|data-\d+-of-\d+\.arrow)$")


def is_our_card(path: Path) -> bool:
    """Whether `path` is a card hf_prefsel wrote (its front matter names the library), so it may be replaced."""
    from huggingface_hub import DatasetCard

    try:
        text = path.read_text(encoding="utf-8")
        if not text.startswith("---"):  # no front matter (DatasetCard would log about it): not ours
            return False
        card = DatasetCard(text, ignore_metadata_errors=True)
    except Exception:  # unreadable or broken front matter: not ours
        return False
    return card.data.to_dict().get("library_name") == LIBRARY_NAME


def _foreign_entries(folder: Path) -> list[str]:
    """Entries of an existing output folder that a previous `save_dataset` would not have written."""
    foreign = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            foreign += [f"{entry.name}/{name}" for name in _foreign_entries(entry)]  # a DatasetDict split
        elif not _OUR_FILES.match(entry.name) or (entry.name == "README.md" and not is_our_card(entry)):
            foreign.append(entry.name)
    return foreign


def _check_target(out: Path, *, is_dir: bool, card_path: Path | None) -> None:
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"Cannot write {out}: {parent} is a file, not a folder. Pick another output path.")
            break
    if is_dir and out.exists():
        if not out.is_dir():
            raise ConfigError(
                f"Cannot save a dataset folder at {out}: it is an existing file. Give a new folder name, or a file "
                f"name with {SUPPORTED_OUTPUTS}."
            )
        foreign = _foreign_entries(out)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise ConfigError(
                f"Refusing to save into {out}: it holds files hf_prefsel did not write ({shown}), which the output "
                "would replace or mix with. Give a new or empty folder, or a file such as 'curated.jsonl'."
            )
    if not is_dir and out.is_dir():
        raise ConfigError(f"Cannot write the file {out}: a folder of that name exists. Pick another output path.")
    if card_path is not None and card_path.exists() and not is_our_card(card_path):
        raise ConfigError(
            f"Refusing to overwrite {card_path}: hf_prefsel did not write it. Pick another output name."
        )


def _replace_folder(tmp: Path, out: Path) -> None:
    """Put the finished folder `tmp` in place of `out` (two renames; the old output is removed only afterwards)."""
    old = None
    if out.exists():
        old = temporary_sibling(out)
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _single_split(ds: AnyDataset, path: Path):
    splits = splits_of(ds)
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
    as `<stem>.README.md`, or as `README.md` inside a directory. Writes are atomic (temporary name, then rename), and
    an existing folder is only replaced if it holds nothing but an earlier output of this function.

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
        [`ConfigError`]: unsupported extension, a multi-split `DatasetDict` to a single file, a folder holding other
            files, a card of that name not written by hf_prefsel, or a parent path that is a file.

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
    splits_of(ds)  # type check before writing anything
    card_path = None if is_dir or provenance is None else out.with_name(f"{out.stem}.README.md")
    _check_target(out, is_dir=is_dir, card_path=card_path)

    if is_dir:
        load_code = f'from datasets import load_from_disk\n\nds = load_from_disk("{out.name}")'
        card = render_dataset_card(ds, provenance, load_code=load_code, pretty_name=out.name) if provenance else None
        tmp = temporary_sibling(out)
        try:
            ds.save_to_disk(str(tmp))
            if card is not None:
                card.save(str(tmp / "README.md"))
            _replace_folder(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        split = _single_split(ds, out)
        load_code = (
            "from datasets import load_dataset\n\n"
            f'ds = load_dataset("{FILE_FORMATS[suffix]}", data_files="{out.name}", split="train")'
        )
        card = render_dataset_card(ds, provenance, load_code=load_code, pretty_name=out.stem) if provenance else None
        tmp = temporary_sibling(out)
        try:
            if FILE_FORMATS[suffix] == "json":
                split.to_json(str(tmp), lines=True, force_ascii=False)
            else:
                split.to_parquet(str(tmp))
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        if card is not None:
            atomic_write_text(card_path, str(card))
    logger.info("Saved %s to %s", type(ds).__name__, out)
    return out
