"""TaP: taxonomy-guided generation of multilingual SFT and preference data (Jin et al., 2025, arXiv 2506.23979).

Four stages, each usable alone: a `Taxonomy` says what the data should cover and in what proportions;
`PromptGenerator` writes user prompts per taxonomy leaf (× task type × difficulty) in the target language, filtered
for language and near-duplicates and topped up to quota; `ResponseGenerator` answers each prompt several times
(models, temperatures, seeds); `PreferenceJudge` scores every answer on several aspects, and `build_preference_rows`
keeps best-vs-worst pairs whose margin reaches δ. `TaPPipeline` runs them all and returns TRL-ready datasets.

Example:
    >>> from hf_prefsel.tap import Taxonomy, TaPConfig, TaPPipeline
    >>> result = TaPPipeline(config=TaPConfig(language="zh", per_leaf=2, max_leaves=3)).run(Taxonomy.load("default"))
    >>> result.preferences  # Dataset with prompt / chosen / rejected (+ ratings)
"""

from .judge import (
    DEFAULT_ASPECTS,
    PAIR_DROP_REASONS,
    JudgeConfig,
    PairConfig,
    PreferenceJudge,
    build_preference_rows,
    choose_pair,
    judgement_model,
)
from .language import LanguageDetector, LanguageFilterConfig, base_language, language_name
from .pipeline import TAP, TAP_PAPER, TaPConfig, TaPPipeline, TaPReport, TaPResult
from .prompts import DROP_REASONS, PromptGenerationConfig, PromptGenerationReport, PromptGenerator, prompt_list_model
from .responses import ResponseCandidate, ResponseGenerationConfig, ResponseGenerator
from .taxonomy import AxisValue, PromptUnit, Taxonomy, TaxonomyAxis, TaxonomyNode

__all__ = [
    "TAP",
    "AxisValue",
    "DEFAULT_ASPECTS",
    "DROP_REASONS",
    "JudgeConfig",
    "LanguageDetector",
    "LanguageFilterConfig",
    "PAIR_DROP_REASONS",
    "PairConfig",
    "PreferenceJudge",
    "PromptGenerationConfig",
    "PromptGenerationReport",
    "PromptGenerator",
    "PromptUnit",
    "ResponseCandidate",
    "ResponseGenerationConfig",
    "ResponseGenerator",
    "TAP_PAPER",
    "TaPConfig",
    "TaPPipeline",
    "TaPReport",
    "TaPResult",
    "Taxonomy",
    "TaxonomyAxis",
    "TaxonomyNode",
    "base_language",
    "build_preference_rows",
    "choose_pair",
    "judgement_model",
    "language_name",
    "prompt_list_model",
]
