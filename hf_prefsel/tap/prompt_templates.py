"""What TaP's prompt writer is asked: the built-in few-shot generation prompts (English, Chinese) and reply types.

The few-shot examples are ours. Generated copies of them are dropped by the generator (`demo_prompts`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from pydantic import BaseModel, Field, create_model

from ..llm import FewShotPrompt
from .language import base_language, language_name


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


def unit_query_text(ui: str, path: str, task: str | None, difficulty: str | None, count: int, scope: str | None = None,
                    extra: Sequence[tuple[str, str]] = ()) -> str:
    """The user message asking for `count` prompts on a topic path, with labels in the UI language `ui` (en/zh)."""
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
    lang = base_language(language)
    ui = "zh" if lang == "zh" else "en"
    system = _GEN_SYSTEM[ui].format(language=language_name(lang, ui))
    if not anchor_topic:
        system = system.replace("first repeat the topic, then ", "").replace("先重复主题，再", "")
    examples = []
    for demo in _GEN_DEMOS[ui]:
        out: dict[str, Any] = {"topic": demo.path} if anchor_topic else {}
        out["prompts"] = list(demo.prompts)
        examples.append((unit_query_text(ui, demo.path, demo.task, demo.difficulty, len(demo.prompts)), json.dumps(out, ensure_ascii=False)))
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



__all__ = ["demo_prompts", "generation_prompt", "prompt_list_model", "unit_query_text"]
