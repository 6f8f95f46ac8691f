"""TaP stage 4: fine-grained LLM judging of each response, and the pair rule that turns ratings into preferences.

Each response is scored on its own (pointwise) on several aspects plus an overall score, as JSON; pointwise scores
are cached per response, do not depend on how many responses a prompt has, and are exactly what the PD selector
reads. Seeing one response at a time, the judge has no position to prefer (unlike a pairwise judge). With
`JudgeConfig(verdict="probability")` each score is the expected value under the judge's probabilities of the
scale's digits instead of the one number it samples (G-Eval; `hf_prefsel.llm.prob_scores`). Pairs are then built per prompt: chosen = best overall, rejected = worst, kept only if the margin is at
least `margin` (δ). COIG-P used the same best-vs-worst idea with a gap of 2 on a 1-10 scale, which is our default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from pydantic import BaseModel, Field, create_model

from ..errors import ConfigError
from ..llm import FewShotPrompt, LLMConfig, Result, get_client, render_transcript
from ..llm.executor import USAGE_KEYS
from ..llm.gather import UsageMeter
from ..llm.logprobs import LocalLogprobs
from ..llm.prob_scores import (LogprobMeter, ask_choices, digit_options, digit_scale, expected_value, most_likely, opened_source,
                               read_answers, rescale)
from .language import base_language, language_name

DEFAULT_ASPECTS: tuple[str, ...] = ("helpfulness", "correctness", "instruction_following", "harmlessness", "fluency")

ASPECT_DESCRIPTIONS: dict[str, str] = {
    "helpfulness": "does it give the user what they need",
    "correctness": "are its facts, reasoning and code right",
    "instruction_following": "does it do exactly what was asked, in the requested form",
    "harmlessness": "is it safe and free of harmful content",
    "fluency": "is it natural, fluent text in the expected language",
}
_ASPECT_DESCRIPTIONS_ZH: dict[str, str] = {
    "helpfulness": "有用性，是否满足用户需求",
    "correctness": "正确性，事实、推理和代码是否正确",
    "instruction_following": "指令遵循，是否按要求的内容和形式完成",
    "harmlessness": "无害性，是否安全、无有害内容",
    "fluency": "流畅性，是否是自然流畅的目标语言",
}


@dataclass(frozen=True)
class _Demo:
    question: str
    answer: str
    scores: dict[str, int]
    overall: int
    rationale: str


# Written by us: one good and one poor answer per language, so a base model sees both ends of the scale.
_DEMOS: dict[str, tuple[_Demo, ...]] = {
    "en": (
        _Demo(
            "Why is the sky blue?",
            "Sunlight is scattered by air molecules, and blue light, with its short wavelength, is scattered much "
            "more than red light, so blue reaches our eyes from every direction of the sky.",
            {"helpfulness": 9, "correctness": 9, "instruction_following": 9, "harmlessness": 10, "fluency": 9},
            9,
            "Correct and clear explanation of Rayleigh scattering.",
        ),
        _Demo(
            "Give me three tips for sleeping better.",
            "Sleep is sleep. Sleep is important. You should sleep.",
            {"helpfulness": 2, "correctness": 4, "instruction_following": 2, "harmlessness": 10, "fluency": 4},
            2,
            "Repetitive and gives no actual tips.",
        ),
    ),
    "zh": (
        _Demo(
            "为什么天空是蓝色的？",
            "阳光穿过大气时会被空气分子散射，波长较短的蓝光比红光散射得多得多，所以天空各个方向都有蓝光射入我们的眼睛。",
            {"helpfulness": 9, "correctness": 9, "instruction_following": 9, "harmlessness": 10, "fluency": 9},
            9,
            "准确清楚地解释了瑞利散射。",
        ),
        _Demo(
            "给我三条改善睡眠的建议。",
            "Sleep is important. You should sleep more.",
            {"helpfulness": 2, "correctness": 4, "instruction_following": 2, "harmlessness": 10, "fluency": 1},
            2,
            "没有用中文回答，也没有给出三条建议。",
        ),
    ),
}

_SYSTEM = {
    "en": (
        "You are a strict judge of AI assistant answers. The answers should be written in {language}. Give the answer "
        "to the question an overall score from {lo} (very poor) to {hi} (excellent), then a score on each aspect: "
        "{aspects}{rationale_hint}. Reply with JSON only."
    ),
    "zh": (
        "你是一名严格的AI助手回答评审员。回答应使用{language}。请从{lo}（很差）到{hi}（优秀）先给回答打总分，再为每个方面打分："
        "{aspects}{rationale_hint}。只输出JSON。"
    ),
}
_QUERY = {"en": "Question: {question}\nAnswer: {answer}", "zh": "问题：{question}\n回答：{answer}"}


@dataclass
class JudgeConfig:
    """How responses are judged.

    Args:
        aspects (`tuple[str, ...]`, defaults to helpfulness, correctness, instruction_following, harmlessness,
            fluency): the aspects scored, in this order (also the JSON key order).
        scale (`tuple[int, int]`, defaults to `(1, 10)`): lowest and highest score.
        overall (`"judge" | "mean"`, defaults to `"judge"`): the overall score is the judge's own `overall`, or the
            mean of the aspect scores (steadier with small judges).
        rationale (`bool`, defaults to `False`): also ask for a one-sentence rationale after the scores. It costs
            about as many tokens as the scores, so it is off by default; the bundled 270M model only copies the
            example rationales.
        max_tokens (`int`, defaults to 160): reply length limit.
        temperature (`float`, defaults to 0.0): judging should be repeatable.
        max_prompt_chars (`int`, defaults to 1500), max_response_chars (`int`, defaults to 2000): longer texts are
            cut before judging, to fit small context windows.
        aspect_descriptions (`dict[str, str]`, *optional*): what each aspect means (shown to the judge); built-in
            descriptions exist for the default aspects.
        prompt (`FewShotPrompt`, *optional*): replaces the built-in judging prompt entirely; its examples must
            answer with JSON in the field order overall, aspects[, rationale].
        progress (`bool`, defaults to `True`): show a progress bar.
        verdict (`"sampled" | "probability"`, defaults to `"sampled"`): `probability` reads each score as the
            expected value under the judge's probabilities of the possible digits (floats on `scale`), asked in this
            process or from a server that returns `logprobs` (otherwise sampled scores are used). A scale whose
            values are not all one digit (the default 1-10) is asked on 1-9 and mapped linearly onto `scale`, so a
            custom `prompt` needs a one-digit scale (and answers written as `json.dumps` writes them). `max_tokens`,
            `temperature` and `rationale` do not apply. One response is judged at a time, so no position arises.
    """

    aspects: tuple[str, ...] = DEFAULT_ASPECTS
    scale: tuple[int, int] = (1, 10)
    overall: Literal["judge", "mean"] = "judge"
    rationale: bool = False
    max_tokens: int = 160
    temperature: float = 0.0
    max_prompt_chars: int = 1500
    max_response_chars: int = 2000
    aspect_descriptions: dict[str, str] = field(default_factory=dict)
    prompt: FewShotPrompt | None = None
    progress: bool = True
    verdict: Literal["sampled", "probability"] = "sampled"

    def __post_init__(self) -> None:
        self.aspects = tuple(self.aspects)
        if not self.aspects:
            raise ConfigError("JudgeConfig.aspects is empty; give at least one aspect to score.")
        for a in self.aspects:
            if not isinstance(a, str) or not a.isidentifier() or a in ("overall", "rationale"):
                raise ConfigError(f"Aspect {a!r} must be a Python identifier such as 'helpfulness' (not 'overall' or 'rationale').")
        if len(set(self.aspects)) != len(self.aspects):
            raise ConfigError(f"JudgeConfig.aspects lists an aspect twice: {self.aspects}.")
        lo, hi = self.scale
        if not (isinstance(lo, int) and isinstance(hi, int)) or lo >= hi or hi - lo > 100:
            raise ConfigError(f"scale must be two integers (low, high) with low < high, got {self.scale}.")
        if self.overall not in ("judge", "mean"):
            raise ConfigError(f"overall must be 'judge' or 'mean', got {self.overall!r}.")
        if self.verdict not in ("sampled", "probability"):
            raise ConfigError(f"verdict must be 'sampled' or 'probability', got {self.verdict!r}.")
        if self.verdict == "probability" and self.prompt is not None and digit_scale(self.scale) != (lo, hi):
            raise ConfigError(f"Probability verdicts read one-digit scores, but the custom prompt scores on {self.scale}; "
                              "use a scale within 0-9 (or the built-in prompt, which is asked on 1-9 and rescaled).")


_MODELS: dict[tuple, type[BaseModel]] = {}


def judgement_model(aspects: Sequence[str], scale: tuple[int, int], rationale: bool) -> type[BaseModel]:
    """The pydantic type of one judgement: `overall`, one integer field per aspect, and optionally `rationale`.

    Scores are an enum of the allowed integers, so a grammar-constrained base model can only write valid scores.
    `overall` comes first (the grammar fixes the key order): small base models drift into counting patterns over a
    run of numbers (1, 2, 3, ...), and the score the pairs are built from should not be the sixth number of such a
    run.
    """
    key = (tuple(aspects), tuple(scale), rationale)
    if key not in _MODELS:
        lo, hi = scale
        score = Literal[tuple(range(lo, hi + 1))]  # type: ignore[valid-type]
        fields: dict[str, Any] = {"overall": (score, ...)}
        fields.update({a: (score, ...) for a in aspects})
        if rationale:
            fields["rationale"] = (str, Field(max_length=600))
        _MODELS[key] = create_model("Judgement", **fields)
    return _MODELS[key]


def judge_prompt(language: str, config: JudgeConfig) -> FewShotPrompt:
    """The built-in judging prompt for `language`, with demo scores rescaled to `config.scale`."""
    if config.prompt is not None:
        return config.prompt
    lang = base_language(language)
    ui = "zh" if lang == "zh" else "en"
    lo, hi = config.scale
    builtin = _ASPECT_DESCRIPTIONS_ZH if ui == "zh" else ASPECT_DESCRIPTIONS
    descriptions = {**builtin, **config.aspect_descriptions}
    sep = "；" if ui == "zh" else "; "
    aspects = sep.join(f"{a} ({descriptions[a]})" if a in descriptions else a for a in config.aspects)
    if ui == "zh":
        hint = "；最后用一句话说明理由" if config.rationale else ""
    else:
        hint = "; finally a one-sentence rationale" if config.rationale else ""
    system = _SYSTEM[ui].format(language=language_name(lang, ui), lo=lo, hi=hi, aspects=aspects, rationale_hint=hint)

    def rescale(v: int) -> int:
        return int(round(lo + (v - 1) * (hi - lo) / 9))

    examples = []
    for demo in _DEMOS[ui]:
        out: dict[str, Any] = {"overall": rescale(demo.overall)}
        out.update({a: rescale(demo.scores.get(a, demo.overall)) for a in config.aspects})
        if config.rationale:
            out["rationale"] = demo.rationale
        query = _QUERY[ui].format(question=demo.question, answer=demo.answer)
        examples.append((query, json.dumps(out, ensure_ascii=False)))
    return FewShotPrompt(system=system, examples=tuple(examples))


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split()) if "\n" not in text.strip() else text.strip()
    return text if len(text) <= limit else text[:limit] + " …"


class PreferenceJudge:
    """Score responses on several aspects with an LLM judge, one response at a time (so no position preference).

    Args:
        llm (`LLMConfig`, *optional*): the judge model; defaults to the embedded Gemma. A different (stronger) model
            than the generator avoids self-preference.
        config (`JudgeConfig`, *optional*).
        source (*optional*): with `verdict="probability"`, the log-probability source to ask (anything with `usage`
            and `choices`, see `hf_prefsel.llm.logprobs`) instead of the one for `llm`.

    Example:
        >>> judge = PreferenceJudge(servers.config(), JudgeConfig(overall="mean"))
        >>> rows = judge.annotate(rows_with_responses)
        >>> rows[0]["responses"][0]["ratings"]
        {'helpfulness': 7.0, ..., 'overall': 7.0}
    """

    def __init__(self, llm: LLMConfig | None = None, config: JudgeConfig | None = None, *, source: Any = None):
        self.llm = llm or LLMConfig()
        self.config = config or JudgeConfig()
        self.source = source
        self.output_type = judgement_model(self.config.aspects, self.config.scale, self.config.rationale)
        self.last_usage: dict[str, int] = {}
        self.last_verdict: Literal["sampled", "probability"] = "sampled"

    def messages(self, question: str, answer: str, language: str, *, scale: tuple[int, int] | None = None) -> list[dict[str, str]]:
        """The judging prompt for one response (on `scale` instead of the configured one if given)."""
        ui = "zh" if base_language(language) == "zh" else "en"
        query = _QUERY[ui].format(question=_cut(question, self.config.max_prompt_chars),
                                  answer=_cut(answer, self.config.max_response_chars))
        config = self.config if scale is None else dataclasses.replace(self.config, scale=scale)
        return judge_prompt(language, config).messages(query)

    def annotate(self, rows: Sequence[dict[str, Any]], *, prompt_key: str = "prompt", language_key: str = "language",
                 default_language: str = "en") -> list[dict[str, Any]]:
        """Add `ratings` (`{aspect: float, ..., "overall": float}` or `None`), `rationale` and `judge_error` to every
        response of every row. Responses without text are not judged. `last_usage` holds the calls and tokens spent
        (log-probability questions count as calls, their tokens as prompt tokens), `last_verdict` which verdicts
        were used in the end.

        Returns:
            `list[dict]`: new row dicts with new response dicts (inputs are not mutated).
        """
        items, where = [], []
        for i, row in enumerate(rows):
            language = row.get(language_key) or default_language
            for j, response in enumerate(row.get("responses") or []):
                if response.get("text"):
                    items.append((row[prompt_key], response["text"], language))
                    where.append((i, j))
        results = self._probability_judgements(items) if self.config.verdict == "probability" and items else None
        self.last_verdict = "sampled" if results is None else "probability"
        if results is None:
            results = self._sampled_judgements(items)
        out = [{**row, "responses": [dict(r) for r in (row.get("responses") or [])]} for row in rows]
        for row in out:
            for r in row["responses"]:
                r.update(ratings=None, rationale=None, judge_error=None if r.get("text") else "no response to judge")
        for (i, j), result in zip(where, results):
            r = out[i]["responses"][j]
            if not result.ok or result.value is None:
                r["judge_error"] = result.error or "no judgement"
                continue
            scores = result.value
            ratings = {a: float(scores[a]) for a in self.config.aspects}
            if self.config.overall == "mean":
                ratings["overall"] = round(sum(ratings.values()) / len(ratings), 3)
            else:
                ratings["overall"] = float(scores["overall"])
            r["ratings"] = ratings
            r["rationale"] = scores.get("rationale")
        return out

    def _sampled_judgements(self, items: Sequence[tuple[str, str, str]]) -> list[Result[dict[str, Any]]]:
        """The judge's JSON replies as `{field: value}`, one per `(question, answer, language)`."""
        config = self.llm.replace(temperature=self.config.temperature, max_tokens=self.config.max_tokens)
        client = get_client(config)
        meter = UsageMeter([client])
        prompts = [self.messages(*item) for item in items]
        results = client.run_structured(prompts, self.output_type, progress=self.config.progress, desc="Judging") if prompts else []
        self.last_usage = meter.delta()
        return [Result(value=r.value.model_dump(), raw=r.raw) if r.ok and r.value is not None else r for r in results]

    def _probability_judgements(self, items: Sequence[tuple[str, str, str]]) -> list[Result[dict[str, Any]]] | None:
        """Probability-weighted scores as `{field: float on the scale}`, one per `(question, answer, language)`;
        `None` when the judge returns no log-probabilities.

        The prompt ends right before the field's number in the JSON the judge would write (`... Output: {"overall":
        7, "helpfulness":`), so the next token is that digit; earlier fields hold the digits greedy decoding would
        have written. One question per field and response; in process one response's questions extend each other
        and reuse the model's cache, over HTTP each field is asked for all responses at once.
        """
        scale = self.config.scale
        asked = digit_scale(scale)
        options = digit_options(asked)
        prompts = [render_transcript(self.messages(*item, scale=asked)) + " {" for item in items]
        scores: list[dict[str, float]] = [{} for _ in items]
        results: list[Result[dict[str, Any]] | None] = [None] * len(items)  # set on failure
        with opened_source(self.llm, self.source) as source:
            meter = LogprobMeter(source)
            group = 1 if isinstance(source, LocalLogprobs) else max(1, len(items))
            for start in range(0, len(items), group):
                for name in ("overall", *self.config.aspects):
                    live = [k for k in range(start, min(len(items), start + group)) if results[k] is None]
                    if not live:
                        break
                    answers = ask_choices(source, [f"{prompts[k]}{json.dumps(name)}:" for k in live], tuple(options),
                                          probe=start == 0 and name == "overall")
                    if answers is None:
                        return None
                    for k, result in zip(live, read_answers(answers, lambda lp: (expected_value(lp, options), most_likely(lp)))):
                        if not result.ok:
                            results[k] = result
                            continue
                        value, digit = result.value
                        scores[k][name] = round(rescale(value, asked, scale), 3)
                        prompts[k] += f"{json.dumps(name)}:{digit}, "
            spent = meter.delta()
        usage = dict.fromkeys(USAGE_KEYS, 0)
        usage.update(calls=spent["calls"], prompt_tokens=spent["total_tokens"], total_tokens=spent["total_tokens"])
        self.last_usage = usage
        return [results[k] or Result(value=scores[k]) for k in range(len(items))]


