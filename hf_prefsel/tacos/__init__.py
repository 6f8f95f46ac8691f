"""TACOS: open intent tagging, tag normalization, clustering, comparative scoring, selection.

Paper: "TACOS: Open Tagging and Comparative Scoring for Instruction Fine-Tuning Data
Selection" (He et al., ICME 2025, arXiv 2507.03673); released code `hexixiang/OpenCS`.
"""

from .cluster import TagClusterConfig, TagClusterer, cluster_members, dedup_by_label_set
from .likelihood import IFDScorer
from .normalize import NormalizationStep, TagNormalizer, TagNormalizerConfig, fpgrowth
from .scorer import ComparativeScorer, ComparativeScorerConfig, ScoringReport, SingletonScorer
from .select import SelectionConfig, SelectionPlan, plan_selection, select_dataset, select_indices
from .tagger import PLAIN_TAGGING_PROMPT, TAGGING_PROMPT, IntentTag, OpenTagger, OpenTaggerConfig
from .vocabulary import TagVocabulary

from .pipeline import TACOS, TacosConfig, TacosPipeline, TacosResult, TaggingResult

__all__ = [
    "TaggingResult",
    "TacosResult",
    "TacosPipeline",
    "TacosConfig",
    "TACOS",
    "ComparativeScorer",
    "ComparativeScorerConfig",
    "IFDScorer",
    "IntentTag",
    "ScoringReport",
    "SingletonScorer",
    "NormalizationStep",
    "OpenTagger",
    "OpenTaggerConfig",
    "SelectionConfig",
    "SelectionPlan",
    "TAGGING_PROMPT",
    "PLAIN_TAGGING_PROMPT",
    "TagClusterConfig",
    "TagClusterer",
    "TagNormalizer",
    "TagNormalizerConfig",
    "TagVocabulary",
    "cluster_members",
    "dedup_by_label_set",
    "fpgrowth",
    "plan_selection",
    "select_dataset",
    "select_indices",
]
