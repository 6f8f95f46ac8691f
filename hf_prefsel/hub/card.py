"""Cards: the dataset card of a curated dataset and the card of an artifact, rendered from the templates shipped in
`hf_prefsel/hub/templates/` with `huggingface_hub`'s `from_template`.

A card is what makes a curated dataset reusable: it says which method selected or generated the rows, with which
parameters, model and source, how many rows went in and out, what the LLM calls cost, and which papers to cite. Its
content comes from `Provenance.to_dict()`, so it holds no secret, local URL, absolute path or `null` field.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ..errors import ConfigError
from ._common import LIBRARY_NAME, hub_tags, library_version
from .provenance import Provenance

if TYPE_CHECKING:
    import numpy as np
    from datasets import Dataset, DatasetDict
    from huggingface_hub import DatasetCard, ModelCard

    from .artifact import Artifact

logger = logging.getLogger(__name__)

AnyDataset = Union["Dataset", "DatasetDict"]

TEMPLATES = Path(__file__).with_name("templates")
DATASET_CARD_TEMPLATE = TEMPLATES / "dataset_card.md"
ARTIFACT_CARD_TEMPLATE = TEMPLATES / "artifact_card.md"


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


def splits_of(ds: AnyDataset) -> dict[str, Dataset]:
    """`{split name: Dataset}` of a `Dataset` (one split, `train` unless named) or a `DatasetDict`."""
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


def _artifact_rows(artifacts: Mapping[str, Artifact] | None) -> list[dict[str, str]]:
    rows = []
    for name, artifact in (artifacts or {}).items():
        cls = type(artifact)
        variable = name.replace("-", "_").replace(".", "_")
        rows.append({"name": name, "type": cls.artifact_type, "cls": cls.__qualname__, "module": cls.__module__,
                     "variable": variable})
    return rows


def render_dataset_card(
    ds: AnyDataset,
    provenance: Provenance,
    *,
    load_code: str,
    repo_id: str | None = None,
    artifacts: Mapping[str, Artifact] | None = None,
    pretty_name: str | None = None,
) -> DatasetCard:
    """The dataset card of `ds` from the shipped template; `build_dataset_card` fills `load_code` for a Hub repo."""
    from huggingface_hub import DatasetCard, DatasetCardData

    if not isinstance(provenance, Provenance):
        raise ConfigError(f"provenance must be a Provenance, got {type(provenance).__name__}.")
    prov = provenance.to_dict()
    splits = splits_of(ds)
    total = sum(split.num_rows for split in splits.values())
    first = next(iter(splits.values()), None)
    columns = first.column_names if first is not None else []
    counts = prov.get("counts", {})
    title = pretty_name or (repo_id.split("/")[-1] if repo_id else f"{prov['method']} curated dataset")
    artifact_rows = _artifact_rows(artifacts)
    data = DatasetCardData(
        pretty_name=title,
        size_categories=[size_category(total)],
        tags=hub_tags(LIBRARY_NAME, prov["method"], *(row["type"] for row in artifact_rows)),
        library_name=LIBRARY_NAME,
        hf_prefsel=prov,
    )
    show_splits = len(splits) > 1 or next(iter(splits), "train") != "train"
    return DatasetCard.from_template(
        data,
        template_path=str(DATASET_CARD_TEMPLATE),
        title=title,
        prov=prov,
        rows_in=_format_count(counts["rows_in"]) if "rows_in" in counts else None,
        rows_out=_format_count(counts["rows_out"]) if "rows_out" in counts else None,
        budget=_format_count(prov["selection_budget"]) if "selection_budget" in prov else None,
        parameters=[(name, _cell(value)) for name, value in sorted(prov.get("parameters", {}).items())],
        counts=[(name, _format_count(value)) for name, value in counts.items()],
        total=f"{total:,}",
        columns=", ".join(f"`{c}`" for c in columns) or "none",
        splits=[(name, f"{split.num_rows:,}") for name, split in splits.items()] if show_splits else [],
        load_code=load_code,
        artifacts=artifact_rows,
        repo_id=repo_id,
    )


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
    Hub tags, the Hub size category and the provenance under `hf_prefsel`. It is fit to publish as is: see
    `Provenance` for what is kept out.

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
    load_code = f'from datasets import load_dataset\n\nds = load_dataset("{repo_id or "<repo id>"}")'
    return render_dataset_card(ds, provenance, load_code=load_code, repo_id=repo_id, artifacts=artifacts)


def merge_with_existing_card(new_card: DatasetCard, existing_text: str | None) -> DatasetCard:
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
    tags = list(dict.fromkeys([*(merged.get("tags") or []), *(ours.get("tags") or [])]))  # theirs kept as written
    merged.update(ours)
    merged["tags"] = tags
    return DatasetCard(f"---\n{DatasetCardData(**merged).to_yaml()}\n---\n\n{new_card.text.lstrip()}")


def render_artifact_card(artifact: Artifact, arrays: dict[str, np.ndarray]) -> ModelCard:
    """The card of an artifact folder: what it is, its summary (`card_body`), its arrays and how to load it."""
    from huggingface_hub import CardData, ModelCard

    from .artifact import ARTIFACT_FILE, CARD_FILE, TENSORS_FILE

    cls = type(artifact)
    files = [f"`{ARTIFACT_FILE}` (content)"] + ([f"`{TENSORS_FILE}` (arrays)"] if arrays else [])
    return ModelCard.from_template(
        CardData(library_name=LIBRARY_NAME, tags=hub_tags(LIBRARY_NAME, cls.artifact_type, "hf-prefsel-artifact")),
        template_path=str(ARTIFACT_CARD_TEMPLATE),
        title=cls.artifact_type.replace("_", " ").capitalize(),
        artifact_type=cls.artifact_type,
        format_version=cls.format_version,
        version=library_version(),
        body=(artifact.card_body() or "").strip(),
        arrays=[(name, str(a.dtype), str(tuple(a.shape))) for name, a in sorted(arrays.items())],
        module=cls.__module__,
        class_name=cls.__qualname__,
        files=", ".join(files + [f"`{CARD_FILE}` (this card)"]),
    )
