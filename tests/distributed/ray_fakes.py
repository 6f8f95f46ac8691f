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
