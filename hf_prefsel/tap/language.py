"""Offline language identification for filtering generated prompts and checking responses.

Uses `py3langid` (BSD-3-Clause), whose model ships inside the wheel: no download at run time, numpy only, about
0.1 ms per short text. Its raw labels are folded into the codes people use for generation targets (`wuu`/`yue`
written in Han characters count as `zh`), and a script check catches the clear cases the statistical model can
miss on very short texts (a "Chinese" prompt without a single Han character is not Chinese).
"""

from __future__ import annotations

import threading
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import ConfigError, DependencyError

# Labels of the py3langid model that people mean by one target code.
DEFAULT_ALIASES: dict[str, str] = {"wuu": "zh", "yue": "zh", "cmn": "zh", "lzh": "zh", "pcm": "en", "sco": "en", "nn": "no"}

# Scripts that identify a language (family) on their own; other targets are expected in Latin or unknown script.
_TARGET_SCRIPTS: dict[str, tuple[str, ...]] = {
    "zh": ("han",),
    "ja": ("han", "kana"),
    "ko": ("hangul", "han"),
    "ru": ("cyrillic",), "uk": ("cyrillic",), "bg": ("cyrillic",), "sr": ("cyrillic", "latin"), "kk": ("cyrillic",),
    "ar": ("arabic",), "fa": ("arabic",), "ur": ("arabic",),
    "he": ("hebrew",), "el": ("greek",), "th": ("thai",), "hi": ("devanagari",), "mr": ("devanagari",),
}
_LANGUAGE_NAMES: dict[str, tuple[str, str]] = {
    "en": ("English", "英语"), "zh": ("Chinese", "中文"), "ja": ("Japanese", "日语"), "ko": ("Korean", "韩语"),
    "fr": ("French", "法语"), "de": ("German", "德语"), "es": ("Spanish", "西班牙语"), "pt": ("Portuguese", "葡萄牙语"),
    "it": ("Italian", "意大利语"), "ru": ("Russian", "俄语"), "ar": ("Arabic", "阿拉伯语"), "vi": ("Vietnamese", "越南语"),
    "id": ("Indonesian", "印尼语"), "th": ("Thai", "泰语"), "tr": ("Turkish", "土耳其语"), "nl": ("Dutch", "荷兰语"),
    "pl": ("Polish", "波兰语"), "uk": ("Ukrainian", "乌克兰语"), "hi": ("Hindi", "印地语"),
}


def base_language(code: str) -> str:
    """`"zh-CN"` → `"zh"`, `"pt_BR"` → `"pt"`: detectors and filters compare base codes."""
    return code.replace("_", "-").split("-")[0].lower()


def check_language(code: str) -> str:
    """`code` if it names a language the offline detector knows (ISO 639-1, e.g. "en", "zh-CN"), else a
    `ConfigError`: an unknown code would make every generated text fail the language filter, after paying for it."""
    base = base_language(code)
    known = set(_identifier().nb_classes) | set(DEFAULT_ALIASES.values())
    if base not in known:
        raise ConfigError(f"Unknown language code {code!r}: give an ISO 639-1 code such as en, zh, fr or de "
                          f"({len(known)} are supported offline).")
    return code


def language_name(code: str, in_language: str = "en") -> str:
    """A human name for a language code ("zh" → "Chinese", or "中文" with `in_language="zh"`), for prompts."""
    names = _LANGUAGE_NAMES.get(base_language(code))
    if names is None:
        return code
    return names[1] if base_language(in_language) == "zh" else names[0]


def _script(ch: str) -> str | None:
    if not ch.isalpha():
        return None
    o = ord(ch)
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2FFFF or 0xF900 <= o <= 0xFAFF:
        return "han"
    if 0x3040 <= o <= 0x30FF:
        return "kana"
    if 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF:
        return "hangul"
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return "other"
    for script in ("LATIN", "CYRILLIC", "ARABIC", "HEBREW", "GREEK", "THAI", "DEVANAGARI"):
        if name.startswith(script):
            return script.lower()
    return "other"


