"""What the detector reports: a finding (kind and offsets, never the value) and how overlapping candidates from
different kinds are settled."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from bkvy.models.policy import PiiKind


@dataclass(frozen=True, slots=True)
class Finding:
    kind: PiiKind
    start: int  # offsets into the text scanned
    end: int


# When two candidates overlap, the more specific shape wins: a card number is also a long digit run a phone
# rule may take, an IPv4 address a dotted phone, and a secret may contain anything.
_PRIORITY = {
    PiiKind.SECRET: 0,
    PiiKind.CARD: 1,
    PiiKind.IBAN: 2,
    PiiKind.SSN: 3,
    PiiKind.EMAIL: 4,
    PiiKind.IP: 5,
    PiiKind.PHONE: 6,
}


def settle_overlaps(candidates: Iterable[Finding]) -> list[Finding]:
    """Non-overlapping findings in text order: by kind priority, then the longer one, then the earlier one."""
    ranked = sorted(candidates, key=lambda f: (_PRIORITY[f.kind], f.start - f.end, f.start))
    if len(ranked) < 2:
        return ranked
    # Kept findings never overlap, so ordered by start they are ordered by end too: each candidate is checked
    # against its two neighbours only (against every kept one, 4,000 findings in 100 KB cost ~0.5 s).
    kept: list[Finding] = []
    starts: list[int] = []
    for finding in ranked:
        at = bisect.bisect_right(starts, finding.start)
        if (at == 0 or kept[at - 1].end <= finding.start) and (at == len(kept) or finding.end <= starts[at]):
            kept.insert(at, finding)
            starts.insert(at, finding.start)
    return kept
