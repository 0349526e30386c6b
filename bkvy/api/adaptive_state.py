"""Where the bandit's posteriors live between requests and restarts (issue 18 §3).

Embedded mode: LOG_DIR/bandit_states.json, restored at start-up and saved like the circuit states (one write per
second of updates at most, in a thread, atomic, 0600; flushed at shutdown). With REDIS_URL: Redis
(``core/shared/bandit.py``), as for the circuit states.
"""

from __future__ import annotations

import logging
import random

from bkvy.clock import Clock
from bkvy.core.circuits.store import DebouncedSaver
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.settings import Settings
from bkvy.core.execution.adaptive import AdaptiveRouting
from bkvy.core.routing.bandit_store import BanditStore

log = logging.getLogger(__name__)

BANDIT_STATE_FILE = "bandit_states.json"
BANDIT_SAVE_DELAY_SECONDS = 1.0  # as the circuit states'


def adaptive_routing(
    settings: Settings, config: GatewayConfig, clock: Clock, rng: object
) -> tuple[AdaptiveRouting, DebouncedSaver | None]:
    """The bandit over ``config``'s adaptive routes, restored from LOG_DIR (embedded mode) with a saver for each
    update; with REDIS_URL no file (``SharedBandit`` restores it). ``rng``: a ``random.Random`` seeds the draws
    (tests), anything else is ignored."""
    adaptive = AdaptiveRouting(config, rng=rng if isinstance(rng, random.Random) else None)
    if settings.redis_url is not None:
        return adaptive, None
    store = BanditStore(settings.log_dir / BANDIT_STATE_FILE)
    saved = store.load()  # start-up, before serving: a sync read is fine here
    if saved is not None:
        log.info("bandit_loaded", extra={"arms": adaptive.book.load_dict(saved)})
    saver = DebouncedSaver(store, clock, delay_seconds=BANDIT_SAVE_DELAY_SECONDS)

    def schedule_save(_route: str, _pair: tuple[str, str], _reward: float) -> None:
        if not saver.is_pending:  # one check per update; the write happens later, in a thread
            saver.schedule(adaptive.book.to_dict)

    adaptive.on_update(schedule_save)
    return adaptive, saver
