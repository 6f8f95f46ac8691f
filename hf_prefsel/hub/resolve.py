"""Where an artifact lives: a local folder, or a Hub snapshot limited to the artifact's own files.

From the Hub only `artifact.json`, `tensors.safetensors` and `README.md` are fetched (`allow_patterns`), so a repo can
never make us download, let alone unpickle, anything else. Hub failures become typed errors that say what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ArtifactError, HubUnavailableError
from ._common import LIBRARY_NAME, library_version, network_errors

ARTIFACT_FILE = "artifact.json"
TENSORS_FILE = "tensors.safetensors"
CARD_FILE = "README.md"
REPO_TYPES = ("model", "dataset")


def check_repo_type(repo_type: str) -> None:
    if repo_type not in REPO_TYPES:
        raise ArtifactError(f"repo_type must be one of {', '.join(REPO_TYPES)}, got {repo_type!r}.")


def allow_patterns(subfolder: str | None) -> list[str]:
    """Exact file names to fetch from a repo: never anything but our JSON, safetensors and card."""
    prefix = f"{subfolder}/" if subfolder else ""
    return [prefix + ARTIFACT_FILE, prefix + TENSORS_FILE, prefix + CARD_FILE]


def normalize_subfolder(subfolder: str | None) -> str | None:
    if subfolder is None:
        return None
    cleaned = subfolder.strip().strip("/")
    parts = cleaned.split("/") if cleaned else []
    if any(part in ("", ".", "..") for part in parts):
        raise ArtifactError(
            f"subfolder must be a relative path inside the repo such as 'artifacts/tags', got {subfolder!r}."
        )
    return cleaned or None


def resolve_folder(
    path_or_repo_id: str | os.PathLike[str],
    *,
    revision: str | None,
    repo_type: str,
    token: str | bool | None,
    cache_dir: str | os.PathLike[str] | None,
    subfolder: str | None,
) -> Path:
    """The local folder holding the artifact: the given folder, or a Hub snapshot limited to our files."""
    sub = normalize_subfolder(subfolder)
    local = Path(path_or_repo_id).expanduser()
    if local.is_dir():
        return local / sub if sub else local
    if local.exists():
        raise ArtifactError(
            f"{str(path_or_repo_id)!r} is a file; pass the folder written by `save_pretrained` "
            f"(it holds {ARTIFACT_FILE})."
        )
    check_repo_type(repo_type)
    repo_id = str(path_or_repo_id)

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        snapshot = snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=revision,
            token=token,
            cache_dir=cache_dir,
            allow_patterns=allow_patterns(sub),
            library_name=LIBRARY_NAME,
            library_version=library_version(),
        )
    except HFValidationError as exc:
        raise ArtifactError(
            f"{repo_id!r} is neither an existing local folder nor a valid Hub repo id ('user/name'). Check the path."
        ) from exc
    except GatedRepoError as exc:
        raise ArtifactError(
            f"The Hub repo {repo_id!r} is gated: request access on its page, then pass a token with access."
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ArtifactError(
            f"{repo_id!r} is not a local folder, and no {repo_type} repo of that name was found on the Hub (or it is "
            "private: pass a token). For a dataset repo pass `repo_type='dataset'`."
        ) from exc
    except RevisionNotFoundError as exc:
        raise ArtifactError(f"The Hub {repo_type} repo {repo_id!r} has no revision {revision!r}.") from exc
    except (LocalEntryNotFoundError, *network_errors()) as exc:
        raise HubUnavailableError(
            f"Could not load {repo_id!r}: it is not a local folder and the Hugging Face Hub could not be reached "
            f"({type(exc).__name__}), nor is the repo in the local cache. Pass the path of a local folder written by "
            "`save_pretrained` (or download the repo while online)."
        ) from exc
    folder = Path(snapshot)
    return folder / sub if sub else folder
