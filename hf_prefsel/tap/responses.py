"""TaP stage 3: several responses per prompt, from one or several models and sampling settings.

Preference pairs are only informative when the responses differ; the spread comes from different models, different
temperatures and different seeds. Responses are free text (no grammar), so a base model gets a few-shot transcript
whose answers end at a blank line, while an instruction-tuned endpoint gets a plain chat turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import BudgetExceededError, ConfigError, EndpointError, EndpointUnavailableError
from ..llm import FewShotPrompt, LLMConfig, get_client
from ..llm.prompt import Message
from ..llm.gather import UsageMeter, gather
from ..llm.redact import error_text
from .language import LanguageDetector, base_language, language_name

# Written by us. One-line answers keep the transcript regular for base models (a blank line ends an answer).
RESPONSE_PROMPTS: dict[str, FewShotPrompt] = {
    "en": FewShotPrompt(
        system="You are a helpful, honest and harmless AI assistant. Answer the user's request in English, correctly "
        "and to the point, in one paragraph.",
        examples=(
            (
                "What causes the seasons on Earth?",
                "The seasons come from the tilt of Earth's axis (about 23.5 degrees). As Earth orbits the Sun, each "
                "hemisphere leans toward the Sun for part of the year, so it gets more direct sunlight and longer days "
                "(summer), and leans away for the other part, with weaker sunlight and shorter days (winter).",
            ),
            (
                "Write a Python function that reverses a string.",
                "Here is a short version: `def reverse(s): return s[::-1]`. The slice `[::-1]` walks the string from "
                "the end to the start, so `reverse(\"abc\")` returns `\"cba\"`.",
            ),
        ),
    ),
    "zh": FewShotPrompt(
        system="你是一个乐于助人、诚实、无害的AI助手。请用中文准确、简洁地回答用户的请求，写成一段话。",
        examples=(
            (
                "为什么地球上会有四季？",
                "四季是由地轴倾斜（约23.5度）造成的。地球绕太阳公转时，南北半球轮流朝向太阳：朝向太阳的半球阳光直射、白天更长，"
                "就是夏季；背向太阳的半球阳光斜射、白天更短，就是冬季。",
            ),
            (
                "用Python写一个反转字符串的函数。",
                "可以这样写：`def reverse(s): return s[::-1]`。切片`[::-1]`从字符串末尾向开头逐个取字符，"
                "所以`reverse(\"abc\")`返回`\"cba\"`。",
            ),
        ),
    ),
}


def response_prompt(language: str) -> FewShotPrompt:
    """The built-in answer prompt for `language` (English examples with an instruction to answer in that language
    when there is no prompt written in it)."""
    lang = base_language(language)
    if lang in RESPONSE_PROMPTS:
        return RESPONSE_PROMPTS[lang]
    en = RESPONSE_PROMPTS["en"]
    name = language_name(lang)
    return FewShotPrompt(system=en.system.replace("in English", f"in {name}"), examples=en.examples)


@dataclass
class ResponseCandidate:
    """One source of responses: a model (an `LLMConfig`) and sampling settings.

    Args:
        name (`str`, *optional*): a label stored with each response (`model` field); defaults to
            `"<model>@t<temperature>"`.
        llm (`LLMConfig`, *optional*): the model; `None` uses the generator's default model.
        temperature (`float`, defaults to 0.7): sampling temperature; different values spread response quality.
        seed (`int`, *optional*): sampling seed; distinct seeds make distinct (and separately cached) calls.
        max_tokens (`int`, *optional*): overrides `ResponseGenerationConfig.max_tokens`.
    """

    name: str | None = None
    llm: LLMConfig | None = None
    temperature: float = 0.7
    seed: int | None = None
    max_tokens: int | None = None


@dataclass
class ResponseGenerationConfig:
    """How responses are generated.

    Args:
        n_responses (`int`, defaults to 2): responses per prompt when `candidates` is not given.
        temperatures (`tuple[float, float]`, defaults to `(0.3, 1.1)`): the default candidates' temperatures are
            spread evenly over this range (one candidate per response), with seeds 0, 1, ...; a wide range gives the
            judge clear differences to find.
        candidates (`list[ResponseCandidate]`, *optional*): explicit sources, one response each per prompt (models,
            endpoints and temperatures mixed as you like). Overrides `n_responses` and `temperatures`.
        max_tokens (`int`, defaults to 256): answer length limit.
        stop (`list[str]`, *optional*): extra stop sequences.
        examples_on_chat (`bool`, defaults to `False`): send the few-shot examples on the chat route too. Base models
            (completion route) always get them; instruction-tuned models answer better without them.
        prompts (`dict[str, FewShotPrompt]`, *optional*): answer prompts per language, replacing the built-in ones.
        detect_language (`bool`, defaults to `True`): store each response's detected language (wrong-language answers
            are kept: they make good rejected responses).
        progress (`bool`, defaults to `True`): show a progress bar.
    """

    n_responses: int = 2
    temperatures: tuple[float, float] = (0.3, 1.1)
    candidates: list[ResponseCandidate] | None = None
    max_tokens: int = 256
    stop: list[str] | None = None
    examples_on_chat: bool = False
    prompts: dict[str, FewShotPrompt] | None = None
    detect_language: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.candidates is None and self.n_responses < 1:
            raise ConfigError(f"n_responses must be >= 1, got {self.n_responses}.")
        if self.candidates is not None and not self.candidates:
            raise ConfigError("candidates is an empty list; give at least one ResponseCandidate or leave it None.")
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}.")
        lo, hi = self.temperatures
        if lo < 0 or hi < lo:
            raise ConfigError(f"temperatures must be (low, high) with 0 <= low <= high, got {self.temperatures}.")

    def resolved_candidates(self) -> list[ResponseCandidate]:
        """The candidates actually used: explicit ones, or `n_responses` temperatures spread over the range."""
        if self.candidates is not None:
            return list(self.candidates)
        lo, hi = self.temperatures
        n = self.n_responses
        temps = [lo] if n == 1 else [lo + (hi - lo) * i / (n - 1) for i in range(n)]
        return [ResponseCandidate(temperature=round(t, 3), seed=i) for i, t in enumerate(temps)]


def _model_label(config: LLMConfig) -> str:
    """The model that wrote a response, for `chosen_model`/`rejected_model`: the configured name, the embedded Gemma,
    or the id the endpoint reported (asked before the first reply); never a URL."""
    from ..llm.describe import served_model

    if config.model:
        return config.model
    if config.is_embedded:
        return "gemma-3-270m"
    return served_model(config) or "unknown-model"


class ResponseGenerator:
    """Generate `m` responses per prompt.

    Args:
        llm (`LLMConfig`, *optional*): the default model (candidates without their own `llm` use it); defaults to the
            embedded Gemma.
        config (`ResponseGenerationConfig`, *optional*).

    Example:
        >>> gen = ResponseGenerator(servers.config(), ResponseGenerationConfig(n_responses=2))
        >>> rows = gen.generate([{"prompt": "什么是光合作用？", "language": "zh"}])
        >>> [r["text"] for r in rows[0]["responses"]]
    """

    def __init__(self, llm: LLMConfig | None = None, config: ResponseGenerationConfig | None = None):
        self.llm = llm or LLMConfig()
        self.config = config or ResponseGenerationConfig()
        self.candidates = self.config.resolved_candidates()
        self.detector = LanguageDetector()
        self.last_usage: dict[str, int] = {}

    def _messages(self, prompt: str, language: str, route: str) -> list[Message]:
        prompts = self.config.prompts or {}
        template = prompts.get(base_language(language)) or response_prompt(language)
        if route == "completion" or self.config.examples_on_chat:
            return template.messages(prompt)
        return [{"role": "system", "content": template.system}, {"role": "user", "content": prompt}]

    def _label(self, candidate: ResponseCandidate, config: LLMConfig) -> str:
        return candidate.name or f"{_model_label(config)}@t{candidate.temperature:g}"

    def generate(self, rows: Sequence[dict[str, Any]], *, prompt_key: str = "prompt", language_key: str = "language",
                 default_language: str = "en") -> list[dict[str, Any]]:
        """Add a `responses` list to each row: `{text, model, temperature, seed, language, error}` per candidate.

        Failed calls keep their place with `text=None` and the reason in `error`; an unreachable endpoint raises.

        Args:
            rows (`Sequence[dict]`): rows with a prompt (and optionally its language).
            prompt_key, language_key (`str`): where the prompt and its language are.
            default_language (`str`): for rows without a language.

        Returns:
            `list[dict]`: new row dicts (inputs are not mutated).
        """
        configs = [c.llm or self.llm for c in self.candidates]
        clients = [get_client(c) for c in configs]
        meter = UsageMeter(clients)
        coros = []
        for row in rows:
            language = row.get(language_key) or default_language
            for candidate, config, client in zip(self.candidates, configs, clients):
                overrides: dict[str, Any] = {
                    "temperature": candidate.temperature,
                    "seed": candidate.seed,
                    "max_tokens": candidate.max_tokens or self.config.max_tokens,
                }
                if self.config.stop:
                    base = list(config.stop or [])
                    if config.resolved_route == "completion":
                        base += client.transcript.stop_sequences()
                    overrides["stop"] = list(dict.fromkeys(base + list(self.config.stop)))
                messages = self._messages(row[prompt_key], language, config.resolved_route)
                coros.append(client.generate(messages, overrides=overrides))
        replies = gather(coros, desc="Responses", progress=self.config.progress)
        out: list[dict[str, Any]] = []
        k = 0
        for row in rows:
            language = row.get(language_key) or default_language
            responses = []
            for candidate, config in zip(self.candidates, configs):
                reply = replies[k]
                k += 1
                entry: dict[str, Any] = {
                    "text": None, "model": self._label(candidate, config), "temperature": float(candidate.temperature),
                    "seed": candidate.seed, "language": None, "error": None,
                }
                if isinstance(reply, EndpointUnavailableError):
                    raise reply
                if isinstance(reply, BaseException):
                    if not isinstance(reply, (EndpointError, BudgetExceededError)):
                        raise reply
                    entry["error"] = error_text(reply)
                else:
                    text = reply.text.strip()
                    if text:
                        entry["text"] = text
                        if self.config.detect_language:
                            entry["language"] = self.detector.detect(text).language
                    else:
                        entry["error"] = "empty response"
                responses.append(entry)
            out.append({**row, "responses": responses, "language": language})
        self.last_usage = meter.delta()
        return out

    def __repr__(self) -> str:
        return f"ResponseGenerator(llm={self.llm!r}, config={self.config!r})"


__all__ = ["RESPONSE_PROMPTS", "ResponseCandidate", "ResponseGenerationConfig", "ResponseGenerator", "response_prompt"]