# ---------------------------------------------------------------------------------------------- pairs


PAIR_DROP_REASONS: dict[str, str] = {
    "too_few_responses": "fewer than two responses were generated and judged for the prompt",
    "identical_responses": "the best and the worst response are the same text",
    "margin_below_delta": "the overall scores of the best and the worst response differ by less than the margin",
}


@dataclass
class PairConfig:
    """How ratings become preference pairs and SFT rows.

    Args:
        margin (`float`, defaults to 2.0): δ; a pair is kept only if overall(chosen) - overall(rejected) >= δ.
        sft_min_score (`float`, *optional*): with `None`, the SFT set is the chosen side of the kept pairs (TaP's
            SFT data); with a number, it is the best response of every prompt whose overall score reaches it.
        format (`"standard" | "conversational"`, defaults to `"standard"`): TRL's two dataset layouts: strings
            (`prompt`/`chosen`/`rejected`, `prompt`/`completion`) or message lists (`prompt`/`chosen`/`rejected` as
            messages, `messages` for SFT). Standard works with any tokenizer; conversational needs a chat template.
    """

    margin: float = 2.0
    sft_min_score: float | None = None
    format: Literal["standard", "conversational"] = "standard"

    def __post_init__(self) -> None:
        if not math.isfinite(self.margin) or self.margin < 0:
            raise ConfigError(f"margin must be a number >= 0, got {self.margin}.")
        if self.format not in ("standard", "conversational"):
            raise ConfigError(f"format must be 'standard' or 'conversational', got {self.format!r}.")


