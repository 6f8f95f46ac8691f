"""One entry point per Space tab; a method whose library pieces are missing says exactly what is missing."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError, HfPrefselError
from ..llm import LLMConfig
from .data import LoadedData
from .runs import RunResult, run_pd, run_tacos


class MethodUnavailable(HfPrefselError):
    """A method tab cannot run because the library pieces it needs are not in this build."""


def missing_pieces(requirements: dict[str, tuple[str, ...]]) -> list[str]:
    """`module.name` strings of the `requirements` ({module: names}) that cannot be imported."""
    missing = []
    for module_name, names in requirements.items():
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # ImportError, or a module mid-rewrite raising anything
            missing.append(f"{module_name} ({type(exc).__name__}: {str(exc)[:120]})")
            continue
        missing.extend(f"{module_name}.{n}" for n in names if not hasattr(module, n))
    return missing


def _require(method: str, requirements: dict[str, tuple[str, ...]]) -> None:
    missing = missing_pieces(requirements)
    if missing:
        raise MethodUnavailable(f"{method} is not available in this build: missing {', '.join(missing)}.")


def tacos(data: LoadedData, columns: dict[str, str | None], llm: LLMConfig, **params: Any) -> RunResult:
    """The TACOS tab."""
    return run_tacos(data, columns, llm, **params)


def pd(data: LoadedData, **params: Any) -> RunResult:
    """The PD tab (ratings; no model)."""
    return run_pd(data, **params)


TAGS_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "hf_prefsel.tags.concepts": ("ConceptTagger",),
    "hf_prefsel.tags.tree": ("KnowledgeTree", "KnowledgeTreeConfig"),
    "hf_prefsel.tags.ground": ("ground_dataset", "GroundingConfig"),
    "hf_prefsel.tags.sample": ("select_from_dataset", "GlobalSamplerConfig"),
    "hf_prefsel.tags.metric": ("tree_information",),
}


def tags(data: LoadedData, columns: dict[str, str | None], llm: LLMConfig, **params: Any) -> RunResult:
    """The TAGS tab."""
    _require("TAGS", TAGS_REQUIREMENTS)
    from .tags_run import run_tags

    return run_tags(data, columns, llm, **params)


TAP_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "hf_prefsel.tap.taxonomy": ("Taxonomy",),
}


def tap_taxonomy_choices() -> list[str]:
    """Taxonomies the TaP tab offers: the shipped ones, then one built from the loaded data's labels."""
    names: list[str] = []
    try:
        from ..tap.taxonomy import Taxonomy

        names = list(Taxonomy.available())
    except Exception:  # TaP missing or mid-rewrite: the run says what is missing
        names = []
    return [*names, FROM_DATA]


FROM_DATA = "built from the loaded data's label column (category, scenario...)"


def tap(data: LoadedData | None, instruction_column: str | None, llm: LLMConfig, *, taxonomy: str, **params: Any) -> RunResult:
    """The TaP tab."""
    _require("TaP", TAP_REQUIREMENTS)
    from .tap_run import run_tap

    if taxonomy == FROM_DATA and data is None:
        raise ConfigError("Load labelled data first, or pick a shipped taxonomy.")
    return run_tap(data, instruction_column, llm, taxonomy=taxonomy, from_data_label=FROM_DATA, **params)


__all__ = ["FROM_DATA", "MethodUnavailable", "missing_pieces", "pd", "tacos", "tags", "tap", "tap_taxonomy_choices"]
