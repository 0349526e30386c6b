"""Precision and recall of the sensitive-data detector per kind, on the corpus (issue 19 §1).

    python benchmarks/pii_corpus_eval.py

Reads ``tests/core/policy/data/pii_corpus.jsonl``: one JSON object a line, ``text`` and the ``findings`` it holds
(``kind`` and the exact ``value``; none for a look-alike negative) and a ``note``. A finding counts as found
when the detector reports that kind over exactly that value's span. Prints a table per kind and lists each miss
and false alarm by line number and note (never the values).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bkvy.core.policy.detector import find_sensitive
from bkvy.models.policy import PiiKind

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "core" / "policy" / "data" / "pii_corpus.jsonl"


@dataclass
class KindScore:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    misses: list[str] = field(default_factory=list)  # "line N (note)": which expected finding was missed or wrong

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        expected = self.true_positives + self.false_negatives
        return self.true_positives / expected if expected else 1.0


def load_corpus(path: Path = CORPUS) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluate(rows: list[dict[str, object]]) -> dict[PiiKind, KindScore]:
    scores = {kind: KindScore() for kind in PiiKind}
    for number, row in enumerate(rows, start=1):
        text = str(row["text"])
        expected = {(PiiKind(f["kind"]), _span(text, f["value"])) for f in row["findings"]}  # type: ignore[attr-defined]
        found = {(f.kind, (f.start, f.end)) for f in find_sensitive(text)}
        where = f"line {number} ({row['note']})"
        for kind, _ in expected & found:
            scores[kind].true_positives += 1
        for kind, _ in expected - found:
            scores[kind].false_negatives += 1
            scores[kind].misses.append("missed: " + where)
        for kind, _ in found - expected:
            scores[kind].false_positives += 1
            scores[kind].misses.append("false alarm: " + where)
    return scores


def _span(text: str, value: str) -> tuple[int, int]:
    start = text.index(value)
    return start, start + len(value)


def main() -> None:
    rows = load_corpus()
    scores = evaluate(rows)
    negatives = sum(1 for row in rows if not row["findings"])
    print(f"corpus: {len(rows)} lines ({negatives} look-alike negatives), {CORPUS.name}\n")
    print("| kind | expected | found right | false alarms | precision | recall |")
    print("|---|---|---|---|---|---|")
    for kind, score in scores.items():
        expected = score.true_positives + score.false_negatives
        print(
            f"| {kind.value} | {expected} | {score.true_positives} | {score.false_positives} "
            f"| {score.precision:.3f} | {score.recall:.3f} |"
        )
    for kind, score in scores.items():
        for miss in score.misses:
            print(f"{kind.value}: {miss}")


if __name__ == "__main__":
    main()