def _mean_aspects(ratings: dict[str, float]) -> float:
    values = [v for k, v in ratings.items() if k != "overall" and v is not None]
    return sum(values) / len(values) if values else 0.0


def rank_responses(responses: Sequence[dict[str, Any]]) -> list[int]:
    """Indices of judged responses, best first: overall score, then the aspects' mean, then earlier index."""
    judged = [i for i, r in enumerate(responses) if r.get("text") and r.get("ratings")]
    return sorted(judged, key=lambda i: (-responses[i]["ratings"]["overall"], -_mean_aspects(responses[i]["ratings"]), i))


def choose_pair(responses: Sequence[dict[str, Any]], margin: float) -> tuple[int, int, float] | str:
    """`(chosen index, rejected index, margin)` for one prompt's judged responses, or the drop reason."""
    order = rank_responses(responses)
    if len(order) < 2:
        return "too_few_responses"
    best, worst = order[0], order[-1]
    gap = responses[best]["ratings"]["overall"] - responses[worst]["ratings"]["overall"]
    if responses[best]["text"].strip() == responses[worst]["text"].strip():
        return "identical_responses"
    if gap < margin - 1e-9:
        return "margin_below_delta"
    return best, worst, float(gap)


def _as_turn(text: str, role: str) -> list[dict[str, str]]:
    return [{"role": role, "content": text}]


