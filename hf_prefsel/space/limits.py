"""Per-request bounds of the Space, so one visitor cannot occupy the shared CPU (or the Hub token) for long."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from ..errors import ConfigError


@dataclass(frozen=True)
class SpaceLimits:
    """Caps applied to every request. Each field can be set with `HF_PREFSEL_SPACE_<FIELD>` (upper case).

    Args:
        max_upload_mb (`float`, defaults to 20): uploaded files larger than this are refused before reading.
        max_rows (`int`, defaults to 5000): rows kept when loading data (the first ones; the user is told).
        max_llm_rows (`int`, defaults to 200): rows one LLM run (TACOS, TAGS, TaP) may process.
        max_calls (`int`, defaults to 1000): LLM calls one run may pay for (cache hits are free).
        max_pd_rows (`int`, defaults to 5000): input rows one PD run may read.
        max_tap_prompts (`int`, defaults to 60): prompts one TaP run may generate.
        table_rows (`int`, defaults to 200): rows shown in result tables (downloads hold everything).
        hub_timeout (`float`, defaults to 10): seconds to wait for the Hub before saying it is unreachable.
    """

    max_upload_mb: float = 20.0
    max_rows: int = 5000
    max_llm_rows: int = 200
    max_calls: int = 1000
    max_pd_rows: int = 5000
    max_tap_prompts: int = 60
    table_rows: int = 200
    hub_timeout: float = 10.0

    @classmethod
    def from_env(cls, **overrides: float | int) -> "SpaceLimits":
        """Defaults, then `HF_PREFSEL_SPACE_*` environment variables, then `overrides`."""
        values: dict[str, float | int] = {}
        for f in fields(cls):
            raw = os.environ.get(f"HF_PREFSEL_SPACE_{f.name.upper()}")
            if raw is not None:
                try:
                    values[f.name] = float(raw) if f.type in ("float", float) else int(raw)
                except ValueError as exc:
                    raise ConfigError(f"HF_PREFSEL_SPACE_{f.name.upper()}={raw!r} is not a number.") from exc
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
