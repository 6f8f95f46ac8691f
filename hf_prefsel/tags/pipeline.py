"""TAGS end to end: knowledge concepts → knowledge tree → grounding → information-gain (optionally KL-aligned) sampling."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, MissingColumnError
from ..llm import LLMConfig
from ..llm.describe import describe_llm
from ..llm.executor import Executor, LocalExecutor
from ..result import Method, MethodResult, RunReport, check_size, rows_to_keep
from .concepts import ConceptTagger, ConceptTaggerConfig
from .ground import GroundingConfig, ground_dataset
from .metric import tree_information
from .namer import LLMNamer
from .sample import AlignedSamplerConfig, GlobalSamplerConfig, select_from_dataset
from .tree import KnowledgeTree, KnowledgeTreeConfig

TAGS = Method(
    name="TAGS",
    title="From Tags to Trees: Structuring Fine-Grained Knowledge for Controllable Data Selection in LLM Instruction Tuning",
    arxiv="2601.13995",
    tags=("tags", "data-selection", "knowledge-tree"),
)


@dataclass
class TagsConfig:
    """Everything a TAGS run needs besides the data and the model.

    Args:
        budget (`int`, *optional*): rows to select. Give this or `ratio`.
        ratio (`float`, *optional*): share of the rows to select, in (0, 1] (the paper reports 5%: 0.05).
        instruction_column (`str`, defaults to `"instruction"`): the instruction text.
        input_column (`str`, *optional*, defaults to `"input"`): extra input appended to the instruction when present.
        messages_column (`str`, *optional*): read the user turns of this chat column instead of the instruction.
        check_rounds (`int`, defaults to 0): concept checker rounds after extraction (one call per changing row each).
        batch_size (`int`, defaults to 16): rows per map batch sent to the concept tagger at once.
        tree (`KnowledgeTreeConfig`): how concepts are clustered into the tree (its seed is `seed`).
        llm_names (`bool`, defaults to `False`): name tree parents with the LLM (default: key terms, no calls).
        grounding (`GroundingConfig`): how concepts are matched to the tree's leaves.
        sampler (`AlignedSamplerConfig`): the information objective and the alignment settings (its budget is
            set from `budget`/`ratio`; without a target only the global sampler's fields are used).
        quality_column (`str`, *optional*): a numeric column used as quality q(x) (default: uniform).
        seed (`int`, defaults to 0): seed of the tree's k-means and of the random baseline.
    """

    budget: int | None = None
    ratio: float | None = None
    instruction_column: str = "instruction"
    input_column: str | None = "input"
    messages_column: str | None = None
    check_rounds: int = 0
    batch_size: int = 16
    tree: KnowledgeTreeConfig = field(default_factory=KnowledgeTreeConfig)
    llm_names: bool = False
    grounding: GroundingConfig = field(default_factory=GroundingConfig)
    sampler: AlignedSamplerConfig = field(default_factory=AlignedSamplerConfig)
    quality_column: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_size(self.budget, self.ratio, owner="TagsConfig")
        if self.budget is None and self.ratio is None:
            raise ConfigError("TagsConfig: give budget (rows to select) or ratio (a share of the rows, e.g. 0.05).")
        if self.batch_size < 1 or self.check_rounds < 0:
            raise ConfigError("TagsConfig: batch_size must be >= 1 and check_rounds >= 0.")

    def check_columns(self, columns: list[str]) -> None:
        """The columns this run reads exist (checked before a server starts or a model is called)."""
        first = "messages_column" if self.messages_column else "instruction_column"
        for option in (first, "quality_column"):
            name = getattr(self, option)
            if name is not None and name not in columns:
                raise MissingColumnError(name, columns, option=option)

    def tree_config(self) -> KnowledgeTreeConfig:
        return dataclasses.replace(self.tree, seed=self.seed)

    def sampler_config(self, n: int, aligned: bool) -> GlobalSamplerConfig:
        k = max(1, rows_to_keep(n, budget=self.budget, ratio=self.ratio))
        if aligned:
            return dataclasses.replace(self.sampler, budget=k, ratio=None)
        fields = {f.name: getattr(self.sampler, f.name) for f in dataclasses.fields(GlobalSamplerConfig)}
        return GlobalSamplerConfig(**{**fields, "budget": k, "ratio": None})

    def parameters(self) -> dict[str, Any]:
        return {"budget": self.budget, "ratio": self.ratio, "check_rounds": self.check_rounds, "tree_ratio": self.tree.ratio,
                "llm_names": self.llm_names, "ground_threshold": self.grounding.threshold,
                "quality_column": self.quality_column, "mu": self.sampler.mu, "seed": self.seed}


@dataclass
class TagsResult(MethodResult):
    """A TAGS run: the selected rows (`dataset`, input order, with `selection_rank` = pick order), the grounded pool,
    the knowledge tree (`artifacts["knowledge_tree"]`) and the report (I(S) against a random pick of the same size)."""

    method = TAGS
    pool: Any = None
    selection: Any = None

    @property
    def tree(self) -> KnowledgeTree:
        return self.artifacts["knowledge_tree"]


class TagsPipeline:
    """Run TAGS on an instruction dataset, optionally aligned to a target dataset's knowledge distribution.

    Args:
        llm (`LLMConfig`, *optional*): the concept model; defaults to the embedded Gemma.
        config (`TagsConfig`).

    Example:
        >>> with serve_local(2) as servers:
        ...     result = TagsPipeline(servers.config(), TagsConfig(ratio=0.05)).run(ds)
        >>> result.tree.to_html("tree.html"); result.save("out/tags.jsonl")
    """

    def __init__(self, llm: LLMConfig | None = None, config: TagsConfig | None = None):
        self.llm = llm or LLMConfig()
        self.config = config or TagsConfig(ratio=0.05)

    def tagger(self) -> ConceptTagger:
        cfg = self.config
        return ConceptTagger(self.llm, ConceptTaggerConfig(
            instruction_column=cfg.instruction_column, input_column=cfg.input_column,
            messages_column=cfg.messages_column, check_rounds=cfg.check_rounds), on_bad_row="record")

    def run(self, dataset: Any, *, target: Any = None, progress: bool = True, executor: Executor | None = None,
            source: str | None = None) -> TagsResult:
        """Tag concepts, build and ground the tree, and sample.

        Args:
            dataset (`datasets.Dataset`): the instruction pool.
            target (`datasets.Dataset`, *optional*): a target-domain set; the selection then follows its leaf
                distribution (KL-aligned sampler).
            progress (`bool`, defaults to `True`), executor (`Executor`, *optional*), source (`str`, *optional*):
                as in `TacosPipeline.run`.
        """
        cfg = self.config
        executor = executor or LocalExecutor()
        tree_config, grounding = cfg.tree_config(), cfg.grounding
        cfg.check_columns(dataset.column_names)
        if len(dataset) == 0:
            raise DataError("The dataset has no rows; TAGS needs instructions to select from.")
        report = RunReport()

        start = time.monotonic()
        tagger = self.tagger()
        pool, usage = executor.map(dataset, tagger, batch_size=cfg.batch_size, desc="Concept tagging")
        report.add_usage("concepts", usage)
        if target is not None:
            target, usage = executor.map(target, tagger, batch_size=cfg.batch_size, desc="Concept tagging (target)")
            report.add_usage("concepts", usage)
        report.seconds["concepts"] = time.monotonic() - start
        concepts = [c for row in pool["concepts"] for c in row]
        if not concepts:
            first = next((e for e in pool["concepts_error"] if e), "no concept in any reply")
            raise DataError(f"No row got a concept, so there is no tree to build; the first error: {first}")

        start = time.monotonic()
        namer = LLMNamer(self.llm) if cfg.llm_names else None
        from ..llm import get_client
        from ..llm.executor import usage_delta

        before = get_client(self.llm).usage.as_dict()
        tree = KnowledgeTree.build(concepts, tree_config, namer=namer, show_progress=progress)
        if namer is not None:
            report.add_usage("naming", usage_delta(before, get_client(self.llm).usage.as_dict()))
        report.seconds["tree"] = time.monotonic() - start

        start = time.monotonic()
        pool, grounded = ground_dataset(pool, tree, grounding)
        if target is not None:
            target, _ = ground_dataset(target, tree, grounding, desc="Grounding concepts (target)")
        sampler = cfg.sampler_config(len(pool), aligned=target is not None)
        _, selection = select_from_dataset(pool, tree, sampler, quality=cfg.quality_column, target=target)
        order = np.sort(selection.indices)
        rank = {int(i): r for r, i in enumerate(selection.indices)}
        selected = pool.select(order.tolist()).add_column("selection_rank", [rank[int(i)] for i in order])
        rng = np.random.default_rng(cfg.seed)
        random_pick = rng.choice(len(pool), size=len(selected), replace=False)
        random_info = float(tree_information(tree, pool["concept_leaves"], subset=random_pick))
        report.seconds["ground+select"] = time.monotonic() - start

        report.models["concepts"] = describe_llm(self.llm)
        report.counts = {
            "rows_in": len(pool), "concept_failures": sum(bool(e) for e in pool["concepts_error"]),
            "failed_rows": sum(bool(e) for e in pool["concepts_error"]),
            "unique_concepts": tree.n_leaves, "tree_nodes": tree.n_nodes, "tree_depth": tree.depth,
            "grounded_fraction": round(grounded.grounded_fraction, 4), "selected": len(selected),
            "rows_out": len(selected), "information": round(selection.information, 3),
            "random_information": round(random_info, 3),
        }
        if selection.kl_to_target is not None:
            report.counts["kl_to_target"] = round(selection.kl_to_target, 4)
        if selection.stopped_early:
            report.notes.append(f"stopped at {len(selected)} rows: no remaining row adds information "
                                "(rows without grounded concepts, or quality 0)")
        report.notes.append(f"grounding: {grounded}")
        return TagsResult(dataset=selected, report=report, parameters=cfg.parameters(), source=source,
                          artifacts={"knowledge_tree": tree}, budget=cfg.budget if cfg.budget is not None else cfg.ratio,
                          pool=pool, selection=selection)


__all__ = ["TAGS", "TagsConfig", "TagsPipeline", "TagsResult"]
