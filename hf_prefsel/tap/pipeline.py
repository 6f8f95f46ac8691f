"""TaP end to end: taxonomy → prompts → responses → fine-grained judging → preference, SFT and ratings datasets."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..llm import LLMConfig
from ..llm.describe import describe_llm
from ..result import Method, RunReport
from ..llm.executor import add_usage
from .judge import PAIR_DROP_REASONS, JudgeConfig, PairConfig, PreferenceJudge, build_preference_rows
from .language import base_language, check_language
from .prompts import PromptGenerationConfig, PromptGenerationReport, PromptGenerator
from .responses import ResponseGenerationConfig, ResponseGenerator
from .taxonomy import PromptUnit, Taxonomy

TAP = Method(
    name="TaP",
    title="TaP: A Taxonomy-Guided Framework for Automated and Scalable Preference Data Generation",
    arxiv="2506.23979",
    tags=("tap", "preference-data", "synthetic-data", "taxonomy"),
)
TAP_PAPER = TAP.paper  # the older name of the paper's metadata


@dataclass
class TaPConfig:
    """Everything a TaP run needs besides the taxonomy and the models.

    Args:
        language (`str`, defaults to `"en"`): the language of the generated prompts and responses.
        per_leaf (`int`, *optional*): prompts per leaf (scaled by weights; see `Taxonomy.leaf_quotas`). Give
            this or `total`; 2 when neither is given.
        total (`int`, *optional*): prompts overall, split top-down by weights.
        max_leaves (`int`, *optional*): use only this many leaves, spread round-robin over the top-level nodes (for
            small trial runs).
        leaves (`list[str]`, *optional*): use exactly these leaf ids.
        prompts (`PromptGenerationConfig`): stage 2 settings (filters, top-up rounds, axes).
        responses (`ResponseGenerationConfig`): stage 3 settings (responses per prompt, temperatures, models).
        judge (`JudgeConfig`): stage 4 settings (aspects, scale, overall).
        pairs (`PairConfig`): the pair rule (margin δ) and the output layout.
    """

    language: str = "en"
    per_leaf: int | None = None
    total: int | None = None
    max_leaves: int | None = None
    leaves: list[str] | None = None
    prompts: PromptGenerationConfig = field(default_factory=PromptGenerationConfig)
    responses: ResponseGenerationConfig = field(default_factory=ResponseGenerationConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    pairs: PairConfig = field(default_factory=PairConfig)

    def __post_init__(self) -> None:
        if self.per_leaf is None and self.total is None:
            self.per_leaf = 2
        if self.per_leaf is not None and self.total is not None:
            raise ConfigError("Give per_leaf (prompts per leaf) or total (prompts overall), not both.")
        if self.max_leaves is not None and self.max_leaves < 1:
            raise ConfigError(f"max_leaves must be >= 1, got {self.max_leaves}.")
        if not isinstance(self.language, str) or not self.language.strip():
            raise ConfigError("language must be a language code such as 'en' or 'zh'.")
        check_language(self.language)
        if self.responses.candidates is None and self.responses.n_responses < 2:
            raise ConfigError(f"TaP pairs need at least 2 responses per prompt, got {self.responses.n_responses}: "
                              "with one, every prompt would be generated, answered and judged, then dropped.")

    def parameters(self) -> dict[str, Any]:
        """JSON-safe parameters for dataset cards (prompt templates left out)."""
        def clean(obj: Any) -> Any:
            data = dataclasses.asdict(obj)
            for key in ("prompts", "prompt", "progress"):  # templates, and how the run was displayed
                data.pop(key, None)
            return data

        out = {
            "language": self.language, "per_leaf": self.per_leaf, "total": self.total, "max_leaves": self.max_leaves,
            "leaves": self.leaves, "prompts": clean(self.prompts), "responses": clean(self.responses),
            "judge": clean(self.judge), "pairs": clean(self.pairs),
        }
        for cand in (out["responses"].get("candidates") or []):
            if cand.get("llm"):
                cand["llm"] = LLMConfig(**cand["llm"]).describe()
        return json.loads(json.dumps(out, default=str))


@dataclass
class TaPReport:
    """What a TaP run produced and what it cost.

    Args:
        taxonomy (`str`): the taxonomy's name.
        language (`str`): the target language.
        leaves_used (`int`), leaves_total (`int`): leaves generated for, of all leaves in the taxonomy.
        prompts (`PromptGenerationReport`): composition vs quota and prompt drop reasons.
        responses (`dict`): responses generated, failed, and in the wrong language.
        judged (`dict`): responses judged and judge failures.
        pairs (`dict`): pairs kept, SFT rows, and pair drop reasons.
        usage (`dict[str, dict[str, int]]`): LLM calls and tokens per stage and in total.
        seconds (`dict[str, float]`): wall time per stage.
        models (`dict[str, str]`): which model did what.
    """

    taxonomy: str
    language: str
    leaves_used: int
    leaves_total: int
    prompts: PromptGenerationReport
    responses: dict[str, Any] = field(default_factory=dict)
    judged: dict[str, Any] = field(default_factory=dict)
    pairs: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "taxonomy": self.taxonomy, "language": self.language, "leaves_used": self.leaves_used,
            "leaves_total": self.leaves_total, "prompts": self.prompts.to_dict(), "responses": self.responses,
            "judged": self.judged, "pairs": self.pairs, "usage": self.usage, "seconds": self.seconds, "models": self.models,
        }

    def format(self, taxonomy: Taxonomy | None = None) -> str:
        """The run summary printed by the script."""
        lines = [
            f"TaP run: taxonomy {self.taxonomy!r}, {self.leaves_used} of {self.leaves_total} leaves, language {self.language}",
            *(f"  {k}: {v}" for k, v in self.models.items()),
            "",
            self.prompts.format(taxonomy),
            "",
            f"responses: {self.responses.get('generated', 0)} generated, {self.responses.get('failed', 0)} failed, "
            f"{self.responses.get('wrong_language', 0)} not in {self.language}",
            f"judged: {self.judged.get('judged', 0)} ok, {self.judged.get('failed', 0)} failed",
            f"pairs kept: {self.pairs.get('kept', 0)} of {self.pairs.get('prompts', 0)} prompts (margin >= "
            f"{self.pairs.get('margin')}); dropped: "
            + (", ".join(f"{k} {v}" for k, v in (self.pairs.get("drops") or {}).items() if v) or "none"),
            f"SFT rows: {self.pairs.get('sft', 0)}",
            "",
        ]
        for stage, u in self.usage.items():
            lines.append(
                f"{stage:<10} {u.get('calls', 0):>4} calls, {u.get('cache_hits', 0):>4} cache hits, "
                f"{u.get('prompt_tokens', 0):>7} prompt + {u.get('completion_tokens', 0):>6} completion tokens, "
                f"{u.get('failures', 0)} failures" + (f", {self.seconds[stage]:.1f}s" if stage in self.seconds else "")
            )
        return "\n".join(lines)


@dataclass
class TaPResult:
    """The datasets of a TaP run, its report, and the (possibly trimmed) taxonomy used.

    Args:
        taxonomy (`Taxonomy`): the taxonomy the prompts were generated for (a subset with `max_leaves`).
        prompts (`datasets.Dataset`): kept prompts with their leaf, path and axis values.
        ratings (`datasets.Dataset`): one row per prompt with all responses and their per-aspect ratings, in the
            multi-response layout `hf_prefsel.pd.from_multi_response` reads (`id`, `prompt`, `responses`, `source`).
        preferences (`datasets.Dataset`): TRL preference rows (`prompt`, `chosen`, `rejected`) plus metadata and
            both sides' ratings.
        sft (`datasets.Dataset`): TRL SFT rows (`prompt`/`completion`, or `messages`).
        report (`TaPReport`).
        parameters (`dict`): the run's parameters, for cards.
    """

    taxonomy: Taxonomy
    prompts: Any
    ratings: Any
    preferences: Any
    sft: Any
    report: TaPReport
    parameters: dict[str, Any] = field(default_factory=dict)

    method = TAP

    @property
    def dataset(self) -> Any:
        """The main output, as every method's result has it: the preference pairs."""
        return self.preferences

    @property
    def artifacts(self) -> dict[str, Any]:
        return {"taxonomy": self.taxonomy}

    def run_report(self) -> RunReport:
        """The report in the shape every method's result shares (counts, seconds, usage, models)."""
        report = RunReport(counts={"prompts": len(self.prompts), "prompt_quota": self.report.prompts.quota,
                                   "pairs": len(self.preferences), "sft_rows": len(self.sft), "rows_out": len(self.preferences),
                                   "responses": self.report.responses.get("generated", 0) + self.report.responses.get("failed", 0),
                                   "failed_rows": self.report.responses.get("failed", 0)},
                           seconds=dict(self.report.seconds), models=dict(self.report.models))
        for stage, usage in self.report.usage.items():
            if stage != "total":
                report.add_usage(stage, usage)
        return report

    def summary_line(self) -> str:
        """`summary: key=value ...` as every command prints it."""
        report = self.run_report()
        counts = {**report.counts, **report.cost_counts()}
        return "summary: " + "  ".join(f"{k}={v}" for k, v in counts.items())

    def provenance(self) -> Any:
        """A `Provenance` for dataset cards (the same cost fields as every method's card)."""
        from ..hub import Provenance

        report = self.run_report()
        return Provenance(
            method=TAP.name, papers=[TAP.paper], parameters=self.parameters,
            model="; ".join(f"{k}: {v}" for k, v in self.report.models.items()),
            source=f"taxonomy {self.taxonomy.name}", counts={**report.counts, **report.cost_counts()},
        )

    def save(self, directory: str | Path) -> Path:
        """Write `preferences.jsonl` (+ card), `sft.jsonl`, `ratings.jsonl`, `prompts.jsonl`, `report.json`, the
        taxonomy artifact (`taxonomy/`) and `taxonomy.html` (quota vs generated per leaf) into `directory`."""
        from ..hub import save_dataset

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        prov = self.provenance()
        save_dataset(self.preferences, out / "preferences.jsonl", prov)
        save_dataset(self.sft, out / "sft.jsonl", prov)
        save_dataset(self.ratings, out / "ratings.jsonl")
        save_dataset(self.prompts, out / "prompts.jsonl")
        (out / "report.json").write_text(json.dumps(self.report.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
        self.taxonomy.save_pretrained(out / "taxonomy")
        quotas = {k: q for k, (q, _) in self.report.prompts.by_leaf().items()}
        realized = {k: a for k, (_, a) in self.report.prompts.by_leaf().items()}
        self.taxonomy.to_html(out / "taxonomy.html", quotas=quotas, realized=realized)
        return out

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | None = None) -> str:
        """Push to one Hub dataset repo: the preference pairs as the default config, `sft`, `ratings` and `prompts` as
        further configs, the card, and the taxonomy under `artifacts/taxonomy/`.

        Returns:
            `str`: the URL of the last commit.
        """
        from ..hub import push_dataset

        for name, ds in (("sft", self.sft), ("ratings", self.ratings), ("prompts", self.prompts)):
            if len(ds):
                ds.push_to_hub(repo_id, config_name=name, private=private, token=token)
        return push_dataset(self.preferences, repo_id, self.provenance(), artifacts={"taxonomy": self.taxonomy},
                            private=private, token=token)


def _dataset(rows: list[dict[str, Any]], columns: list[str]) -> Any:
    from datasets import Dataset

    if rows:
        return Dataset.from_list(rows)
    return Dataset.from_dict({c: [] for c in columns})


class TaPPipeline:
    """Run the four TaP stages.

    Args:
        llm (`LLMConfig`, *optional*): the model for prompts and responses (and the judge unless `judge_llm` is
            given); defaults to the embedded Gemma.
        config (`TaPConfig`, *optional*).
        judge_llm (`LLMConfig`, *optional*): a separate judge model.

    Example:
        >>> from hf_prefsel.llm import serve_local
        >>> with serve_local(2) as servers:
        ...     result = TaPPipeline(servers.config(), TaPConfig(language="zh", max_leaves=3)).run(Taxonomy.load("default"))
        >>> print(result.report.format(result.taxonomy))
        >>> result.preferences[0]  # {"prompt": ..., "chosen": ..., "rejected": ..., ...}
    """

    def __init__(self, llm: LLMConfig | None = None, config: TaPConfig | None = None, *, judge_llm: LLMConfig | None = None):
        self.llm = llm or LLMConfig()
        self.config = config or TaPConfig()
        self.judge_llm = judge_llm or self.llm

    def plan(self, taxonomy: Taxonomy) -> tuple[Taxonomy, dict[str, int], list[PromptUnit]]:
        """The taxonomy actually used, its leaf quotas and the units to generate for (no LLM call)."""
        cfg = self.config
        used = taxonomy
        if cfg.leaves is not None:
            used = taxonomy.subset(cfg.leaves)
        if cfg.max_leaves is not None and used.n_leaves > cfg.max_leaves:
            used = used.subset([leaf.id for leaf in used.spread_leaves(cfg.max_leaves)])
        quotas = used.leaf_quotas(per_leaf=cfg.per_leaf, total=cfg.total)
        units = used.units(quotas, cfg.prompts.axes)
        return used, quotas, units

    def run(self, taxonomy: Taxonomy, *, progress: bool = True) -> TaPResult:
        """Generate, answer, judge and pair; returns the datasets and the report.

        Args:
            taxonomy (`Taxonomy`): what to generate for (`Taxonomy.load("default")`, a file, a Hub repo).
            progress (`bool`, defaults to `True`): progress bars; `False` turns every stage's bar off.
        """
        cfg = self.config
        if not progress:
            cfg = dataclasses.replace(cfg, prompts=dataclasses.replace(cfg.prompts, progress=False),
                                      responses=dataclasses.replace(cfg.responses, progress=False),
                                      judge=dataclasses.replace(cfg.judge, progress=False))
        lang = base_language(cfg.language)
        used, _, units = self.plan(taxonomy)
        seconds: dict[str, float] = {}

        start = time.monotonic()
        prompt_rows, prompt_report = PromptGenerator(self.llm, cfg.prompts).generate(used, units, lang)
        seconds["prompts"] = time.monotonic() - start

        start = time.monotonic()
        responder = ResponseGenerator(self.llm, cfg.responses)
        answered = responder.generate(prompt_rows, default_language=lang)
        seconds["responses"] = time.monotonic() - start

        start = time.monotonic()
        judge = PreferenceJudge(self.judge_llm, cfg.judge)
        judged = judge.annotate(answered, default_language=lang)
        seconds["judge"] = time.monotonic() - start

        axis_ids = [a.id for a in used.axes]
        meta = ["leaf_id", "node_path", *axis_ids, "language"]
        prefs, sft, drops = build_preference_rows(judged, cfg.pairs, meta_keys=meta)
        ratings_rows = [
            {"id": r["prompt_id"], "prompt": r["prompt"], "responses": r["responses"], "source": f"tap:{used.name}",
             **{k: r.get(k) for k in meta}}
            for r in judged
        ]
        all_responses = [x for r in answered for x in r["responses"]]
        all_judged = [x for r in judged for x in r["responses"] if x.get("text")]
        usage = {"prompts": prompt_report.usage, "responses": responder.last_usage, "judge": judge.last_usage}
        total: dict[str, int] = {}
        for u in usage.values():
            total = add_usage(total, u)
        usage["total"] = total
        seconds["total"] = sum(seconds.values())
        report = TaPReport(
            taxonomy=used.name, language=lang, leaves_used=used.n_leaves, leaves_total=taxonomy.n_leaves,
            prompts=prompt_report,
            responses={
                "generated": sum(1 for x in all_responses if x["text"]),
                "failed": sum(1 for x in all_responses if not x["text"]),
                "wrong_language": sum(1 for x in all_responses if x["text"] and x.get("language") not in (None, lang)),
            },
            judged={"judged": sum(1 for x in all_judged if x.get("ratings")),
                    "failed": sum(1 for x in all_judged if not x.get("ratings"))},
            pairs={"prompts": len(judged), "kept": len(prefs), "sft": len(sft), "margin": cfg.pairs.margin,
                   "drops": {k: drops.get(k, 0) for k in PAIR_DROP_REASONS}},
            usage=usage, seconds=seconds,
            models={"generator": describe_llm(self.llm), "judge": describe_llm(self.judge_llm)},
        )
        pref_cols = ["prompt", "chosen", "rejected", "prompt_id", *meta, "chosen_score", "rejected_score", "margin",
                     "chosen_ratings", "rejected_ratings", "chosen_model", "rejected_model"]
        sft_cols = (["messages"] if cfg.pairs.format == "conversational" else ["prompt", "completion"]) + \
            ["prompt_id", *meta, "score", "model"]
        prompt_cols = ["prompt_id", "prompt", "language", "leaf_id", "node_path", *axis_ids, "unit", "round"]
        return TaPResult(
            taxonomy=used,
            prompts=_dataset(prompt_rows, prompt_cols),
            ratings=_dataset(ratings_rows, ["id", "prompt", "responses", "source", *meta]),
            preferences=_dataset(prefs, pref_cols),
            sft=_dataset(sft, sft_cols),
            report=report,
            parameters=cfg.parameters(),
        )


__all__ = ["TAP", "TAP_PAPER", "TaPConfig", "TaPPipeline", "TaPReport", "TaPResult", "describe_llm"]
