"""TaP stage 2: taxonomy-guided prompt generation with near-duplicate and language filtering and quota top-up.

For every unit (a taxonomy leaf crossed with axis values) the LLM is asked for a few user prompts as JSON. The
candidates are cleaned, checked for the target language, and compared with every prompt accepted so far (and with
the few-shot examples, which small models like to copy); then units still short of their quota are asked again
with new seeds, up to `max_rounds`. What was asked for, what was kept and why the rest was dropped is reported per
unit, so the realized composition can be compared with the specified one. The prompt texts sent are in
`prompt_templates`, the filters in `prompt_filters`, the report in `prompt_report`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

from ..errors import ConfigError
from ..llm import FewShotPrompt, LLMConfig, get_client
from ..llm.gather import UsageMeter
from .language import LanguageDetector, LanguageFilterConfig, base_language
from .prompt_filters import NearDuplicateIndex, clean_prompt, exact_key
from .prompt_report import DROP_REASONS, PromptGenerationReport, UnitReport
from .prompt_templates import demo_prompts, generation_prompt, prompt_list_model, unit_query_text
from .taxonomy import PromptUnit, Taxonomy


@dataclass
class PromptGenerationConfig:
    """How prompts are generated and filtered.

    Args:
        prompts_per_call (`int`, defaults to 3): most prompts asked for in one call; small models lose the topic in
            long lists.
        overgenerate (`float`, defaults to 1.5): ask for this many times the missing number, so filtering still
            leaves enough.
        max_rounds (`int`, defaults to 3): rounds of asking (the first plus top-ups) before a unit is left short.
        temperature (`float`, defaults to 0.8): sampling temperature; must be > 0 for top-up rounds to differ.
        seed (`int`, defaults to 0): base seed; call `k` of round `r` uses `seed + 1000 * r + k`, so reruns hit the
            request cache and top-ups are new calls.
        max_tokens (`int`, defaults to 256): reply length limit per call.
        anchor_topic (`bool`, defaults to `True`): the reply starts by repeating the topic (`{"topic": ..., "prompts":
            [...]}`), which keeps small base models on the topic instead of copying an example.
        min_chars (`int`, defaults to 6), max_chars (`int`, defaults to 1500): length bounds of a kept prompt.
        filter_language (`bool`, defaults to `True`): drop prompts not in the target language.
        language_filter (`LanguageFilterConfig`): thresholds of that filter.
        dedup (`"auto" | "embedding" | "ngram" | "none"`, defaults to `"auto"`): near-duplicate test. `embedding`
            compares sentence embeddings (semantic; the bundled MiniLM is English-only), `ngram` compares character
            2-3-gram vectors (lexical, any language). `auto` uses embeddings for English or when `embedding_model` is
            set, n-grams otherwise.
        embedding_threshold (`float`, defaults to 0.9): cosine at or above which two prompts are near-duplicates
            (embeddings).
        ngram_threshold (`float`, defaults to 0.8): the same for character n-grams (measured: light edits of
            Chinese prompts score 0.84-0.95, the nearest unrelated prompt 0.68 at the 99th percentile).
        embedding_model (`str`, *optional*): a sentence-transformers model (path or Hub id); defaults to the bundled
            MiniLM. Set a multilingual model to use semantic dedup for other languages.
        axes (`list[str]`, *optional*): taxonomy axes to cross leaves with; defaults to all, `[]` for none.
        prompts (`dict[str, FewShotPrompt]`, *optional*): generation prompts per language replacing the built-in
            ones; their replies must follow `prompt_list_model`.
        progress (`bool`, defaults to `True`): progress bars.
    """

    prompts_per_call: int = 3
    overgenerate: float = 1.5
    max_rounds: int = 3
    temperature: float = 0.8
    seed: int = 0
    max_tokens: int = 256
    anchor_topic: bool = True
    min_chars: int = 6
    max_chars: int = 1500
    filter_language: bool = True
    language_filter: LanguageFilterConfig = field(default_factory=LanguageFilterConfig)
    dedup: Literal["auto", "embedding", "ngram", "none"] = "auto"
    embedding_threshold: float = 0.9
    ngram_threshold: float = 0.8
    embedding_model: str | None = None
    axes: list[str] | None = None
    prompts: dict[str, FewShotPrompt] | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.prompts_per_call < 1:
            raise ConfigError(f"prompts_per_call must be >= 1, got {self.prompts_per_call}.")
        if self.overgenerate < 1:
            raise ConfigError(f"overgenerate must be >= 1 (it multiplies the missing count), got {self.overgenerate}.")
        if self.max_rounds < 1:
            raise ConfigError(f"max_rounds must be >= 1, got {self.max_rounds}.")
        if self.dedup not in ("auto", "embedding", "ngram", "none"):
            raise ConfigError(f"dedup must be 'auto', 'embedding', 'ngram' or 'none', got {self.dedup!r}.")
        for name in ("embedding_threshold", "ngram_threshold"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"{name} is a cosine similarity in (0, 1], got {getattr(self, name)}.")
        if self.min_chars < 1 or self.max_chars < self.min_chars:
            raise ConfigError(f"Need 1 <= min_chars <= max_chars, got {self.min_chars} and {self.max_chars}.")

    def dedup_method(self, language: str) -> str:
        if self.dedup != "auto":
            return self.dedup
        return "embedding" if (base_language(language) == "en" or self.embedding_model) else "ngram"


class PromptGenerator:
    """Generate user prompts for taxonomy units, filtered and topped up to quota.

    Args:
        llm (`LLMConfig`, *optional*): the prompt-writing model; defaults to the embedded Gemma.
        config (`PromptGenerationConfig`, *optional*).

    Example:
        >>> tax = Taxonomy.load("default")
        >>> units = tax.units(tax.leaf_quotas(per_leaf=2))[:6]
        >>> rows, report = PromptGenerator(servers.config()).generate(tax, units, language="zh")
        >>> print(report.format(tax))
    """

    def __init__(self, llm: LLMConfig | None = None, config: PromptGenerationConfig | None = None):
        self.llm = llm or LLMConfig()
        self.config = config or PromptGenerationConfig()
        self.detector = LanguageDetector(self.config.language_filter)

    def _prompt(self, language: str) -> FewShotPrompt:
        custom = (self.config.prompts or {}).get(base_language(language))
        return custom or generation_prompt(language, self.config.anchor_topic)

    def unit_query(self, taxonomy: Taxonomy, unit: PromptUnit, language: str, count: int) -> str:
        """The user message asking for `count` prompts for `unit`, in the target language where names exist."""
        lang = base_language(language)
        ui = "zh" if lang == "zh" else "en"
        names_lang = lang if lang in taxonomy.languages else ("en" if "en" in taxonomy.languages else taxonomy.languages[0])
        path = " > ".join(taxonomy.path_names(unit.leaf_id, names_lang))
        leaf = taxonomy.node(unit.leaf_id)
        scope = leaf.description.get(names_lang)
        task = difficulty = None
        extra = []
        for axis_id, value_id in unit.axes:
            axis = taxonomy.axis(axis_id)
            name = axis.value(value_id).name(names_lang, taxonomy.languages)
            if axis_id == "task_type":
                task = name
            elif axis_id == "difficulty":
                difficulty = name
            else:
                extra.append((axis.names.get(names_lang, axis_id), name))
        return unit_query_text(ui, path, task, difficulty, count, scope, extra)

    def generate(self, taxonomy: Taxonomy, units: Sequence[PromptUnit], language: str) -> tuple[list[dict[str, Any]], PromptGenerationReport]:
        """Generate prompts for every unit.

        Returns:
            `(rows, report)`: one dict per kept prompt (`prompt_id`, `prompt`, `language`, `leaf_id`, `node_path`,
            one key per axis, `unit`, `round`) and the composition/drop report.
        """
        cfg = self.config
        lang = base_language(language)
        method = cfg.dedup_method(lang)
        config = self.llm.replace(temperature=cfg.temperature, max_tokens=cfg.max_tokens)
        client = get_client(config)
        meter = UsageMeter([client])
        template = self._prompt(lang)
        reports = [UnitReport(u.key, u.leaf_id, u.axis_values, u.quota) for u in units]
        seen_exact: set[str] = set()
        index = NearDuplicateIndex(method, cfg.embedding_model) if method != "none" else None
        demos = demo_prompts(lang) if not (cfg.prompts or {}).get(lang) else []
        demo_keys = {exact_key(d) for d in demos}
        demo_vecs = index.vectors(demos) if (index is not None and demos) else None
        threshold = cfg.embedding_threshold if method == "embedding" else cfg.ngram_threshold
        rows: list[dict[str, Any]] = []
        axis_ids = [a.id for a in taxonomy.axes]

        for round_no in range(cfg.max_rounds):
            requests: list[tuple[int, int, list[dict[str, str]], int]] = []  # (unit index, count, messages, seed)
            for ui, (unit, rep) in enumerate(zip(units, reports)):
                if rep.missing <= 0:
                    continue
                want = math.ceil(rep.missing * cfg.overgenerate)
                n_calls = math.ceil(want / cfg.prompts_per_call)
                for k in range(n_calls):
                    count = min(cfg.prompts_per_call, want - k * cfg.prompts_per_call)
                    seed = cfg.seed + 1000 * round_no + k
                    requests.append((ui, count, template.messages(self.unit_query(taxonomy, unit, lang, count)), seed))
                rep.rounds += 1
            if not requests:
                break
            # one seed per call: the request cache keys on it, and distinct seeds make top-ups differ
            results = _run_with_seeds(
                client, [r[2] for r in requests], [r[3] for r in requests],
                [prompt_list_model(r[1], cfg.anchor_topic) for r in requests], cfg.progress, f"Prompts (round {round_no + 1})",
            )
            # collect candidates in request order
            candidates: list[tuple[int, str]] = []
            for (ui, _, _, _), result in zip(requests, results):
                rep = reports[ui]
                rep.calls += 1
                if not result.ok or result.value is None:
                    rep.failed_calls += 1
                    continue
                for text in result.value.prompts:
                    rep.candidates += 1
                    candidates.append((ui, clean_prompt(text)))
            survivors: list[tuple[int, str]] = []
            for ui, text in candidates:
                rep = reports[ui]
                if len(text) < cfg.min_chars:
                    rep.drops["too_short"] += 1
                elif len(text) > cfg.max_chars:
                    rep.drops["too_long"] += 1
                elif cfg.filter_language and self.detector.reject_reason(text, lang) is not None:
                    rep.drops["language"] += 1
                elif exact_key(text) in demo_keys:
                    rep.drops["copied_example"] += 1
                else:
                    survivors.append((ui, text))
            vecs = index.vectors([t for _, t in survivors]) if (index is not None and survivors) else None
            prior = index.max_similarity(vecs) if vecs is not None else None
            demo_sim = None
            if vecs is not None and demo_vecs is not None:
                demo_index = NearDuplicateIndex(method, cfg.embedding_model)
                demo_index.rows = [demo_vecs[i] for i in range(demo_vecs.shape[0])]
                demo_sim = demo_index.max_similarity(vecs)
            accepted_now: list[Any] = []
            for j, (ui, text) in enumerate(survivors):
                rep, unit = reports[ui], units[ui]
                key = exact_key(text)
                if key in seen_exact:
                    rep.drops["duplicate"] += 1
                    continue
                if vecs is not None:
                    v = vecs[j]
                    if demo_sim is not None and demo_sim[j] >= threshold:
                        rep.drops["copied_example"] += 1
                        continue
                    if prior[j] >= threshold or any(NearDuplicateIndex.similarity(v, w) >= threshold for w in accepted_now):
                        rep.drops["near_duplicate"] += 1
                        continue
                if rep.accepted >= rep.quota:
                    rep.drops["over_quota"] += 1
                    continue
                seen_exact.add(key)
                if vecs is not None:
                    accepted_now.append(vecs[j])
                    index.add(vecs[j])  # type: ignore[union-attr]
                rep.accepted += 1
                row = {
                    "prompt_id": hashlib.sha1(f"{lang}\n{text}".encode("utf-8")).hexdigest()[:16],
                    "prompt": text,
                    "language": lang,
                    "leaf_id": unit.leaf_id,
                    "node_path": taxonomy.path_names(unit.leaf_id, lang if lang in taxonomy.languages else None),
                }
                for axis_id in axis_ids:
                    row[axis_id] = unit.axis_values.get(axis_id)
                row.update(unit=unit.key, round=round_no)
                rows.append(row)
        report = PromptGenerationReport(lang, reports, method, meter.delta())
        return rows, report


def _run_with_seeds(client: Any, prompts: Sequence[Sequence[Mapping[str, str]]], seeds: Sequence[int],
                    output_types: Sequence[type], progress: bool, desc: str) -> list[Any]:
    """`structured` for many prompts, each with its own seed and output type, concurrently, results in order."""
    from ..llm.gather import gather

    coros = [_structured_with_seed(client, p, t, s) for p, s, t in zip(prompts, seeds, output_types)]
    results = gather(coros, desc=desc, progress=progress)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


async def _structured_with_seed(client: Any, messages: Sequence[Mapping[str, str]], output_type: type, seed: int) -> Any:
    """`LLMClient.structured` with a per-call seed, so each top-up round asks for new prompts."""
    return await client.structured(list(messages), output_type, overrides={"seed": seed})


__all__ = [
    "DROP_REASONS", "PromptGenerationConfig", "PromptGenerationReport", "PromptGenerator", "UnitReport",
    "clean_prompt", "demo_prompts", "generation_prompt", "prompt_list_model",
]
