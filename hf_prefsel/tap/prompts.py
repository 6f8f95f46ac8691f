"""TaP stage 2: taxonomy-guided prompt generation with near-duplicate and language filtering and quota top-up.

For every unit (a taxonomy leaf crossed with axis values) the LLM is asked for a few user prompts as JSON. The
candidates are cleaned, checked for the target language, and compared with every prompt accepted so far (and with
the few-shot examples, which small models like to copy); then units still short of their quota are asked again
with new seeds, up to `max_rounds`. What was asked for, what was kept and why the rest was dropped is reported per
unit, so the realized composition can be compared with the specified one.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, Field, create_model

from ..errors import ConfigError
from ..llm import FewShotPrompt, LLMConfig, get_client
from ._runner import UsageMeter
from .language import LanguageDetector, LanguageFilterConfig, base_language, language_name
from .taxonomy import PromptUnit, Taxonomy

DROP_REASONS: dict[str, str] = {
    "too_short": "shorter than min_chars",
    "too_long": "longer than max_chars",
    "language": "not in the target language (wrong script, or another language detected with confidence)",
    "copied_example": "a (near) copy of one of the few-shot examples in the generation prompt",
    "duplicate": "exactly the same text as a prompt already accepted",
    "near_duplicate": "too similar to a prompt already accepted (embedding or character n-gram cosine)",
    "over_quota": "valid, but its unit already had enough prompts",
}


@dataclass(frozen=True)
class _GenDemo:
    path: str
    task: str
    difficulty: str
    prompts: tuple[str, ...]


# Written by us. The coding example comes first: base models copy the *last* example most, and code leaks into
# every topic when it is last.
_GEN_DEMOS: dict[str, tuple[_GenDemo, ...]] = {
    "en": (
        _GenDemo("Computer science > Programming > Python", "coding", "medium", (
            "Write a Python function that returns the 10 most frequent words in a text file.",
            "How can I read a 5 GB CSV file in Python without running out of memory?",
        )),
        _GenDemo("History > Ancient history > Roman Empire", "writing", "easy", (
            "Write a short paragraph describing daily life in ancient Rome for a 10-year-old.",
            "Write a diary entry of a Roman soldier guarding Hadrian's Wall in winter.",
        )),
        _GenDemo("Medicine and health > Nutrition > Diet", "seeking advice", "medium", (
            "I only drink coffee for breakfast. Is that bad for me, and what should I eat instead?",
            "Plan a week of simple lunches for an office worker who wants to lose weight.",
        )),
    ),
    "zh": (
        _GenDemo("计算机科学 > 编程 > Python", "编程", "中等", (
            "用Python写一个函数，统计一个文本文件中出现次数最多的10个单词。",
            "如何用Python读取一个5GB的CSV文件而不占用太多内存？",
        )),
        _GenDemo("历史 > 中国古代史 > 唐朝", "写作", "简单", (
            "写一段150字左右的短文，给小学生介绍唐朝长安城的市民生活。",
            "以李白的口吻写一首描写月夜思乡的七言绝句。",
        )),
        _GenDemo("医学与健康 > 营养学 > 饮食", "寻求建议", "中等", (
            "我早餐只喝一杯咖啡，这样对身体有什么影响？应该怎么调整？",
            "给一位想减脂的上班族设计一周简单易做的午餐搭配。",
        )),
    ),
}

_GEN_SYSTEM = {
    "en": (
        "You write realistic requests that users send to an AI assistant. For the given topic, task type and "
        "difficulty, first repeat the topic, then write the given number of different, self-contained user prompts "
        "in {language} about that topic. Reply with JSON only."
    ),
    "zh": (
        "你为AI助手编写用户会提出的真实请求。根据给定的主题、任务类型和难度，先重复主题，再用{language}写出指定数量的、"
        "彼此不同且完整独立的用户提示，每条都要围绕该主题。只输出JSON。"
    ),
}
_FIELDS = {
    "en": ("Topic", "Task type", "Difficulty", "Count", "Scope"),
    "zh": ("主题", "任务类型", "难度", "数量", "范围"),
}


def _query(ui: str, path: str, task: str | None, difficulty: str | None, count: int, scope: str | None = None,
           extra: Sequence[tuple[str, str]] = ()) -> str:
    topic, task_label, diff_label, count_label, scope_label = _FIELDS[ui]
    sep = "：" if ui == "zh" else ": "
    lines = [f"{topic}{sep}{path}"]
    if scope:
        lines.append(f"{scope_label}{sep}{scope}")
    if task:
        lines.append(f"{task_label}{sep}{task}")
    if difficulty:
        lines.append(f"{diff_label}{sep}{difficulty}")
    for label, value in extra:
        lines.append(f"{label}{sep}{value}")
    lines.append(f"{count_label}{sep}{count}")
    return "\n".join(lines)


def generation_prompt(language: str, anchor_topic: bool = True) -> FewShotPrompt:
    """The built-in prompt-writing prompt for `language` (English examples for languages without their own)."""
    import json

    lang = base_language(language)
    ui = "zh" if lang == "zh" else "en"
    system = _GEN_SYSTEM[ui].format(language=language_name(lang, ui))
    if not anchor_topic:
        system = system.replace("first repeat the topic, then ", "").replace("先重复主题，再", "")
    examples = []
    for demo in _GEN_DEMOS[ui]:
        out: dict[str, Any] = {"topic": demo.path} if anchor_topic else {}
        out["prompts"] = list(demo.prompts)
        examples.append((_query(ui, demo.path, demo.task, demo.difficulty, len(demo.prompts)), json.dumps(out, ensure_ascii=False)))
    return FewShotPrompt(system=system, examples=tuple(examples))


def demo_prompts(language: str) -> list[str]:
    """The example prompts inside the built-in generation prompt (generated copies of them are dropped)."""
    ui = "zh" if base_language(language) == "zh" else "en"
    return [p for d in _GEN_DEMOS[ui] for p in d.prompts]


_OUTPUT_TYPES: dict[tuple[int, bool], type[BaseModel]] = {}


def prompt_list_model(n: int, anchor_topic: bool = True) -> type[BaseModel]:
    """The reply type for up to `n` prompts: `{"topic": str, "prompts": [str, ...]}` with 1 to `n` prompts.

    Fewer than asked is accepted rather than re-asked: a base model generating without a grammar often writes as
    many prompts as its examples show, and the top-up rounds fill any gap anyway.
    """
    key = (n, anchor_topic)
    if key not in _OUTPUT_TYPES:
        fields: dict[str, Any] = {}
        if anchor_topic:
            fields["topic"] = (str, Field(max_length=300))
        fields["prompts"] = (list[str], Field(min_length=1, max_length=n))
        _OUTPUT_TYPES[key] = create_model(f"PromptList{n}", **fields)
    return _OUTPUT_TYPES[key]


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


@dataclass
class UnitReport:
    """What happened to one unit: quota, prompts kept, requests made (`calls`, repairs not counted), candidates
    dropped by reason."""

    key: str
    leaf_id: str
    axes: dict[str, str]
    quota: int
    accepted: int = 0
    calls: int = 0
    failed_calls: int = 0
    candidates: int = 0
    drops: Counter = field(default_factory=Counter)
    rounds: int = 0

    @property
    def missing(self) -> int:
        return max(0, self.quota - self.accepted)


@dataclass
class PromptGenerationReport:
    """Specified vs realized composition and the drop reasons of a prompt generation run.

    Args:
        language (`str`): the target language.
        units (`list[UnitReport]`): one per unit, in generation order.
        dedup (`str`): the near-duplicate method used.
        usage (`dict[str, int]`): LLM calls and tokens spent by this stage.
    """

    language: str
    units: list[UnitReport]
    dedup: str = "none"
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def quota(self) -> int:
        return sum(u.quota for u in self.units)

    @property
    def accepted(self) -> int:
        return sum(u.accepted for u in self.units)

    @property
    def drops(self) -> Counter:
        total: Counter = Counter()
        for u in self.units:
            total.update(u.drops)
        return total

    def by_leaf(self) -> dict[str, tuple[int, int]]:
        """leaf id → (quota, prompts kept)."""
        out: dict[str, list[int]] = {}
        for u in self.units:
            q = out.setdefault(u.leaf_id, [0, 0])
            q[0] += u.quota
            q[1] += u.accepted
        return {k: (v[0], v[1]) for k, v in out.items()}

    def by_axis(self) -> dict[str, dict[str, tuple[int, int]]]:
        """axis id → value id → (quota, prompts kept)."""
        out: dict[str, dict[str, list[int]]] = {}
        for u in self.units:
            for axis, value in u.axes.items():
                q = out.setdefault(axis, {}).setdefault(value, [0, 0])
                q[0] += u.quota
                q[1] += u.accepted
        return {a: {v: (q[0], q[1]) for v, q in vals.items()} for a, vals in out.items()}

    def by_top_level(self, taxonomy: Taxonomy) -> dict[str, tuple[int, int]]:
        """top-level node id → (quota, prompts kept)."""
        out: dict[str, list[int]] = {}
        for leaf, (q, a) in self.by_leaf().items():
            top = taxonomy.path(leaf)[0].id
            entry = out.setdefault(top, [0, 0])
            entry[0] += q
            entry[1] += a
        return {k: (v[0], v[1]) for k, v in out.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "dedup": self.dedup,
            "quota": self.quota,
            "accepted": self.accepted,
            "drops": dict(self.drops),
            "requests": sum(u.calls for u in self.units),
            "failed_calls": sum(u.failed_calls for u in self.units),
            "unfilled_units": sum(1 for u in self.units if u.missing),
            "by_leaf": {k: {"quota": q, "accepted": a} for k, (q, a) in self.by_leaf().items()},
            "by_axis": {ax: {v: {"quota": q, "accepted": a} for v, (q, a) in vals.items()} for ax, vals in self.by_axis().items()},
            "usage": dict(self.usage),
        }

    def format(self, taxonomy: Taxonomy | None = None) -> str:
        """A short text table: composition per leaf and axis value (kept/quota) and drop counts."""
        lines = [f"prompts kept {self.accepted}/{self.quota} ({self.language}, dedup: {self.dedup})"]
        for leaf, (q, a) in self.by_leaf().items():
            name = " > ".join(taxonomy.path_names(leaf, self.language)) if taxonomy is not None else leaf
            flag = "" if a >= q else "  (short)"
            lines.append(f"  {a:>3}/{q:<3} {name}{flag}")
        for axis, values in self.by_axis().items():
            lines.append(f"  {axis}: " + ", ".join(f"{v} {a}/{q}" for v, (q, a) in values.items()))
        drops = self.drops
        lines.append("  dropped: " + (", ".join(f"{k} {drops[k]}" for k in DROP_REASONS if drops.get(k)) or "none"))
        failed = sum(u.failed_calls for u in self.units)
        lines.append(f"  requests: {sum(u.calls for u in self.units)} ({failed} failed after repairs)")
        return "\n".join(lines)


_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)、:：]|[（(]\d{1,2}[)）])\s*")


def clean_prompt(text: str) -> str:
    """Trim whitespace, list bullets/numbers and wrapping quotes that models add around prompts."""
    text = text.strip()
    text = _BULLET.sub("", text, count=1)
    for a, b in (('"', '"'), ("“", "”"), ("「", "」"), ("'", "'")):
        if len(text) > 2 and text.startswith(a) and text.endswith(b):
            text = text[1:-1].strip()
    return text


def _exact_key(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


class _NearDuplicateIndex:
    """Accepted prompts' vectors (embeddings or hashed character n-grams), for the nearest-similarity test."""

    def __init__(self, method: str, embedding_model: str | None):
        self.method = method
        self.embedding_model = embedding_model
        self._embedder: Any = None
        self._vectorizer: Any = None
        self.rows: list[Any] = []

    def vectors(self, texts: Sequence[str]) -> Any:
        if self.method == "embedding":
            if self._embedder is None:
                from ..embed import Embedder

                self._embedder = Embedder(self.embedding_model)
            return self._embedder.encode(list(texts))
        if self._vectorizer is None:
            from sklearn.feature_extraction.text import HashingVectorizer

            self._vectorizer = HashingVectorizer(
                analyzer="char", ngram_range=(2, 3), n_features=2**18, alternate_sign=False, norm="l2", lowercase=True
            )
        return self._vectorizer.transform([" ".join(t.split()) for t in texts])

    def max_similarity(self, vecs: Any) -> np.ndarray:
        """For each row of `vecs`, the highest cosine with an accepted vector (-1 if none)."""
        n = vecs.shape[0]
        if not self.rows or n == 0:
            return np.full(n, -1.0)
        if self.method == "embedding":
            import faiss

            mat = np.vstack(self.rows).astype(np.float32)
            index = faiss.IndexFlatIP(mat.shape[1])
            index.add(mat)
            sims, _ = index.search(np.ascontiguousarray(vecs, dtype=np.float32), 1)
            return sims.reshape(-1)
        from scipy.sparse import vstack

        mat = vstack(self.rows)
        return np.asarray((vecs @ mat.T).max(axis=1).todense()).reshape(-1)

    def add(self, vec: Any) -> None:
        self.rows.append(vec)

    @staticmethod
    def similarity(a: Any, b: Any) -> float:
        if isinstance(a, np.ndarray):
            return float(np.dot(a.reshape(-1), b.reshape(-1)))
        return float(a.multiply(b).sum())


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
        return _query(ui, path, task, difficulty, count, scope, extra)

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
        index = _NearDuplicateIndex(method, cfg.embedding_model) if method != "none" else None
        demos = demo_prompts(lang) if not (cfg.prompts or {}).get(lang) else []
        demo_keys = {_exact_key(d) for d in demos}
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
                elif _exact_key(text) in demo_keys:
                    rep.drops["copied_example"] += 1
                else:
                    survivors.append((ui, text))
            vecs = index.vectors([t for _, t in survivors]) if (index is not None and survivors) else None
            prior = index.max_similarity(vecs) if vecs is not None else None
            demo_sim = None
            if vecs is not None and demo_vecs is not None:
                demo_index = _NearDuplicateIndex(method, cfg.embedding_model)
                demo_index.rows = [demo_vecs[i] for i in range(demo_vecs.shape[0])]
                demo_sim = demo_index.max_similarity(vecs)
            accepted_now: list[Any] = []
            for j, (ui, text) in enumerate(survivors):
                rep, unit = reports[ui], units[ui]
                key = _exact_key(text)
                if key in seen_exact:
                    rep.drops["duplicate"] += 1
                    continue
                if vecs is not None:
                    v = vecs[j]
                    if demo_sim is not None and demo_sim[j] >= threshold:
                        rep.drops["copied_example"] += 1
                        continue
                    if prior[j] >= threshold or any(_NearDuplicateIndex.similarity(v, w) >= threshold for w in accepted_now):
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
    from ._runner import gather

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
