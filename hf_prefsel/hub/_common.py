"""Small pieces every hub module needs: the library's name and version, Hub tags, network errors, atomic writes."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

LIBRARY_NAME = "hf_prefsel"

_TAG_JUNK_RE = re.compile(r"[^a-z0-9]+")


def library_version() -> str:
    """The installed hf_prefsel version (imported lazily so this module never triggers a circular import)."""
    from .. import __version__

    return __version__


def hub_tag(text: str) -> str:
    """`text` as a Hub tag: lowercase letters, digits and single hyphens (`"TACOS stage A"` -> `"tacos-stage-a"`).

    The Hub accepts other characters, but tags are what people filter by: one spelling per idea keeps the filter
    useful, and a tag such as `open-intent-tagging-(tacos-stage-a)` would match nothing anyone types.
    """
    return _TAG_JUNK_RE.sub("-", str(text).lower()).strip("-")


def hub_tags(*texts: str) -> list[str]:
    """Valid, distinct Hub tags in the given order (empty ones dropped)."""
    return list(dict.fromkeys(tag for tag in map(hub_tag, texts) if tag))


def network_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "the Hub could not be reached", whichever HTTP client huggingface_hub uses."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    errors: list[type[BaseException]] = [OfflineModeIsEnabled, ConnectionError, TimeoutError]
    for module_name in ("httpx2", "httpx"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        transport_error = getattr(module, "TransportError", None)
        if isinstance(transport_error, type):
            errors.append(transport_error)
    return tuple(errors)


def temporary_sibling(path: Path) -> Path:
    """A fresh, hidden name next to `path` (same folder, hence same file system, so `os.replace` is atomic).

    Only a name: the caller creates the file or folder, with the usual permissions (`mkstemp` would make it 0600).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that a reader (or a crash) sees the old file or the new one, never half of it."""
    tmp = temporary_sibling(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def push_refusal(exc: BaseException, target: str, *, token: str | None = None) -> str | None:
    """One line saying why the Hub refused a push to `target` and what to do, or None if `exc` is no HTTP refusal.

    The token is never quoted, even if a server echoed it.
    """
    from huggingface_hub.errors import HfHubHTTPError

    if not isinstance(exc, HfHubHTTPError):
        return None
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 401:
        reason = ("the Hub rejected the token (401 Unauthorized). Pass a valid token with write access "
                  "(`hf auth login`, or `token=`)")
    elif status == 403:
        reason = ("the token may not write there (403 Forbidden). Use a write token of that user or organization, "
                  "or a repo under your own name")
    elif status == 404:
        reason = "the Hub answered 404 Not Found. Check the repo id and that the namespace exists"
    else:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = f"the Hub answered {status or 'an error'}: {first_line[:200]}"
    message = f"Push to {target} failed: {reason}."
    return message.replace(token, "<token>") if token else message
