"""The one markdown table: every measurement, its ratio to the aiohttp reference (and LiteLLM), the goal, ✅/❌."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Row:
    scenario: str
    target: str
    result: str
    vs_reference: str = ""
    vs_litellm: str = ""
    goal: str = ""
    is_met: bool | None = None  # None: no goal for this row


def percent(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return ""
    return f"{100.0 * value / reference:.0f} %"


def times(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return ""
    return f"{value / reference:.2f}×"


def mark(is_met: bool | None) -> str:
    return "" if is_met is None else ("✅" if is_met else "❌")


def render_table(rows: list[Row], has_litellm: bool) -> str:
    header = ["scenario", "target", "result", "vs aiohttp ref"]
    if has_litellm:
        header.append("vs LiteLLM")
    header += ["goal", "met"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row.scenario, row.target, row.result, row.vs_reference]
        if has_litellm:
            cells.append(row.vs_litellm)
        cells += [row.goal, mark(row.is_met)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_report(title: str, context_lines: list[str], rows: list[Row], has_litellm: bool, notes: list[str]) -> str:
    met = [r.is_met for r in rows if r.is_met is not None]
    summary = f"**{sum(met)} of {len(met)} goals met.**" if met else ""
    parts = [
        f"# {title}",
        "",
        *[f"- {line}" for line in context_lines],
        "",
        render_table(rows, has_litellm),
        "",
        summary,
    ]
    if notes:
        parts += ["", "Notes:", "", *[f"- {note}" for note in notes]]
    return "\n".join(parts) + "\n"
