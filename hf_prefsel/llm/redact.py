"""Secrets out of error texts: one function for every server body or exception text we store or show.

Error texts end up in `*_error` columns, hence in outputs, the `datasets` cache and Hub pushes, and in
exception messages printed by the CLI. A server answering 401 often echoes the request's headers, so a
bearer token would travel with them. `redact` replaces the value of anything that looks like a
credential, then cuts the text short: a reason, not a dump.
"""

from __future__ import annotations

import re
from typing import Iterable

MASK = "[REDACTED]"

# Length of the short reason kept in error columns and messages.
REASON_CHARS = 200

_KEY_NAMES = (
    r"(?:api[_-]?key|apikey|access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token|token|secret|"
    r"client[_-]?secret|password|passwd|pwd|aws[_-]?secret[_-]?access[_-]?key|x-api-key|api-token|session[_-]?id)"
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # header lines, in HTTP dumps or JSON/dict reprs: the whole value goes
    (re.compile(r"(?i)\b((?:proxy-)?authorization|cookie|set-cookie|x-api-key|api-key)(\"?'?\s*[:=]\s*\"?'?)([^\"'\r\n,}]+)"),
     r"\1\2" + MASK),
    # schemes in free text: "Bearer abc", "Basic abc"
    (re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=-]{6,})"), r"\1\2" + MASK),
    # key=value / "key": "value" for names that hold credentials
    (re.compile(r"(?i)([\"']?\b" + _KEY_NAMES + r"[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;}]+)"), r"\1" + MASK),
    # credentials in URLs: https://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)([^/\s@]+)(@)"), r"\1" + MASK + r"\3"),
    # JSON Web Tokens
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), MASK),
    # well-known key shapes: OpenAI/Anthropic, Hugging Face, GitHub, Google, Slack, AWS access key ids
    (re.compile(r"\bsk-[A-Za-z0-9_-]{12,}"), MASK),
    (re.compile(r"\bhf_[A-Za-z0-9]{16,}"), MASK),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), MASK),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), MASK),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), MASK),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
)


def redact(text: object, *, secrets: Iterable[str | None] = (), limit: int | None = REASON_CHARS) -> str:
    """`text` with credentials replaced by `[REDACTED]`, cut to `limit` characters (`None`: no cut).

    `secrets` are exact values to remove wherever they appear (e.g. the configured token), whatever their
    shape. Redaction runs before the cut, so a secret is never left half-visible at the edge.
    """
    out = str(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            out = out.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        out = pattern.sub(replacement, out)
    out = " ".join(out.split())  # one line: bodies and tracebacks carry newlines
    if limit is not None and len(out) > limit:
        out = out[: limit - 1].rstrip() + "…"
    return out


def error_text(exc: BaseException, *, secrets: Iterable[str | None] = (), limit: int | None = REASON_CHARS) -> str:
    """`"ExceptionName: message"`, redacted and short: the form an exception takes in an error column."""
    return f"{type(exc).__name__}: {redact(exc, secrets=secrets, limit=limit)}"


__all__ = ["MASK", "REASON_CHARS", "error_text", "redact"]
