"""A lane's tpm window: the tokens reserved by the last minute's starts, each settled when its attempt ends.

``RateLimiter`` (``rate_limits``) owns the windows; this module is the arithmetic, with no clock of its own.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bkvy.core.limits.rate_limits import LaneKey

MINUTE_SECONDS = 60.0


class TokenReservation:
    """The tokens one attempt holds in its lane's tpm window, from its start until it leaves the window.

    ``tokens`` is the estimate until the attempt ends, then what it was charged (``RateLimiter.settle``); the
    start does not move, so neither does the instant it leaves the window. ``NO_TOKENS`` stands for a start on
    a lane without a tpm limit."""

    __slots__ = ("key", "start", "tokens", "window")

    def __init__(self, key: LaneKey | None, start: float, tokens: int, window: TokenWindow | None) -> None:
        self.key = key
        self.start = start
        self.tokens = tokens
        self.window = window


NO_TOKENS = TokenReservation(None, 0.0, 0, None)


class TokenWindow:
    """The reservations of the last minute's starts; their tokens together at most ``limit``."""

    __slots__ = ("held", "limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held: deque[TokenReservation] = deque()
        self.used = 0  # the sum of ``held``'s tokens

    def _expire(self, now: float) -> None:
        horizon = now - MINUTE_SECONDS
        held = self.held
        while held and held[0].start <= horizon:
            self.used -= held.popleft().tokens

    def used_tokens(self, now: float) -> int:
        self._expire(now)
        return self.used

    def wait_seconds(self, now: float, tokens: int) -> float:
        """Seconds until ``tokens`` more fit in the window. More than the limit (requests queued ahead
        included) waits until the window empties, then a whole minute per further limit's worth."""
        self._expire(now)
        excess = self.used + tokens - self.limit
        if excess <= 0:
            return 0.0
        if tokens > self.limit:
            empty_at = self.held[-1].start + MINUTE_SECONDS if self.held else now
            return empty_at - now + MINUTE_SECONDS * (math.ceil(tokens / self.limit) - 1)
        freed = 0
        for reservation in self.held:  # tokens <= limit, so excess <= used: some prefix frees enough
            freed += reservation.tokens
            if freed >= excess:
                return reservation.start + MINUTE_SECONDS - now
        return self.held[-1].start + MINUTE_SECONDS - now

    def reserve(self, key: LaneKey | None, now: float, tokens: int) -> TokenReservation:
        reservation = TokenReservation(key, now, tokens, self)
        self.held.append(reservation)
        self.used += tokens
        return reservation

    def settle(self, reservation: TokenReservation, tokens: int, now: float) -> None:
        self._expire(now)
        if reservation.start > now - MINUTE_SECONDS:  # still held: the window's sum moves with it
            self.used += tokens - reservation.tokens
        reservation.tokens = tokens
