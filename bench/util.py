"""Shared bits of the benchmarks: percentiles and a table printer."""

import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

from common.poll import wait_until


def percentile(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def latency_row(name: str, samples: Sequence[float]) -> list[str]:
    return [
        name,
        str(len(samples)),
        ms(percentile(samples, 50)),
        ms(percentile(samples, 95)),
        ms(percentile(samples, 99)),
        ms(statistics.mean(samples)),
    ]


LATENCY_HEADER = ["measure", "n", "p50 ms", "p95 ms", "p99 ms", "mean ms"]


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def machine() -> str:
    cpu = subprocess.run(
        ["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{platform.node()}: {cores} cores ({cpu}), Python {platform.python_version()}"


def until(check: Callable[[], Any], timeout: float = 60, interval: float = 0.005) -> float:
    """Poll until check() is true; returns time.monotonic() at that moment."""
    wait_until(check, timeout, "a benchmark step", interval)
    return time.monotonic()
