"""Helpers the cluster's workers import too (the fixture puts this folder on their PYTHONPATH)."""

from __future__ import annotations

import threading
import time
from typing import Any

import datasets

from hf_prefsel.tacos import OpenTagger


def instructions(n: int) -> datasets.Dataset:
    """`n` rows whose first words all differ, so the fake endpoint's tag (`topic <first word>`) names the row."""
    return datasets.Dataset.from_dict({"instruction": [f"Word{i} is the subject of row {i}" for i in range(n)],
                                       "input": [""] * n})


class HangingTagger(OpenTagger):
    """An `OpenTagger` that never returns from a batch holding a row that contains `HANG` (a stuck worker)."""

    def __call__(self, batch: dict[str, list[Any]], indices: Any = None) -> dict[str, list[Any]]:
        if any("HANG" in text for text in batch["instruction"]):
            time.sleep(3600)
        return super().__call__(batch, indices)


class SlowResponder:
    """A fake endpoint's responder: `latency` seconds per request, counting requests in flight at once."""

    def __init__(self, latency: float):
        self.latency = latency
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> None:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(self.latency)
        with self.lock:
            self.in_flight -= 1
        return None  # the FaultServer then answers a valid tag list


TOPICS = ("python code", "algebra", "cooking", "travel plans")


def tacos_responder(body: dict[str, Any]) -> str | None:
    """A fake model for a whole TACOS run: a judge verdict (the longer response wins) for judge prompts, else one of
    four topic tags picked by the row number in `WordN` (so tags repeat and survive normalization)."""
    import json
    import re

    text = body.get("prompt") or body["messages"][-1]["content"]
    query = text.rsplit("Input:", 1)[-1]
    responses = re.findall(r"Response: (.*)", query)
    if len(responses) >= 2:
        s1, s2 = (min(100, 10 + len(r)) for r in responses[:2])
        return json.dumps({"analysis": "longer is better here", "score_1": s1, "score_2": s2})
    number = re.search(r"Word(\d+)", query)
    topic = TOPICS[int(number.group(1)) % len(TOPICS)] if number else "misc"
    return json.dumps([{"tag": topic, "explanation": "the row's topic"}])


def tacos_rows(n: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({
        "instruction": [f"Word{i} asks something" for i in range(n)],
        "input": [""] * n,
        "output": ["answer " * (1 + (i * 7) % 11) for i in range(n)],
    })
