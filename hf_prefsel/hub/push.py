"""Pushing a curated dataset to the Hub with its card and artifacts, without ever losing the result.

The result is written to a local folder first; if the push fails, that folder is kept and the error says where, so a
rejected token or a dropped connection never costs the run. The data goes up with `Dataset.push_to_hub` (Parquet
shards and the `configs`/`dataset_info` metadata `datasets` reads); the card and every artifact then go up together
in one commit, so the card never lists an artifact that is not there. A push that fails raises a typed error saying
what did and did not reach the Hub: nothing half-pushed is ever reported as success.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ConfigError, HfPrefselError, HubPushError, HubUnavailableError
from ._common import LIBRARY_NAME, library_version, network_errors, push_refusal
from .artifact import Artifact
from .card import AnyDataset, build_dataset_card, merge_with_existing_card, splits_of
from .provenance import Provenance
from .save import save_dataset

logger = logging.getLogger(__name__)

_ARTIFACT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _check_artifacts(artifacts: Mapping[str, Artifact] | None) -> dict[str, Artifact]:
    checked = dict(artifacts or {})
    for name, artifact in checked.items():
        if not isinstance(name, str) or not _ARTIFACT_NAME_RE.match(name):
            raise ConfigError(
                f"Artifact name {name!r} is not a valid folder name; use letters, digits, '.', '_' and '-'."
            )
        if not isinstance(artifact, Artifact):
            raise ConfigError(f"artifacts[{name!r}] must be an hf_prefsel Artifact, got {type(artifact).__name__}.")
    return checked


def _new_local_copy(repo_id: str) -> Path:
    """A new folder in the current directory (the system temp folder if that is read-only) for the local copy."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    prefix = f"hf_prefsel-unpushed-{repo_id.replace('/', '--')}-{stamp}-"
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=os.getcwd()))
    except OSError:
        return Path(tempfile.mkdtemp(prefix=prefix))


def _write_local_copy(folder: Path, ds: AnyDataset, provenance: Provenance) -> Path:
    """The data (Parquet, or `save_to_disk` for several splits) and its card, in `folder`."""
    name = "data.parquet" if len(splits_of(ds)) == 1 else "data"
    return save_dataset(ds, folder / name, provenance)


def push_dataset(
    ds: AnyDataset,
    repo_id: str,
    provenance: Provenance,
    *,
    artifacts: Mapping[str, Artifact] | None = None,
    private: bool | None = None,
    token: str | None = None,
    local_copy: str | os.PathLike[str] | bool | None = None,
) -> str:
    """Push a curated dataset to a Hub dataset repo, with its card and the artifacts that produced it.

    First the result (data, card, artifacts) is written to a local folder. Then the data goes up with
    `ds.push_to_hub` (Parquet shards, `configs` metadata), and the card and every artifact (under `artifacts/<name>/`)
    go up together in a single commit. The metadata `datasets` wrote into the README is kept. Everything is checked
    and serialized before anything is uploaded, so a broken artifact fails the call without a half-pushed repo.

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
            Hub token with write access; by default the one saved by `hf auth login`. Never logged or quoted.
        local_copy (`str`, `os.PathLike` or `bool`, *optional*):
            Where the result is written before the upload. By default a new `hf_prefsel-unpushed-...` folder in the
            current directory, removed once the push succeeded and kept if it failed. A path: that folder, kept in
            both cases. `False`: no local copy (the caller still holds the result, e.g. a web app).

    Returns:
        `str`: the URL of the last commit (card and artifacts).

    Raises:
        [`ConfigError`]: invalid provenance, artifact names or `local_copy`.
        [`HubPushError`]: the Hub refused the push (e.g. a wrong or read-only token) or failed; the message says what
            was and was not pushed and where the local copy is (also in its `local_copy` attribute).
        [`HubUnavailableError`]: the Hub could not be reached; the message says where the local copy is.

    Example:

    ```python
    >>> push_dataset(curated, "user/lima-tacos", prov, artifacts={"tag_vocabulary": vocab})
    ```
    """
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import EntryNotFoundError

    if not isinstance(provenance, Provenance):
        raise ConfigError(f"provenance must be a Provenance, got {type(provenance).__name__}.")
    if local_copy is True:
        local_copy = None
    artifacts = _check_artifacts(artifacts)
    card = build_dataset_card(ds, provenance, repo_id=repo_id, artifacts=artifacts)

    with tempfile.TemporaryDirectory(prefix="hf_prefsel_push_") as tmp:
        if local_copy is False:
            folder, keep = Path(tmp) / "result", None
        elif local_copy is None:
            folder = keep = _new_local_copy(repo_id)
        else:
            folder = keep = Path(local_copy).expanduser()
        try:
            for name, artifact in artifacts.items():
                artifact.save_pretrained(folder / "artifacts" / name)
            if keep is not None:
                _write_local_copy(folder, ds, provenance)
        except BaseException:
            if local_copy is None:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        kept = f" Nothing is lost: the result is kept in {keep}." if keep is not None else ""

        api = HfApi(token=token, library_name=LIBRARY_NAME, library_version=library_version())
        stage = "no data was committed"
        try:
            ds.push_to_hub(repo_id, private=private, token=token)
            stage = "the data was pushed, but not the card and artifacts"
            try:
                existing_path = api.hf_hub_download(repo_id, "README.md", repo_type="dataset", cache_dir=tmp)
                existing_text = Path(existing_path).read_text(encoding="utf-8")
            except EntryNotFoundError:
                existing_text = None
            readme = str(merge_with_existing_card(card, existing_text)).encode("utf-8")
            operations = [CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=readme)]
            for path in sorted((folder / "artifacts").rglob("*")) if artifacts else []:
                if path.is_file():
                    operations.append(
                        CommitOperationAdd(path_in_repo=path.relative_to(folder).as_posix(), path_or_fileobj=str(path))
                    )
            info = api.create_commit(
                repo_id=repo_id,
                repo_type="dataset",
                operations=operations,
                commit_message=f"Add hf_prefsel dataset card ({provenance.method})"
                + (f" and {len(artifacts)} artifact(s)" if artifacts else ""),
            )
        except network_errors() as exc:
            raise HubUnavailableError(
                f"Could not reach the Hugging Face Hub to push {repo_id!r} ({type(exc).__name__}); {stage}. Check the "
                f"network (and that HF_HUB_OFFLINE is not set), then push again.{kept}"
            ) from exc
        except HfPrefselError:
            raise
        except Exception as exc:
            refusal = push_refusal(exc, f"the dataset repo {repo_id!r}", token=token)
            if refusal is not None:
                raise HubPushError(f"{refusal} {stage.capitalize()}.{kept}", str(keep) if keep else None) from None
            detail = (str(exc).strip().splitlines() or [""])[0][:200]
            detail = detail.replace(token, "<token>") if token else detail
            raise HubPushError(
                f"Push to the dataset repo {repo_id!r} failed ({type(exc).__name__}: {detail}); {stage}.{kept}",
                str(keep) if keep else None,
            ) from exc
    if local_copy is None and keep is not None:
        shutil.rmtree(keep, ignore_errors=True)
    logger.info("Pushed dataset, card and %d artifact(s) to %s", len(artifacts), repo_id)
    return str(getattr(info, "commit_url", info))
