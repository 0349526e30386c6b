"""Accuracy and speed of the automatic level (``bkvy.core.routing.classifier.classify``, issue 18 §1).

    python benchmarks/classifier_eval.py [--quick] [--out FILE.md]

Reads ``benchmarks/data/classifier_eval.jsonl`` (hand-labelled; how: benchmarks/README.md "Classifier eval
set"), classifies each line and prints level and domain accuracy for the training split and the held-out
split (every 5th line, 0-based index % 5 == 4: never looked at while tuning the cues), the level confusion
matrix, and ``classify`` timing (p50/p99 µs, each call timed on its own) for 1k, 10k and 100k-token prompts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bkvy.core.routing.classifier import classify, images_in
from bkvy.models.types import ChatMessage, GenerationOptions, IntelligenceLevel, JsonSchemaFormat, ToolSpec

EVAL_SET = Path(__file__).resolve().parent / "data" / "classifier_eval.jsonl"
HELD_OUT_EVERY = 5
_LEVELS = [level.value for level in IntelligenceLevel]
_IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


@dataclass(frozen=True, slots=True)
class SplitScore:
    name: str
    count: int
    level_accuracy: float
    domain_accuracy: float
    confusion: dict[tuple[str, str], int]  # (labelled, classified) -> count


def request_of(line: dict[str, Any]) -> tuple[tuple[ChatMessage, ...], GenerationOptions]:
    """The messages and options one eval line describes (images become image parts of the last message)."""
    messages = [ChatMessage(m["role"], m["content"]) for m in line["messages"]]
    if line.get("images"):
        last = messages[-1]
        parts = ({"type": "text", "text": last.content}, *([_IMAGE] * line["images"]))
        messages[-1] = ChatMessage(last.role, parts)
    schema = line.get("json_schema")
    options = GenerationOptions(
        max_tokens=line.get("max_tokens"),
        tools=tuple(ToolSpec(name) for name in line.get("tools", ())),
        json_schema=JsonSchemaFormat("eval", schema) if schema is not None else None,
    )
    return tuple(messages), options


def load_eval_set(path: Path = EVAL_SET) -> list[dict[str, Any]]:
    return [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines() if text.strip()]


def score(lines: list[tuple[int, dict[str, Any]]], name: str) -> SplitScore:
    confusion: Counter[tuple[str, str]] = Counter()
    domain_hits = 0
    for _, line in lines:
        messages, options = request_of(line)
        result = classify(messages, options, images=images_in(messages))
        confusion[(line["level"], result.level.value)] += 1
        domain_hits += result.domain == line["domain"]
    count = len(lines)
    level_hits = sum(n for (labelled, got), n in confusion.items() if labelled == got)
    return SplitScore(name, count, level_hits / count, domain_hits / count, dict(confusion))


def evaluate(path: Path = EVAL_SET) -> tuple[SplitScore, SplitScore]:
    """(training split, held-out split)."""
    indexed = list(enumerate(load_eval_set(path)))
    held_out = [item for item in indexed if item[0] % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    training = [item for item in indexed if item[0] % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    return score(training, "training"), score(held_out, "held-out")


def _timing_prompt(tokens: int) -> tuple[ChatMessage, ...]:
    block = (
        "Please review the module below for race conditions and suggest a refactor.\n```python\n"
        "def worker(cache, n):\n    for i in range(n):\n        cache.put(i % 10, i)\n```\n"
        "The service handles about 2,000 requests per second; latency matters. "
    )
    text = (block * (tokens * 4 // len(block) + 1))[: tokens * 4]
    return (ChatMessage("system", "You are a senior reviewer."), ChatMessage("user", text))


def time_classify(tokens: int, calls: int) -> tuple[float, float, float]:
    """p50 and p99 of one ``classify`` call in µs of wall time, and its p99 in µs of this thread's CPU time (what
    the call itself costs, without the time a busy machine's scheduler took the CPU away)."""
    messages = _timing_prompt(tokens)
    options = GenerationOptions(max_tokens=2000)
    wall, cpu = [], []
    for _ in range(calls):
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        classify(messages, options)
        cpu.append((time.thread_time_ns() - start_cpu) / 1000.0)
        wall.append((time.perf_counter_ns() - start) / 1000.0)
    wall.sort()
    cpu.sort()
    p99 = min(len(wall) - 1, int(len(wall) * 0.99))
    return statistics.median(wall), wall[p99], cpu[p99]


def report(quick: bool) -> str:
    command = "python benchmarks/classifier_eval.py" + (" --quick" if quick else "")
    rows = [f"# classify(): accuracy and speed (`{command}`)", "", "## Accuracy", ""]
    rows += ["| split | prompts | level accuracy | domain accuracy |", "|---|---|---|---|"]
    splits = evaluate()
    for split in splits:
        rows.append(f"| {split.name} | {split.count} | {split.level_accuracy:.1%} | {split.domain_accuracy:.1%} |")
    rows += ["", "## Level confusion (all prompts; rows: label, columns: classified)", ""]
    rows += ["| label \\ classified | " + " | ".join(_LEVELS) + " |", "|---" * (len(_LEVELS) + 1) + "|"]
    for labelled in _LEVELS:
        counts = [sum(s.confusion.get((labelled, got), 0) for s in splits) for got in _LEVELS]
        rows.append(f"| {labelled} | " + " | ".join(str(n) for n in counts) + " |")
    rows += ["", "## classify() timing (each call timed alone; a shared, busy 2-core machine: p99 is its noise)", ""]
    rows += ["| prompt tokens | calls | p50 µs | p99 µs | p99 CPU µs |", "|---|---|---|---|---|"]
    for tokens in (1_000, 10_000, 100_000):
        calls = 200 if quick else 2_000
        p50, p99, p99_cpu = time_classify(tokens, calls)
        rows.append(f"| {tokens:,} | {calls} | {p50:.1f} | {p99:.1f} | {p99_cpu:.1f} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 timed calls per size instead of 2,000")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    text = report(args.quick)
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
