"""Rate limits per (provider, key, model): rpm, rpd and tpm sliding windows plus a FIFO queue (SPEC §5).

Many requests may be in flight on one key at once: a lane only counts request starts. A request
that must wait joins its lane's FIFO queue and is served in order when a slot frees, or gives up
at its deadline. Provider headers (retry-after, remaining=0) block a lane until the time they give.

A lane with a ``tpm`` limit (``TokenLane``) also counts tokens: each start reserves its estimate (the
prompt's tokens and the output it may get) in the minute window, and the attempt's end settles it to what
the provider billed (``RateLimiter.settle``). A lane without one takes no token path at all.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import NamedTuple, Protocol

from bkvy.clock import Clock
from bkvy.core.limits.token_window import MINUTE_SECONDS, NO_TOKENS, TokenReservation, TokenWindow

__all__ = [
    "DAY_SECONDS",
    "MINUTE_SECONDS",
    "NO_TOKENS",
    "Lane",
    "LaneKey",
    "LaneLimits",
    "LaneView",
    "RateLimitExceeded",
    "RateLimiter",
    "SharedWindowStore",
    "SlotWait",
    "TokenLane",
    "TokenReservation",
]

DAY_SECONDS = 86_400.0
_new_tuple = tuple.__new__  # builds a NamedTuple from a tuple without its Python-level __new__


class LaneKey(NamedTuple):  # a tuple: hashed in C on every request
    provider: str
    key_id: str
    model: str


@dataclass(frozen=True, slots=True)
class SlotWait:
    """How long a request waited for its slot: behind other requests, then for the window itself."""

    queue_seconds: float = 0.0
    rate_limit_seconds: float = 0.0
    reservation: TokenReservation = NO_TOKENS

    @property
    def total_seconds(self) -> float:
        return self.queue_seconds + self.rate_limit_seconds


class RateLimitExceeded(Exception):
    """The lane cannot serve this request before its deadline."""

    def __init__(self, retry_after_seconds: float) -> None:
        super().__init__(f"rate limited for {retry_after_seconds:.1f}s")
        self.retry_after_seconds = retry_after_seconds


class _Window:
    """Start times of the requests in the last ``span_seconds``; at most ``limit`` allowed."""

    __slots__ = ("limit", "span_seconds", "starts")

    def __init__(self, limit: int, span_seconds: float) -> None:
        self.limit = limit
        self.span_seconds = span_seconds
        self.starts: deque[float] = deque()

    def _expire(self, now: float) -> None:
        horizon = now - self.span_seconds
        while self.starts and self.starts[0] <= horizon:
            self.starts.popleft()

    def wait_seconds(self, now: float, position: int = 0) -> float:
        """Seconds until the request ``position`` places behind the head may start."""
        self._expire(now)
        index = len(self.starts) + position - self.limit
        if index < 0:
            return 0.0
        rounds, offset = divmod(index, self.limit)
        return self.starts[offset] + self.span_seconds * (rounds + 1) - now

    def used(self, now: float) -> int:
        self._expire(now)
        return len(self.starts)


class _Turn(asyncio.Event):
    """A request's place in its lane's queue, with the tokens it will reserve (a tpm lane counts those
    queued ahead of a request in its wait)."""

    def __init__(self, tokens: int) -> None:
        super().__init__()
        self.tokens = tokens


class Lane:
    __slots__ = ("windows", "blocked_until", "waiters", "last_used")

    def __init__(self, rpm: int | None, rpd: int | None) -> None:
        self.windows = [
            w
            for w in (_Window(rpm, MINUTE_SECONDS) if rpm else None, _Window(rpd, DAY_SECONDS) if rpd else None)
            if w is not None
        ]
        self.blocked_until = 0.0
        self.waiters: deque[_Turn] = deque()
        self.last_used = float("-inf")

    def wait_seconds(self, now: float, position: int = 0, tokens: int = 1) -> float:
        """Seconds until the request ``position`` places behind the head, reserving ``tokens``, may start
        (only a ``TokenLane`` counts tokens)."""
        wait = self.blocked_until - now
        for window in self.windows:
            window_wait = window.wait_seconds(now, position)
            if window_wait > wait:
                wait = window_wait
        return wait if wait > 0.0 else 0.0

    def view(self, now: float) -> LaneView:
        head_wait = self.wait_seconds(now)
        depth = len(self.waiters)
        if not depth and not self.windows:  # an unlimited key: nothing queues, nothing to count
            return _new_tuple(LaneView, (head_wait, 0.0, 0, 0, self.last_used))
        queued_wait = self.wait_seconds(now, depth) if depth else head_wait
        first = self.windows[0] if self.windows else None
        minute = first.used(now) if first is not None and first.span_seconds == MINUTE_SECONDS else 0
        return _new_tuple(LaneView, (head_wait, max(0.0, queued_wait - head_wait), depth, minute, self.last_used))

    def steady_until(self, now: float, view: LaneView) -> float:
        """Until when ``view`` (taken at ``now``) holds if nothing takes, blocks or queues on the lane: the
        instant its oldest counted start leaves a window; ``now`` when the view changes by the moment (the
        lane is blocked, full or has a queue)."""
        if view.queue_depth or view.rate_limit_wait_seconds > 0.0:
            return now
        until = math.inf
        for window in self.windows:
            if window.starts and window.starts[0] + window.span_seconds < until:
                until = window.starts[0] + window.span_seconds
        return until

    def take(self, now: float, key: LaneKey, tokens: int) -> TokenReservation:
        """Count a start (and, on a ``TokenLane``, reserve its ``tokens``)."""
        for window in self.windows:
            window.starts.append(now)
        self.last_used = now
        return NO_TOKENS


class TokenLane(Lane):
    """A lane with a tpm limit: a start also needs room for its tokens in the minute window. Its view's wait
    (routing's) is for one token, so it shows when the window is full; a request's own wait, at its slot, is
    for all its tokens."""

    __slots__ = ("token_window",)

    def __init__(self, rpm: int | None, rpd: int | None, tpm: int) -> None:
        super().__init__(rpm, rpd)
        self.token_window = TokenWindow(tpm)

    def wait_seconds(self, now: float, position: int = 0, tokens: int = 1) -> float:
        wait = Lane.wait_seconds(self, now, position)
        # A request larger than the whole limit waits for an empty window, then goes (the provider decides).
        needed = min(tokens, self.token_window.limit)
        if position:
            needed += sum(turn.tokens for turn in islice(self.waiters, position))
        token_wait = self.token_window.wait_seconds(now, needed)
        return token_wait if token_wait > wait else wait

    def take(self, now: float, key: LaneKey, tokens: int) -> TokenReservation:
        Lane.take(self, now, key, tokens)
        return self.token_window.reserve(key, now, tokens)


class LaneLimits(NamedTuple):
    """A lane's configured limits (None: no such limit)."""

    rpm: int | None
    rpd: int | None
    tpm: int | None


class SharedWindowStore(Protocol):
    """Windows shared by every process (``bkvy.core.shared.windows.RedisWindows``). Times are unix seconds."""

    @property
    def is_up(self) -> bool: ...
    def live_replicas(self) -> int: ...
    def on_change(self, callback: Callable[[bool], None]) -> None: ...
    async def take(self, key: LaneKey, limits: LaneLimits, now_wall: float, tokens: int) -> float | None:
        """0.0: taken; > 0: seconds to wait; None: the store is down (use the local lanes)."""
        ...

    def block(self, key: LaneKey, until_wall: float, now_wall: float) -> None: ...


class LaneView(NamedTuple):
    """What routing needs to know about one lane, at one instant."""

    rate_limit_wait_seconds: float  # wait if the queue were empty
    queue_wait_seconds: float  # extra wait caused by the requests queued ahead
    queue_depth: int
    used_in_minute: int
    last_used: float


class RateLimiter:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lanes: dict[LaneKey, Lane] = {}
        self._listeners: list[Callable[[LaneKey], None]] = []
        self._limits: dict[LaneKey, LaneLimits] = {}  # the limited lanes, as configured
        self._shared: SharedWindowStore | None = None
        self._local_divisor = 1
        self._shared_waits: dict[LaneKey, float] = {}  # the last wait the shared store answered, per lane

    def share(self, store: SharedWindowStore) -> None:
        """Take limited lanes' slots through ``store`` while it is up. While it is down, the local lanes
        decide, each limit divided by the replicas last seen alive (at least 1 each)."""
        self._shared = store
        store.on_change(lambda _is_up: self._rescale())
        self._rescale()

    def _rescale(self) -> None:
        store = self._shared
        divisor = 1 if store is None or store.is_up else max(1, store.live_replicas())
        if divisor == self._local_divisor:
            return
        self._local_divisor = divisor
        for key, limits in self._limits.items():
            self._apply_limits(self._lanes[key], limits)
            self._changed(key)

    def _apply_limits(self, lane: Lane, limits: LaneLimits) -> None:
        share = self._local_divisor
        for window in lane.windows:
            base = limits.rpm if window.span_seconds == MINUTE_SECONDS else limits.rpd
            window.limit = math.ceil((base or 1) / share)
        if isinstance(lane, TokenLane) and limits.tpm is not None:
            lane.token_window.limit = math.ceil(limits.tpm / share)

    def is_shared(self, key: LaneKey) -> bool:
        """Whether a slot on this lane is taken only by asking the shared store (``acquire``, one round trip):
        ``try_acquire`` always answers None for it. A lane without limits never is; nor any while the store is
        down (the local share decides then)."""
        store = self._shared
        return store is not None and store.is_up and key in self._limits

    def on_change(self, callback: Callable[[LaneKey], None]) -> None:
        """Call ``callback`` with the lane's key whenever a lane changes (a start counted, a provider block,
        a request joining or leaving its queue): routing caches lane views between changes."""
        self._listeners.append(callback)

    def _changed(self, key: LaneKey) -> None:
        for callback in self._listeners:
            callback(key)

    def configure(self, key: LaneKey, *, rpm: int | None, rpd: int | None, tpm: int | None = None) -> None:
        lane = self._lanes[key] = Lane(rpm, rpd) if tpm is None else TokenLane(rpm, rpd, tpm)
        if rpm or rpd or tpm is not None:
            self._limits[key] = LaneLimits(rpm, rpd, tpm)
            if self._local_divisor != 1:
                self._apply_limits(lane, self._limits[key])
        else:
            self._limits.pop(key, None)
        self._changed(key)

    def _lane(self, key: LaneKey) -> Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane(None, None)
        return lane

    def view(self, key: LaneKey) -> LaneView:
        return self._lane(key).view(self._clock.now())

    def lane(self, key: LaneKey) -> Lane:
        """The lane itself, for callers that read its view once per request (routing) and keep the handle."""
        return self._lane(key)

    def block_until(self, key: LaneKey, retry_after_seconds: float) -> None:
        """A provider said wait (429 retry-after, or remaining=0 with a reset time)."""
        lane = self._lane(key)
        lane.blocked_until = max(lane.blocked_until, self._clock.now() + retry_after_seconds)
        if self._shared is not None:
            now_wall = self._clock.wall()
            self._shared.block(key, now_wall + retry_after_seconds, now_wall)
        self._changed(key)

    def try_acquire(self, key: LaneKey, tokens: int = 0) -> TokenReservation | None:
        """Take a slot now, reserving ``tokens`` on a tpm lane; None when the lane would make it wait.
        The reservation (``NO_TOKENS`` on a lane without tpm) goes back to ``settle`` when the attempt ends.
        A shared lane is never free without asking Redis: None (``acquire`` asks)."""
        if self._shared is not None and self.is_shared(key):  # embedded mode: one attribute test, no call
            return None
        lane = self._lane(key)
        now = self._clock.now()
        if lane.waiters or lane.wait_seconds(now, 0, tokens) > 0:
            return None
        reservation = lane.take(now, key, tokens)
        self._changed(key)
        return reservation

    async def acquire(self, key: LaneKey, deadline: float, tokens: int = 0) -> SlotWait:
        """Take a slot (reserving ``tokens`` on a tpm lane), waiting in FIFO order until ``deadline`` (clock
        seconds).

        Returns how long it waited, split into queue and window time, and the reservation. Raises
        RateLimitExceeded when the slot would come after the deadline.
        """
        if self._shared is not None and self.is_shared(key):  # embedded mode: one attribute test, no call
            return await self._acquire_shared(key, deadline, tokens)
        lane = self._lane(key)
        start = self._clock.now()
        if not lane.waiters and lane.wait_seconds(start, 0, tokens) == 0:
            reservation = lane.take(start, key, tokens)
            self._changed(key)
            return SlotWait(reservation=reservation)
        return await self._take_in_turn(key, lane, start, deadline, tokens, is_shared=False)

    async def _acquire_shared(self, key: LaneKey, deadline: float, tokens: int) -> SlotWait:
        """``acquire`` on a shared lane: a request that finds no queue here asks the shared store at once
        (concurrently: the script is atomic); one told to wait queues in FIFO order, and the head asks again,
        waiting as long as it answers, until the deadline. A take is also counted on the local lane (its view,
        ``/rates/status``, and the local share should the store go down)."""
        lane = self._lane(key)
        start = self._clock.now()
        if not lane.waiters:  # nobody here is waiting: ask the store at once, concurrently with other askers
            slot = await self._take_shared_now(key, lane, start, deadline, tokens)
            if slot is not None:
                return slot
        return await self._take_in_turn(key, lane, start, deadline, tokens, is_shared=True)

    async def _take_in_turn(
        self, key: LaneKey, lane: Lane, start: float, deadline: float, tokens: int, *, is_shared: bool
    ) -> SlotWait:
        """Join this process's FIFO queue for the lane; at its head, wait for a slot (the local windows', or the
        shared store's answer), until ``deadline``. Raises RateLimitExceeded."""
        turn = _Turn(tokens)
        lane.waiters.append(turn)
        if lane.waiters[0] is turn:
            turn.set()
        self._changed(key)
        try:
            if is_shared:
                await self._wait_for_shared_turn(key, turn, deadline)
            else:
                await self._wait_for_turn(lane, turn, deadline)
            at_head = self._clock.now()
            if is_shared:
                await self._wait_for_shared_slot(key, lane, deadline, tokens)
            else:
                await self._wait_for_slot(lane, deadline, tokens)
            now = self._clock.now()
            return SlotWait(at_head - start, now - at_head, lane.take(now, key, tokens))
        finally:
            self._leave(lane, turn)
            self._changed(key)

    async def _take_shared_now(
        self, key: LaneKey, lane: Lane, start: float, deadline: float, tokens: int
    ) -> SlotWait | None:
        """One ask of the store for a request that finds no queue here: its slot when taken; RateLimitExceeded
        when the store's wait passes the deadline; None when it must queue (a wait within the deadline, or the
        store went down: the queue's head then decides, on the local share). The store's script is atomic, so
        requests of one process need not take turns to ask it: only those that must wait keep FIFO order."""
        store, limits = self._shared, self._limits.get(key)
        if store is None or limits is None or not store.is_up:
            return None
        wait = await store.take(key, limits, self._clock.wall(), tokens)
        if wait is None:
            return None
        now = self._clock.now()
        if wait <= 0:
            reservation = lane.take(now, key, tokens)
            self._changed(key)
            return SlotWait(0.0, now - start, reservation)
        self._shared_waits[key] = wait
        if now + wait > deadline:
            raise RateLimitExceeded(wait)
        return None

    async def _wait_for_shared_turn(self, key: LaneKey, turn: _Turn, deadline: float) -> None:
        """Behind this process's own queue. The local windows do not see the other replicas' starts, so the
        wait is not foreseen; at the deadline the answer is the shared wait its head was last told."""
        if turn.is_set():
            return
        try:
            async with self._clock.timeout(deadline - self._clock.now()):
                await turn.wait()
        except TimeoutError:
            raise RateLimitExceeded(self._shared_waits.get(key, 1.0)) from None

    async def _wait_for_shared_slot(self, key: LaneKey, lane: Lane, deadline: float, tokens: int) -> None:
        store, limits = self._shared, self._limits.get(key)
        while store is not None and limits is not None and store.is_up:
            wait = await store.take(key, limits, self._clock.wall(), tokens)
            if wait is None:  # went down: the local share decides
                break
            if wait <= 0:
                return
            self._shared_waits[key] = wait
            now = self._clock.now()
            if now + wait > deadline:
                raise RateLimitExceeded(wait)
            await self._clock.sleep(wait)
        await self._wait_for_slot(lane, deadline, tokens)

    def settle(self, reservation: TokenReservation, tokens: int) -> None:
        """An attempt ended: its lane counts ``tokens`` for it in place of what it reserved (from the same
        start). Nothing to do for ``NO_TOKENS``."""
        window = reservation.window
        if window is None or tokens == reservation.tokens:
            return
        window.settle(reservation, tokens, self._clock.now())
        if reservation.key is not None:
            self._changed(reservation.key)

    async def _wait_for_turn(self, lane: Lane, turn: _Turn, deadline: float) -> None:
        while not turn.is_set():
            position = list(lane.waiters).index(turn)
            now = self._clock.now()
            expected = lane.wait_seconds(now, position, turn.tokens)
            if now + expected > deadline:
                raise RateLimitExceeded(expected)
            try:
                async with self._clock.timeout(deadline - now):
                    await turn.wait()
            except TimeoutError:
                raise RateLimitExceeded(lane.wait_seconds(self._clock.now(), position, turn.tokens)) from None

    async def _wait_for_slot(self, lane: Lane, deadline: float, tokens: int) -> None:
        while True:
            now = self._clock.now()
            wait = lane.wait_seconds(now, 0, tokens)
            if wait <= 0:
                return
            if now + wait > deadline:
                raise RateLimitExceeded(wait)
            await self._clock.sleep(wait)

    @staticmethod
    def _leave(lane: Lane, turn: _Turn) -> None:
        was_head = bool(lane.waiters) and lane.waiters[0] is turn
        try:
            lane.waiters.remove(turn)
        except ValueError:
            pass
        if was_head and lane.waiters:
            lane.waiters[0].set()

    def status(self) -> list[dict[str, object]]:
        now = self._clock.now()
        return [_status_row(key, lane, now) for key, lane in self._lanes.items()]


def _status_row(key: LaneKey, lane: Lane, now: float) -> dict[str, object]:
    """One lane for ``/rates/status``: its limits and what of each is used now (tpm: tokens reserved or
    charged in the last minute)."""
    limits: dict[str, int] = {}
    used: dict[str, int] = {}
    for window in lane.windows:
        name = "rpm" if window.span_seconds == MINUTE_SECONDS else "rpd"
        limits[name], used[name] = window.limit, window.used(now)
    if isinstance(lane, TokenLane):
        limits["tpm"], used["tpm"] = lane.token_window.limit, lane.token_window.used_tokens(now)
    return {
        "provider": key.provider,
        "key_id": key.key_id,
        "model": key.model,
        "limits": limits,
        "used": used,
        "wait_seconds": round(lane.wait_seconds(now), 3),
        "blocked_by_provider_seconds": round(max(0.0, lane.blocked_until - now), 3),
        "queue_depth": len(lane.waiters),
    }
