"""The attempts of one model still in flight, for "is it slow *now*?" (``LatencyTracker.routing_latency``)."""

from __future__ import annotations

from bisect import bisect_right
from collections import deque


class InFlightStarts:
    """The start times of one model's attempts in flight, oldest first.

    Attempts start in time order, so a start appends (an out-of-order one is inserted: correct, O(n), rare).
    An end other than the oldest's is only counted in ``ended``; it leaves ``starts`` when it reaches the
    front. Each start and end is O(1) amortised; ``starts[0]`` is always an attempt still in flight.
    """

    __slots__ = ("ended", "starts")

    def __init__(self) -> None:
        self.starts: deque[float] = deque()
        self.ended: dict[float, int] = {}  # start time -> attempts ended but not yet at the front

    def start(self, started_at: float) -> bool:
        """Returns whether the oldest start changed."""
        starts = self.starts
        if not starts or started_at >= starts[-1]:
            starts.append(started_at)
        else:
            starts.insert(bisect_right(starts, started_at), started_at)
        return starts[0] == started_at and (len(starts) == 1 or starts[1] != started_at)

    def end(self, started_at: float) -> bool:
        """Returns whether the oldest start changed."""
        starts, ended = self.starts, self.ended
        if not starts or not starts[0] <= started_at <= starts[-1]:
            return False  # not in flight (already ended): a caller's slip must not leave a stale count
        oldest = starts[0]
        if started_at != oldest:
            ended[started_at] = ended.get(started_at, 0) + 1
            return False
        starts.popleft()
        while starts and starts[0] in ended:
            front = starts.popleft()
            if ended[front] == 1:
                del ended[front]
            else:
                ended[front] -= 1
        return not starts or starts[0] != oldest
