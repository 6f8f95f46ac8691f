"""What the scale benchmarks measure per step: wall and CPU seconds and the step's own peak memory."""

from __future__ import annotations

import gc
import resource
import time
from typing import Any, Callable


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (Linux `clear_refs` 5), so the next reading is one step's own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory since the last `reset_peak` (since start where it cannot be reset), in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Steps:
    """Runs and reports steps: wall seconds, CPU seconds (all threads; on a shared machine the wall time also
    measures the neighbours) and the peak resident memory during the step."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float, float]] = []

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        gc.collect()
        reset_peak()
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        peak = peak_rss_mb()
        self.rows.append((name, seconds, cpu_seconds, peak))
        print(f"{name:<30} {seconds:8.2f} s wall {cpu_seconds:8.2f} s CPU   peak RSS {peak:8.0f} MB", flush=True)
        return out

    def seconds(self, name: str) -> float:
        return next(s for n, s, _, _ in self.rows if n == name)