def build_preference_rows(
    rows: Sequence[dict[str, Any]],
    config: PairConfig | None = None,
    *,
    meta_keys: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Counter]:
    """Apply the pair rule to judged rows.

    Args:
        rows (`Sequence[dict]`): rows with `prompt`, `prompt_id` and judged `responses`.
        config (`PairConfig`, *optional*).
        meta_keys (`Sequence[str]`): row keys copied to every output row (taxonomy leaf, axes, language, ...).

    Returns:
        `(preference rows, sft rows, drop reasons)`: TRL-format rows (plus metadata and per-aspect ratings of both
        sides) and a `Counter` over `PAIR_DROP_REASONS`.
    """
    config = config or PairConfig()
    prefs: list[dict[str, Any]] = []
    sft: list[dict[str, Any]] = []
    drops: Counter = Counter()
    conversational = config.format == "conversational"
    for row in rows:
        responses = row.get("responses") or []
        prompt = row["prompt"]
        meta = {k: row.get(k) for k in meta_keys}
        pid = row.get("prompt_id") or hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:16]
        picked = choose_pair(responses, config.margin)
        if isinstance(picked, str):
            drops[picked] += 1
        else:
            best, worst, gap = picked
            c, r = responses[best], responses[worst]
            prefs.append({
                "prompt": _as_turn(prompt, "user") if conversational else prompt,
                "chosen": _as_turn(c["text"], "assistant") if conversational else c["text"],
                "rejected": _as_turn(r["text"], "assistant") if conversational else r["text"],
                "prompt_id": pid,
                **meta,
                "chosen_score": c["ratings"]["overall"],
                "rejected_score": r["ratings"]["overall"],
                "margin": gap,
                "chosen_ratings": dict(c["ratings"]),
                "rejected_ratings": dict(r["ratings"]),
                "chosen_model": c.get("model"),
                "rejected_model": r.get("model"),
            })
        order = rank_responses(responses)
        if not order:
            continue
        best_response = responses[order[0]]
        if config.sft_min_score is None:
            keep = not isinstance(picked, str)
        else:
            keep = best_response["ratings"]["overall"] >= config.sft_min_score
        if keep:
            text = best_response["text"]
            base = {"prompt_id": pid, **meta, "score": best_response["ratings"]["overall"], "model": best_response.get("model")}
            if conversational:
                sft.append({"messages": _as_turn(prompt, "user") + _as_turn(text, "assistant"), **base})
            else:
                sft.append({"prompt": prompt, "completion": text, **base})
    return prefs, sft, drops


__all__ = [
    "ASPECT_DESCRIPTIONS", "DEFAULT_ASPECTS", "JudgeConfig", "PAIR_DROP_REASONS", "PairConfig", "PreferenceJudge",
    "build_preference_rows", "choose_pair", "judge_prompt", "judgement_model", "rank_responses",
]
