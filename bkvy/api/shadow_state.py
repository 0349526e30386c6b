"""Shadow traffic's wiring (issue 20 §2): the runner over this process's transport and lanes, its book saved to
``LOG_DIR/shadow_stats.json`` at most once per ``SAVE_DELAY_SECONDS``."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from bkvy.core.circuits.store import DebouncedSaver
from bkvy.core.shadow.runner import ShadowCaps, ShadowRunner
from bkvy.core.shadow.store import SHADOW_STATS_FILE, ShadowStore

if TYPE_CHECKING:
    from bkvy.api.services import Services

SAVE_DELAY_SECONDS = 5.0


def start_shadow(services: Services, rng: random.Random | None) -> tuple[ShadowRunner, DebouncedSaver]:
    """The runner (the executor's observer; it reads each reload's config) and the saver of its book."""
    settings = services.settings
    store = ShadowStore(settings.log_dir / SHADOW_STATS_FILE)
    saver = DebouncedSaver(store, services.clock, delay_seconds=SAVE_DELAY_SECONDS)
    runner = ShadowRunner(
        config_of=lambda: services.config,
        transport=services.transport,
        limiter=services.limiter,
        clock=services.clock,
        caps=ShadowCaps(
            settings.shadow_max_concurrency, settings.shadow_daily_budget_usd, settings.request_hard_timeout_seconds
        ),
        rng=random.Random(rng.random()) if rng is not None else None,
        book=store.load(),  # start-up, before serving: a sync read is fine here
    )
    runner.on_change = lambda: saver.schedule(runner.book.to_dict)
    services.executor.add_observer(runner.observe)
    return runner, saver


async def stop_shadow(runner: ShadowRunner, saver: DebouncedSaver) -> None:
    await runner.stop()
    saver.schedule(runner.book.to_dict)
    await saver.flush()


def shadow_dashboard_rows(runner: ShadowRunner | None) -> list[dict[str, object]]:
    """The dashboard's shadow panel: per route, the primary's row then each shadow model's (numbers only)."""
    if runner is None:
        return []
    rows: list[dict[str, object]] = []
    for route, models in runner.book.summary()["routes"].items():
        for model, summary in models.items():
            rows.append({"route": route, "model": model} | summary)
    return rows
