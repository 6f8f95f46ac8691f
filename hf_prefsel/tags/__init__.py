"""TAGS: atomic knowledge concepts, a knowledge tree, tree-aware information-gain sampling.

Paper: "From Tags to Trees: Structuring Fine-Grained Knowledge for Controllable Data Selection in
LLM Instruction Tuning" (Niu et al., arXiv 2601.13995). Where the paper is silent the choices are
ours; each module's docstrings say which.
"""

from .concepts import CHECKER_PROMPT, CONCEPT_PROMPT, ConceptTagger, ConceptTaggerConfig
from .ground import GroundingConfig, GroundingReport, TreeGrounder, ground_dataset, grounding_report
from .metric import (
    TreeInformationConfig,
    TreeInformationMeasurement,
    kl_divergence,
    leaf_distribution,
    node_mass,
    node_weights,
    resolve_quality,
    tree_information,
)
from .namer import LLMNamer
from .sample import (
    AlignedSamplerConfig,
    GlobalSamplerConfig,
    SelectionResult,
    sample_aligned,
    sample_global,
    select_from_dataset,
)
from .tree import KnowledgeTree, KnowledgeTreeConfig, Namer, canonicalize_concept

from .pipeline import TAGS, TagsConfig, TagsPipeline, TagsResult

__all__ = [
    "TagsResult",
    "TagsPipeline",
    "TagsConfig",
    "TAGS",
    "AlignedSamplerConfig",
    "CHECKER_PROMPT",
    "CONCEPT_PROMPT",
    "ConceptTagger",
    "ConceptTaggerConfig",
    "GlobalSamplerConfig",
    "GroundingConfig",
    "GroundingReport",
    "KnowledgeTree",
    "KnowledgeTreeConfig",
    "LLMNamer",
    "Namer",
    "SelectionResult",
    "TreeGrounder",
    "TreeInformationConfig",
    "TreeInformationMeasurement",
    "canonicalize_concept",
    "ground_dataset",
    "grounding_report",
    "kl_divergence",
    "leaf_distribution",
    "node_mass",
    "node_weights",
    "resolve_quality",
    "sample_aligned",
    "sample_global",
    "select_from_dataset",
    "tree_information",
]
