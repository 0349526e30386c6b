"""From measurements to table rows: values, ratios to the aiohttp reference and LiteLLM, goals, ✅/❌.

The goals (ratios are against the aiohttp reference forwarder):
throughput at c=64 ≥ 80 % (logging on ≥ 70 %); added p50 at c=1 ≤ 0.5 ms over direct; TTFT ≤ 1 ms over
direct; c=256 with a 100 ms upstream ≥ 80 % of the reference's req/s, p99 ≤ 2× the upstream delay, zero
errors; peak RSS ≤ 120 MiB and RSS growth over the soak < 10 %; routing for 50 candidates < 100 µs p99.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fleet import Target
from loadgen import WrkResult
from report import Row, percent, times
from routing_micro import ROUTING_ROUNDS, RoutingTiming
from scenarios import SoakResult
from ttft import TtftResult

UPSTREAM_DELAY_MS = 100.0
_REF = "ref aiohttp"
_LITELLM = "LiteLLM proxy"


@dataclass(slots=True)
class Measurements:
    routing: list[RoutingTiming] = field(default_factory=list)
    c1: dict[str, WrkResult] = field(default_factory=dict)
    c64: dict[str, WrkResult] = field(default_factory=dict)
    c256: dict[str, WrkResult] = field(default_factory=dict)
    ttft: dict[str, TtftResult | None] = field(default_factory=dict)
    soak: dict[str, SoakResult] = field(default_factory=dict)
    peak_kib: dict[str, int] = field(default_factory=dict)
    profile: str = ""


def _c1_rows(targets: list[Target], c1: dict[str, WrkResult]) -> list[Row]:
    direct = c1["direct (upstream)"].p50_ms
    rows = []
    for t in targets:
        r = c1[t.label]
        added = r.p50_ms - direct
        is_met = added <= 0.5 if t.is_bkvy else None
        rows.append(
            Row(
                "1 · c=1 latency",
                t.label,
                f"p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms, +{added:.2f} ms p50 over direct",
                times(r.p50_ms, _p50(c1, _REF)),
                times(r.p50_ms, _p50(c1, _LITELLM)),
                "added p50 ≤ 0.5 ms" if t.is_bkvy else "",
                is_met,
            )
        )
    return rows


def _p50(results: dict[str, WrkResult], label: str) -> float | None:
    return results[label].p50_ms if label in results else None


def _rps(results: dict[str, WrkResult], label: str) -> float | None:
    return results[label].requests_per_second if label in results else None


def _c64_rows(targets: list[Target], c64: dict[str, WrkResult]) -> list[Row]:
    rows = []
    for t in targets:
        r = c64[t.label]
        floor = 70.0 if t.role == "bkvy_log" else 80.0
        ratio = 100.0 * r.requests_per_second / (_rps(c64, _REF) or 1.0)
        errors = f", {r.errors} errors" if r.errors else ""
        rows.append(
            Row(
                "2 · c=64, upstream 0 ms",
                t.label,
                f"{r.requests_per_second:,.0f} req/s{errors}",
                percent(r.requests_per_second, _rps(c64, _REF)),
                percent(r.requests_per_second, _rps(c64, _LITELLM)),
                f"≥ {floor:.0f} % of ref" if t.is_bkvy else "",
                ratio >= floor if t.is_bkvy else None,
            )
        )
    return rows


def _c256_rows(targets: list[Target], c256: dict[str, WrkResult]) -> list[Row]:
    rows = []
    for t in targets:
        r = c256[t.label]
        ratio = 100.0 * r.requests_per_second / (_rps(c256, _REF) or 1.0)
        is_met = ratio >= 80.0 and r.p99_ms <= 2 * UPSTREAM_DELAY_MS and r.errors == 0
        rows.append(
            Row(
                "3 · c=256, upstream 100 ms",
                t.label,
                f"{r.requests_per_second:,.0f} req/s, p99 {r.p99_ms:.0f} ms, errors {r.errors} "
                f"({r.status_errors} non-2xx, {r.socket_errors} socket)",
                percent(r.requests_per_second, _rps(c256, _REF)),
                percent(r.requests_per_second, _rps(c256, _LITELLM)),
                "≥ 80 % of ref, p99 ≤ 200 ms, 0 errors" if t.is_bkvy else "",
                is_met if t.is_bkvy else None,
            )
        )
    return rows


def _ttft_rows(ttft: dict[str, TtftResult | None]) -> list[Row]:
    direct = ttft.get("direct (upstream)")
    reference = ttft.get(_REF)
    litellm = ttft.get(_LITELLM)
    rows = []
    for label, r in ttft.items():
        is_bkvy = label.startswith("bkvy")
        goal = "≤ 1 ms over direct" if is_bkvy else ""
        if r is None or not r.samples or direct is None or not direct.samples:
            rows.append(
                Row(
                    "4 · streaming TTFT",
                    label,
                    "n/a (no /v1/chat/completions yet)"
                    if r is None
                    else f"failed ({r.failures if r else '?'} failures)",
                    goal=goal,
                    is_met=None if r is None else (False if is_bkvy else None),
                )
            )
            continue
        added = r.p50_ms - direct.p50_ms
        failures = f", {r.failures} failed" if r.failures else ""
        rows.append(
            Row(
                "4 · streaming TTFT",
                label,
                f"p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms, +{added:.2f} ms over direct "
                f"({r.samples} streams{failures})",
                times(r.p50_ms, reference.p50_ms if reference and reference.samples else None),
                times(r.p50_ms, litellm.p50_ms if litellm and litellm.samples else None),
                goal,
                (added <= 1.0 and not r.failures) if is_bkvy else None,
            )
        )
    return rows


def _memory_rows(found: Measurements) -> list[Row]:
    rows = []
    labels = {"bkvy": "bkvy (log off)", "bkvy_log": "bkvy (log on)"}
    for role, s in found.soak.items():
        peak_mib = s.peak_kib / 1024
        rows.append(
            Row(
                "5 · soak",
                labels[role],
                f"{s.requests:,} requests, {s.errors} errors; RSS {s.rss_start_kib / 1024:.1f} → "
                f"{s.rss_end_kib / 1024:.1f} MiB ({s.growth_percent:+.1f} %), peak {peak_mib:.1f} MiB",
                times(s.peak_kib, found.peak_kib.get("ref_aiohttp")),
                times(s.peak_kib, found.peak_kib.get("litellm")),
                "peak ≤ 120 MiB, growth < 10 %",
                peak_mib <= 120 and s.growth_percent < 10,
            )
        )
    for name in ("ref_aiohttp", "ref_httpx", "litellm"):
        if name in found.peak_kib:
            rows.append(
                Row(
                    "5 · soak",
                    name.replace("_", " ").replace("ref ", "ref "),
                    f"peak RSS {found.peak_kib[name] / 1024:.1f} MiB (after all scenarios, no soak)",
                )
            )
    return rows


def _routing_rows(routing: list[RoutingTiming]) -> list[Row]:
    """The goal is judged on the live decision (what a request pays), the pure one and the cold one beside it."""
    return [
        Row(
            "6 · routing decision",
            f"{t.mode}, {t.candidates} candidates",
            f"p50 {t.p50_us:,.1f} µs, p99 {t.p99_us:,.1f} µs (median of {ROUTING_ROUNDS} rounds of "
            f"{t.iterations:,} calls)",
            goal="p99 < 100 µs" if t.candidates == 50 and t.mode == "live" else "",
            is_met=(t.p99_us < 100) if t.candidates == 50 and t.mode == "live" else None,
        )
        for t in routing
    ]


def build_rows(targets: list[Target], found: Measurements, *, has_chat: bool) -> tuple[list[Row], list[str]]:
    rows = (
        _c1_rows(targets, found.c1)
        + _c64_rows(targets, found.c64)
        + _c256_rows(targets, found.c256)
        + _ttft_rows(found.ttft)
        + _memory_rows(found)
        + _routing_rows(found.routing)
    )
    notes = [
        "direct = wrk straight to the upstream: its ceiling on this machine. All ratios are against the aiohttp "
        "reference forwarder (benchmarks/reference_forwarders.py), the bar to reach.",
        "Results are medians of interleaved rounds; errors are summed over rounds. Soak RSS is VmRSS of the "
        "bkvy process just before and just after the soak; peak is VmHWM over the whole run.",
    ]
    if not has_chat:
        notes.append(
            "bkvy has no /v1/chat/completions yet (probe failed): TTFT through bkvy is n/a; the "
            "suite measures it automatically once the endpoint exists."
        )
    return rows, notes
