"""Metrics, goals and the printed table."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

_state = {"quick": False}
SKIPPED: list[dict] = []  # rows that could not run here: {"name", "reason"}


@dataclass
class Metric:
    name: str
    value: float
    unit: str
    goal: str | None = None  # e.g. "<= 1.10"
    met: bool | None = None
    details: dict = field(default_factory=dict)


def set_quick(quick: bool) -> None:
    """A --quick run drops the goals: they are for the real sizes."""
    _state["quick"] = quick


def at_most(limit: float):
    return f"<= {limit:g}", lambda value: value <= limit


def at_least(limit: float):
    return f">= {limit:g}", lambda value: value >= limit


def metric(name, value, unit, goal=None, **details) -> Metric:
    if _state["quick"]:
        goal = None
    text, check = goal if goal else (None, None)
    return Metric(name, float(value), unit, text, None if check is None else bool(check(value)), details)


def skipped(name: str, reason: str) -> None:
    """A row that cannot run here says so on one line, and in the JSON's "skipped" list."""
    if any(row["name"] == name for row in SKIPPED):
        return
    SKIPPED.append({"name": name, "reason": reason})
    print(f"skipped {name}: {reason}", file=sys.stderr)


def print_table(metrics: list[Metric]) -> None:
    rows = [("metric", "value", "goal", "met?")]
    for m in metrics:
        value = f"{m.value:.3g} {m.unit}".strip()
        met = "—" if m.met is None else ("yes" if m.met else "NO")
        rows.append((m.name, value, m.goal or "—", met))
    widths = [max(len(row[c]) for row in rows) for c in range(4)]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
        if index == 0:
            print("  ".join("-" * width for width in widths))
