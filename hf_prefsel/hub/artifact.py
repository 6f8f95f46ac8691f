"""A small base class for hf_prefsel artifacts: save to a folder, load from a folder or the Hub, push to the Hub.

An artifact (tag vocabulary, knowledge tree, taxonomy, ...) is stored as a folder with three files:

- `artifact.json`: `{"artifact_type", "format_version", "library", "library_version", "data"}`, where `data` is
  what the subclass's `to_dict()` returns;
- `tensors.safetensors` (only if the subclass has arrays): the subclass's `tensors()`, saved with
  `safetensors.numpy`;
- `README.md`: a card with YAML front matter (`library_name: hf_prefsel`, tags) and a summary for people.

Loading reads `artifact.json` and `tensors.safetensors` only. From the Hub, `snapshot_download` fetches only those
files and the card, so nothing else in a repo, and certainly no pickle, is ever downloaded or deserialized.

Why not `huggingface_hub.ModelHubMixin`: its `push_to_hub` always uploads to a *model* repo and its
`from_pretrained` has no `repo_type`, while our artifacts also live in dataset repos (next to the curated data they
describe, under `artifacts/<name>/`). It also builds a `config.json` from `__init__` arguments, adds a
`model_hub_mixin` tag and never overwrites an existing README, none of which fits. The base below is a thin layer
over `HfApi` and `snapshot_download` instead.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from ..errors import ArtifactError, HubPushError, HubUnavailableError
from ._common import LIBRARY_NAME, atomic_write_text, library_version, network_errors, push_refusal
from .resolve import ARTIFACT_FILE, CARD_FILE, TENSORS_FILE, check_repo_type, resolve_folder

logger = logging.getLogger(__name__)

_ARTIFACT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*$")

A = TypeVar("A", bound="Artifact")

# artifact_type -> class, filled by `Artifact.__init_subclass__`, used by `Artifact.from_pretrained` to dispatch.
_REGISTRY: dict[str, type[Artifact]] = {}


class Artifact:
    """Base class of hf_prefsel artifacts: a JSON structure plus optional numpy arrays, with a card.

    Subclasses set `artifact_type` (e.g. `"tag_vocabulary"`) and `format_version`, and implement `to_dict` and
    `from_dict`; `tensors` and `card_body` are optional. The base class gives them `save_pretrained`,
    `from_pretrained` and `push_to_hub`, so every artifact is saved, shared and loaded the same way.

    Bump `format_version` when `to_dict` changes shape: a folder written by a newer version is refused with a clear
    error, while `from_dict` may still read older versions (it gets the raw `data` dict).

    Example:

    ```python
    >>> class Vocabulary(Artifact):
    ...     artifact_type = "vocabulary"
    ...     def __init__(self, words, vectors):
    ...         self.words, self.vectors = words, vectors
    ...     def to_dict(self):
    ...         return {"words": self.words}
    ...     def tensors(self):
    ...         return {"vectors": self.vectors}
    ...     @classmethod
    ...     def from_dict(cls, data, tensors):
    ...         return cls(data["words"], tensors["vectors"])
    >>> Vocabulary(["a", "b"], np.zeros((2, 4), dtype=np.float32)).save_pretrained("vocab")
    >>> vocab = Vocabulary.from_pretrained("vocab")  # or a Hub repo id
    ```
    """

    artifact_type: ClassVar[str]
    format_version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        artifact_type = cls.__dict__.get("artifact_type")
        if artifact_type is None:  # an intermediate base class: nothing to register
            return
        if not isinstance(artifact_type, str) or not _ARTIFACT_TYPE_RE.match(artifact_type):
            raise TypeError(
                f"{cls.__qualname__}.artifact_type must be a snake_case string such as 'tag_vocabulary', "
                f"got {artifact_type!r}."
            )
        format_version = cls.format_version
        if not isinstance(format_version, int) or isinstance(format_version, bool) or format_version < 1:
            raise TypeError(f"{cls.__qualname__}.format_version must be an int >= 1, got {format_version!r}.")
        _REGISTRY[artifact_type] = cls

    # ------------------------------------------------------------------ subclass interface

    def to_dict(self) -> dict:
        """Return the artifact's content as a JSON-safe structure (str keys; str, int, float, bool, None, lists)."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement to_dict().")

    @classmethod
    def from_dict(cls: type[A], data: dict, tensors: dict[str, np.ndarray]) -> A:
        """Rebuild the artifact from what `to_dict` and `tensors` returned."""
        raise NotImplementedError(f"{cls.__qualname__} must implement from_dict().")

    def tensors(self) -> dict[str, np.ndarray]:
        """Numeric arrays to store in `tensors.safetensors` rather than in JSON (e.g. embeddings). Default: none."""
        return {}

    def card_body(self) -> str:
        """Markdown summary a person reads on the card (counts, depth, top entries). Default: empty."""
        return ""

    # ------------------------------------------------------------------ save

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> Path:
        """Write the artifact to a folder (`artifact.json`, `tensors.safetensors` if any, `README.md`).

        Everything is serialized before anything is written, so a failing `to_dict` leaves an existing folder
        intact. A stale `tensors.safetensors` from an earlier save is removed when the artifact has no arrays.

        Args:
            save_directory (`str` or `os.PathLike`):
                Folder to write into; created if missing. Other files in it are left alone.

        Returns:
            `Path`: the folder.

        Raises:
            [`ArtifactError`]: `to_dict` is not JSON-safe or `tensors` holds something that is not a numeric array.
        """
        artifact_type = type(self)._require_artifact_type()
        payload = {
            "artifact_type": artifact_type,
            "format_version": type(self).format_version,
            "library": LIBRARY_NAME,
            "library_version": library_version(),
            "data": self._checked_dict(),
        }
        try:
            text = json.dumps(payload, ensure_ascii=False, indent=2, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ArtifactError(
                f"{type(self).__qualname__}.to_dict() returned a value that is not JSON-safe ({exc}). Convert numpy "
                "scalars with `.item()`, arrays with `.tolist()` (or return big arrays from `tensors()`), and replace "
                "NaN/inf by None."
            ) from exc
        arrays = self._checked_tensors()
        card = self._card_text(arrays)

        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / ARTIFACT_FILE, text + "\n")
        tensors_path = directory / TENSORS_FILE
        if arrays:
            from safetensors.numpy import save_file

            tmp = tensors_path.with_name(TENSORS_FILE + ".tmp")
            save_file(arrays, str(tmp), metadata={"artifact_type": artifact_type})
            os.replace(tmp, tensors_path)
        else:
            tensors_path.unlink(missing_ok=True)
        atomic_write_text(directory / CARD_FILE, card)
        return directory

    def _checked_dict(self) -> dict:
        data = self.to_dict()
        if not isinstance(data, dict):
            raise ArtifactError(
                f"{type(self).__qualname__}.to_dict() must return a dict, got {type(data).__name__}."
            )
        return data

    def _checked_tensors(self) -> dict[str, np.ndarray]:
        arrays = self.tensors() or {}
        if not isinstance(arrays, dict):
            raise ArtifactError(
                f"{type(self).__qualname__}.tensors() must return a dict of numpy arrays, got {type(arrays).__name__}."
            )
        checked: dict[str, np.ndarray] = {}
        for name, array in arrays.items():
            if not isinstance(name, str) or not name:
                raise ArtifactError(
                    f"{type(self).__qualname__}.tensors() keys must be non-empty strings, got {name!r}."
                )
            if not isinstance(array, np.ndarray):
                raise ArtifactError(
                    f"{type(self).__qualname__}.tensors()[{name!r}] must be a numpy array, got {type(array).__name__}."
                )
            if array.dtype.kind not in "biuf":
                raise ArtifactError(
                    f"{type(self).__qualname__}.tensors()[{name!r}] has dtype {array.dtype}; only bool, integer and "
                    "float arrays can be stored in safetensors. Put strings and other objects in to_dict()."
                )
            checked[name] = np.ascontiguousarray(array)
        return checked

    def _card_text(self, arrays: dict[str, np.ndarray]) -> str:
        from .card import render_artifact_card

        return str(render_artifact_card(self, arrays))

    # ------------------------------------------------------------------ load

    @classmethod
    def from_pretrained(
        cls: type[A],
        path_or_repo_id: str | os.PathLike[str],
        *,
        revision: str | None = None,
        repo_type: str = "model",
        token: str | bool | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        subfolder: str | None = None,
    ) -> A:
        """Load an artifact from a local folder or a Hub repo.

        A local folder wins over a repo id of the same name. From the Hub only `artifact.json`,
        `tensors.safetensors` and `README.md` are downloaded, so a repo can never make us fetch or unpickle anything
        else. Called on `Artifact` itself, the class is picked from the folder's `artifact_type` (its module must have
        been imported).

        Args:
            path_or_repo_id (`str` or `os.PathLike`):
                A folder written by `save_pretrained`, or a Hub repo id such as `"user/my-taxonomy"`.
            revision (`str`, *optional*):
                Branch, tag or commit of the Hub repo. Defaults to `main`.
            repo_type (`str`, *optional*, defaults to `"model"`):
                `"model"` or `"dataset"` (artifacts pushed with a curated dataset live in its dataset repo).
            token (`str` or `bool`, *optional*):
                Hub token for private repos; by default the one saved by `hf auth login`. Never logged.
            cache_dir (`str` or `os.PathLike`, *optional*):
                Hub cache folder. Defaults to the huggingface_hub cache.
            subfolder (`str`, *optional*):
                Folder inside the folder/repo holding the artifact, e.g. `"artifacts/tags"` for an artifact pushed
                with `push_dataset`.

        Raises:
            [`ArtifactError`]: missing `artifact.json`, wrong `artifact_type`, a `format_version` newer than this
                hf_prefsel supports, or a repo that does not exist.
            [`HubUnavailableError`]: the Hub could not be reached and the repo is not in the cache.

        Example:

        ```python
        >>> tax = Taxonomy.from_pretrained("user/my-dataset", repo_type="dataset", subfolder="artifacts/taxonomy")
        ```
        """
        folder = resolve_folder(
            path_or_repo_id,
            revision=revision,
            repo_type=repo_type,
            token=token,
            cache_dir=cache_dir,
            subfolder=subfolder,
        )
        return cls._load_folder(folder, source=str(path_or_repo_id))

    @classmethod
    def _load_folder(cls: type[A], folder: Path, *, source: str) -> A:
        artifact_path = folder / ARTIFACT_FILE
        if not artifact_path.is_file():
            raise ArtifactError(
                f"{source!r} is not an hf_prefsel artifact: {ARTIFACT_FILE} is missing from {folder}. Point to a "
                "folder written by `save_pretrained` (for an artifact inside a dataset repo, pass "
                "`subfolder='artifacts/<name>'` and `repo_type='dataset'`)."
            )
        try:
            payload = json.loads(artifact_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(
                f"{artifact_path} is not valid JSON ({exc}); the artifact is corrupt, save it again."
            ) from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
            raise ArtifactError(
                f"{artifact_path} does not have the hf_prefsel artifact layout (an object with a 'data' object)."
            )

        found_type = payload.get("artifact_type")
        target = cls._class_for(found_type, source)
        found_version = payload.get("format_version")
        if not isinstance(found_version, int) or isinstance(found_version, bool) or found_version < 1:
            raise ArtifactError(
                f"{artifact_path} has an invalid format_version {found_version!r}; expected an int >= 1."
            )
        if found_version > target.format_version:
            raise ArtifactError(
                f"{source!r} holds a {found_type!r} artifact in format version {found_version}, but this hf_prefsel "
                f"({library_version()}) reads up to version {target.format_version}. It was written by hf_prefsel "
                f"{payload.get('library_version', '?')}: upgrade with `pip install -U hf_prefsel`."
            )

        tensors: dict[str, np.ndarray] = {}
        tensors_path = folder / TENSORS_FILE
        if tensors_path.is_file():
            from safetensors.numpy import load_file

            try:
                tensors = load_file(str(tensors_path))
            except Exception as exc:  # safetensors raises its own SafetensorError and OSError
                raise ArtifactError(f"{tensors_path} could not be read ({exc}); the artifact is corrupt.") from exc
        return target.from_dict(payload["data"], tensors)  # type: ignore[return-value]

    @classmethod
    def _class_for(cls, found_type: Any, source: str) -> type[Artifact]:
        """The class to build for a folder holding `found_type`; refuses a mismatch with a typed error."""
        own_type = getattr(cls, "artifact_type", None)
        if own_type is not None:
            if found_type != own_type:
                other = _REGISTRY.get(found_type) if isinstance(found_type, str) else None
                hint = f" Load it with `{other.__qualname__}.from_pretrained`." if other is not None else ""
                raise ArtifactError(
                    f"{source!r} holds a {found_type!r} artifact, not a {own_type!r} one, so "
                    f"{cls.__qualname__} cannot load it.{hint}"
                )
            return cls
        if not isinstance(found_type, str) or found_type not in _REGISTRY:
            known = ", ".join(sorted(_REGISTRY)) or "none"
            raise ArtifactError(
                f"{source!r} holds an artifact of unknown type {found_type!r} (known types: {known}). Import the "
                "module defining it, or call `from_pretrained` on its class."
            )
        return _REGISTRY[found_type]

    @classmethod
    def _require_artifact_type(cls) -> str:
        artifact_type = getattr(cls, "artifact_type", None)
        if not isinstance(artifact_type, str):
            raise ArtifactError(
                f"{cls.__qualname__} has no `artifact_type`; set it as a class attribute, e.g. "
                "`artifact_type = 'tag_vocabulary'`."
            )
        return artifact_type

    # ------------------------------------------------------------------ push

    def push_to_hub(
        self,
        repo_id: str,
        *,
        repo_type: str = "model",
        private: bool | None = None,
        token: str | None = None,
        commit_message: str | None = None,
    ) -> str:
        """Save the artifact to a temporary folder and upload it to a Hub repo in one commit.

        The repo is created if needed (`exist_ok`), so pushing again updates it.

        Args:
            repo_id (`str`):
                Repo id, e.g. `"user/my-taxonomy"`.
            repo_type (`str`, *optional*, defaults to `"model"`):
                `"model"` or `"dataset"`.
            private (`bool`, *optional*):
                Visibility of a newly created repo; `None` keeps the account's default.
            token (`str`, *optional*):
                Hub token with write access; by default the one saved by `hf auth login`. Never logged.
            commit_message (`str`, *optional*):
                Defaults to `"Upload <artifact_type> with hf_prefsel"`.

        Returns:
            `str`: the URL of the commit.

        Raises:
            [`HubPushError`]: the Hub refused the push (a wrong or read-only token, another user's namespace); one
                line saying what to do, never quoting the token.
            [`HubUnavailableError`]: the Hub could not be reached.
        """
        check_repo_type(repo_type)
        from huggingface_hub import HfApi

        artifact_type = type(self)._require_artifact_type()
        message = commit_message or f"Upload {artifact_type} with hf_prefsel"
        api = HfApi(token=token, library_name=LIBRARY_NAME, library_version=library_version())
        with tempfile.TemporaryDirectory(prefix="hf_prefsel_artifact_") as tmp:
            folder = self.save_pretrained(Path(tmp) / "artifact")
            try:
                repo_url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
                info = api.upload_folder(
                    repo_id=getattr(repo_url, "repo_id", None) or repo_id,
                    repo_type=repo_type,
                    folder_path=folder,
                    commit_message=message,
                )
            except network_errors() as exc:
                raise HubUnavailableError(
                    f"Could not reach the Hugging Face Hub to push {artifact_type!r} to {repo_id!r} "
                    f"({type(exc).__name__}). Check the network (and that HF_HUB_OFFLINE is not set), or keep it "
                    "local with `save_pretrained(folder)`."
                ) from exc
            except Exception as exc:
                refusal = push_refusal(exc, f"the {repo_type} repo {repo_id!r}", token=token)
                if refusal is None:
                    raise
                raise HubPushError(
                    f"{refusal} Nothing was uploaded; keep the {artifact_type} locally with `save_pretrained(folder)`."
                ) from None
        logger.info("Pushed %s artifact to %s repo %s", artifact_type, repo_type, repo_id)
        return str(getattr(info, "commit_url", info))
