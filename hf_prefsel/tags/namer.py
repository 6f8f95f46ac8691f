"""Naming knowledge-tree parents with an LLM (the Clio-style summarize step)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from ..llm import FewShotPrompt, LLMConfig, get_client

# Written by us.
NAMING_PROMPT = FewShotPrompt(
    system=(
        "You name groups in a knowledge taxonomy. Given the names of a group's members, reply with a short, "
        "specific name (2 to 5 lowercase words) for the knowledge area they share, as JSON."
    ),
    examples=(
        ('["binary search", "merge sort", "hash tables", "dynamic programming"]', '{"name": "algorithms and data structures"}'),
        ('["photosynthesis", "chlorophyll breakdown", "plant hormones"]', '{"name": "plant biology"}'),
        ('["index funds", "bond funds", "portfolio diversification"]', '{"name": "personal investing"}'),
    ),
)


class ParentName(BaseModel):
    name: str = Field(min_length=2, max_length=60)


class LLMNamer:
    """A `Namer` for `KnowledgeTree.build` that asks the LLM to name each parent from its children.

    One call per parent (cached like every call). A parent the model cannot name keeps the
    most central child's name, and is counted in `failures`.

    Args:
        llm (`LLMConfig`, *optional*): the model; defaults to the embedded Gemma.
        max_children (`int`, defaults to 20): children shown per parent (the first ones, which the
            tree orders by size).

    Example:
        >>> tree = KnowledgeTree.build(concepts, namer=LLMNamer(servers.config()))
    """

    def __init__(self, llm: LLMConfig | None = None, max_children: int = 20, prompt: FewShotPrompt = NAMING_PROMPT):
        self.llm = llm or LLMConfig()
        self.max_children = max_children
        self.prompt = prompt
        self.failures = 0

    def __call__(self, children_names: list[list[str]]) -> list[str]:
        prompts = [self.prompt.messages(json.dumps(names[: self.max_children], ensure_ascii=False)) for names in children_names]
        results = get_client(self.llm).run_structured(prompts, ParentName, desc="Naming tree nodes")
        names: list[str] = []
        for result, children in zip(results, children_names):
            if result.ok and result.value.name.strip():
                names.append(" ".join(result.value.name.lower().split()))
            else:
                self.failures += 1
                names.append(children[0] if children else "unnamed")
        return names

    def __getstate__(self) -> dict[str, Any]:
        return {"llm": self.llm, "max_children": self.max_children, "prompt": self.prompt, "failures": 0}
