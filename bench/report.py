"""Figures printed as they come, beside their targets, and kept for the results file."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import psutil

RESULTS = Path(__file__).resolve().parent / "results"


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def section(self, title: str) -> None:
        self.lines.append(f"\n## {title}\n")
        print(f"\n{title}", flush=True)

    def figure(self, label: str, value: str, target: str = "") -> None:
        self.lines.append(f"| {label} | {value} | {target} |")
        print(f"  {label:<44} {value:<36} {'target: ' + target if target else ''}", flush=True)

    def table(self) -> None:
        self.lines.append("| figure | measured | target |\n|---|---|---|")

    def note(self, text: str) -> None:
        self.lines.append(f"\n{text}\n")
        print(f"  {text}", flush=True)

    def save(self, path: Path | None = None) -> Path:
        """Append to `path`, by default bench/results/<date>.md."""
        if path is None:
            RESULTS.mkdir(exist_ok=True)
            path = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}.md"
        with open(path, "a") as out:
            out.write("\n".join(self.lines) + "\n\n")
        return path


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def p50_p99(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"p50 {ms(percentile(values, 0.5))}, p99 {ms(percentile(values, 0.99))} (n={len(values)})"
    )


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"{memory:.1f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )
