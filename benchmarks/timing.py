"""Timing helpers the benchmarks share (no torch: `mmrt bench` runs on the edge stack too)."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path


def machine() -> str:
    """The CPU model and core count, for a report's header."""
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                  if ln.startswith("model name")]
        name = models[0] if models else name
    return f"{name}, {os.cpu_count()} cores"


def timed(fn) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired_ms(first, second, repeats: int, rounds: int = 5) -> tuple[float, float]:
    """Median ms of two functions timed in alternating blocks (``interleaved_ms``)."""
    a, b = interleaved_ms((first, second), repeats, rounds)
    return a, b


def interleaved_ms(fns, repeats: int, rounds: int = 5) -> list[float]:
    """Median ms of each function, timed in blocks taken in turn, so that the noise of a shared
    machine falls on all alike. Blocks, not single calls: each runtime's thread pool spins for a
    while after a call and would slow the next one's call down."""
    times: list[list[float]] = [[] for _ in fns]
    block = max(1, repeats // rounds)
    for _ in range(rounds):
        for fn, out in zip(fns, times, strict=True):
            fn()  # warm this runtime's threads after the other one ran
            out.extend(timed(fn) for _ in range(block))
    return [1000 * statistics.median(t) for t in times]