def script_shares(text: str) -> dict[str, float]:
    """Share of each script among the letters of `text` (digits, punctuation and spaces are ignored)."""
    counts: dict[str, int] = {}
    for ch in text:
        s = _script(ch)
        if s is not None:
            counts[s] = counts.get(s, 0) + 1
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


@dataclass
class Detection:
    """What the detector says about one text.

    Args:
        language (`str`): the most likely base code after aliasing (e.g. `"zh"`), `"und"` if the text has no letters.
        confidence (`float`): its probability in [0, 1] (aliases' probabilities are added up).
    """

    language: str
    confidence: float


@dataclass
class LanguageFilterConfig:
    """When a text counts as "not in the target language".

    Args:
        min_confidence (`float`, defaults to 0.5): a text is rejected for its detected language only when the detector
            is at least this sure; below it the text is kept (short texts and code give flat, unreliable scores).
        min_script_share (`float`, defaults to 0.1): for targets with their own script (zh, ja, ko, ru, ar, ...), at
            least this share of the letters must be in that script; for other targets at most `1 - this` may be in a
            script foreign to the target. Catches e.g. an English answer to a Chinese prompt whatever the model says.
        aliases (`dict[str, str]`): detector labels folded into a target code (defaults: wuu/yue → zh, pcm → en, ...).
    """

    min_confidence: float = 0.5
    min_script_share: float = 0.1
    aliases: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ALIASES))

    def __post_init__(self) -> None:
        for name in ("min_confidence", "min_script_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value}.")


_IDENTIFIER: Any = None
_LOCK = threading.Lock()


def _identifier() -> Any:
    global _IDENTIFIER
    with _LOCK:
        if _IDENTIFIER is None:
            try:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier
            except ImportError as exc:
                raise DependencyError("py3langid", "tap", "Language detection for TaP") from exc
            _IDENTIFIER = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _IDENTIFIER


class LanguageDetector:
    """Detect languages offline and decide whether texts are in a target language.

    Args:
        config (`LanguageFilterConfig`, *optional*): thresholds and aliases.

    Example:
        >>> det = LanguageDetector()
        >>> det.detect("请写一首关于秋天的诗").language
        'zh'
        >>> det.reject_reason("Write a poem about autumn", "zh")
        'script'
    """

    def __init__(self, config: LanguageFilterConfig | None = None):
        self.config = config or LanguageFilterConfig()

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def detect(self, text: str) -> Detection:
        """The most likely language of `text` with its probability."""
        if not isinstance(text, str) or not any(ch.isalpha() for ch in text):
            return Detection("und", 0.0)
        ident = _identifier()
        with _LOCK:
            ranked = ident.rank(text)
        folded: dict[str, float] = {}
        for label, prob in ranked:
            code = self.config.aliases.get(label, label)
            folded[code] = folded.get(code, 0.0) + float(prob)
        code, prob = max(folded.items(), key=lambda kv: kv[1])
        return Detection(code, prob)

    def detect_many(self, texts: Sequence[str]) -> list[Detection]:
        return [self.detect(t) for t in texts]

    def reject_reason(self, text: str, target: str) -> str | None:
        """`None` if `text` may be in `target`; else `"script"` (wrong writing system) or `"language"` (detected
        another language with at least `min_confidence`)."""
        target = base_language(target)
        shares = script_shares(text)
        if not shares:
            return "language"
        own = _TARGET_SCRIPTS.get(target)
        if own is not None:
            if sum(shares.get(s, 0.0) for s in own) < self.config.min_script_share:
                return "script"
        else:
            foreign = sum(v for s, v in shares.items() if s not in ("latin", "other"))
            if foreign > 1.0 - self.config.min_script_share:
                return "script"
        found = self.detect(text)
        if found.language != target and found.confidence >= self.config.min_confidence:
            return "language"
        return None

    def is_language(self, text: str, target: str) -> bool:
        """True if `text` passes the filter for `target`."""
        return self.reject_reason(text, target) is None


__all__ = [
    "DEFAULT_ALIASES", "Detection", "LanguageDetector", "LanguageFilterConfig", "base_language", "language_name",
    "script_shares",
]
