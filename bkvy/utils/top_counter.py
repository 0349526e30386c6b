"""A per-name counter that keeps at most ``max_keys`` names; the rest add up in ``other`` (issue 16).

A client can send any number of distinct client ids: each one must not cost a counter forever. The table
grows to ``2 * max_keys`` names, then keeps the ``max_keys`` largest and folds the others into ``other``
(amortised O(log max_keys) per new name). The sum of every count plus ``other`` is always exact; a name's own
count is exact for as long as it stays in the table (once folded, what it had before stays in ``other``).
A name that keeps coming back outgrows one-off names between two compactions and stays.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

OTHER = "other"  # the bucket every name beyond the top ones goes to; a name "other" is counted there too
UNKNOWN = "unknown"  # the bucket of a requested name the config does not know (a 404): never its own key


class TopCounter:
    __slots__ = ("max_keys", "counts", "other")

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self.counts: dict[str, int] = {}
        self.other = 0

    def add(self, key: str, amount: int = 1) -> None:
        counts = self.counts
        if key in counts:
            counts[key] += amount
        elif key == OTHER:
            self.other += amount
        else:
            counts[key] = amount
            if len(counts) > 2 * self.max_keys:
                self._compact()

    def update(self, pairs: Iterable[tuple[str, int]]) -> None:
        for key, amount in pairs:
            self.add(key, amount)

    def merge(self, other: TopCounter) -> None:
        self.update(other.counts.items())
        self.other += other.other

    def total(self) -> int:
        return sum(self.counts.values()) + self.other

    def top(self) -> dict[str, int]:
        """At most ``max_keys`` names, most counted first, then ``other`` when it is not 0."""
        kept = heapq.nlargest(self.max_keys, self.counts.items(), key=_count)
        folded = self.other + sum(self.counts.values()) - sum(count for _, count in kept)
        return dict(kept) | ({OTHER: folded} if folded else {})

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, int], max_keys: int) -> TopCounter:
        counter = cls(max_keys)
        counter.update((str(key), int(count)) for key, count in mapping.items())
        if len(counter.counts) > max_keys:  # a file written under a larger bound, or before there was one
            counter._compact()
        return counter

    def _compact(self) -> None:
        kept = dict(heapq.nlargest(self.max_keys, self.counts.items(), key=_count))
        self.other += sum(self.counts.values()) - sum(kept.values())
        self.counts = kept


def _count(pair: tuple[str, int]) -> int:
    return pair[1]
