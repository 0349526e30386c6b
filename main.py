"""bkvy entry point.

python main.py                 serve config/providers.json + config/routing.json on 0.0.0.0:10006
python main.py --demo          serve a simulated fleet on loopback (no keys, no network)
python main.py --check-config  validate the config, print a summary, exit 0 (valid) or 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import sys
from pathlib import Path

from dotenv import load_dotenv

from bkvy.core.config.gateway import ConfigError, GatewayConfig, load_config
from bkvy.core.config.settings import Settings, load_settings
from bkvy.utils.logfmt import configure_logging

log = logging.getLogger("bkvy")


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bkvy", description="bkvy LLM API gateway")
    parser.add_argument("--demo", action="store_true", help="run a simulated provider fleet on loopback")
    parser.add_argument("--check-config", action="store_true", help="validate the config and exit")
    parser.add_argument("--host", help="listen address (default 0.0.0.0, or BKVY_HOST)")
    parser.add_argument("--port", type=int, help="listen port (default 10006, or BKVY_PORT)")
    parser.add_argument(
        "--log-level", default=os.environ.get("BKVY_LOG_LEVEL", "info"), choices=["debug", "info", "warning", "error"]
    )
    return parser.parse_args(argv)


def config_summary(config: GatewayConfig) -> str:
    lines = [f"{len(config.providers)} providers"]
    for name, provider in config.providers.items():
        lines.append(f"  {name} ({provider.type.value}) {provider.base_url}  keys: {', '.join(provider.keys)}")
    for tier in ("low", "medium", "high"):
        models = [
            f"{p}/{m}"
            for p, provider in config.providers.items()
            for m, model in provider.models.items()
            if model.intelligence_tier is not None and model.intelligence_tier.value == tier
        ]
        lines.append(f"  tier {tier:6}: {', '.join(models) or '(none)'}")
    embedding_models = [
        f"{p}/{m}"
        for p, provider in config.providers.items()
        for m, model in provider.models.items()
        if model.is_embedding_model
    ]
    if embedding_models:
        lines.append(f"  embeddings : {', '.join(embedding_models)}")
    for name in config.routing.scenarios:
        chain = " -> ".join(f"{e.provider}/{e.model}" for e in config.scenario(name) or [])
        lines.append(f"  scenario {name}: {chain}")
    return "\n".join(lines)


def _graceful_server_class():
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM after its graceful shutdown, which kills the process before our own
        clean-up (the demo fleet) runs and makes a clean stop exit -15. Shutdown is already complete here."""

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                yield
                if self._captured_signals:
                    log.info("shutdown_by_signal", extra={"signals": list(self._captured_signals)})
                self._captured_signals.clear()

    return GracefulServer


async def _serve(settings: Settings, demo: bool, log_level: str) -> None:
    import uvicorn

    from bkvy.api.app import create_app

    fleet = None
    if demo:
        from bkvy.demo import demo_config
        from bkvy.sim import SimFleet

        fleet = SimFleet(seed=7)
        await fleet.start("127.0.0.1")
        config = demo_config(fleet)
        print("bkvy demo: simulated providers on loopback:", file=sys.stderr)
        print(config_summary(config), file=sys.stderr)
    else:
        config = load_config(settings.config_dir)
    app = create_app(settings, config)
    # proxy_headers=False: the client address is the socket peer; X-Forwarded-For is honoured only
    # for configured trusted proxies, by bkvy itself (SPEC §8).
    server = _graceful_server_class()(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            log_config=None,  # uvicorn's lines go through the root logger's FieldsFormatter too (LOG_FORMAT)
            proxy_headers=False,
            server_header=False,
            access_log=False,
            loop="auto",
            http="auto",
            timeout_graceful_shutdown=10,
        )
    )
    try:
        await server.serve()
    finally:
        if fleet is not None:
            await fleet.stop()


_DEMO_FEATURES = {
    "TRANSACTION_LOGGING": "transaction_logging",
    "SUMMARY_STATS": "summary_stats",
    "DASHBOARD_ENABLED": "dashboard_enabled",
}


def _demo_settings(settings: Settings, *, explicit_host: bool) -> Settings:
    """The demo binds loopback and shows every feature (records, dashboard) unless the environment says no.

    Its state lives in ``<LOG_DIR>/demo/``, never beside a real run's: a demo must not see the real run's client
    keys (one key, even revoked, makes every request need one), circuits or learned latency, nor leave its own
    there. A sub-directory rather than a temp dir, so the demo's records and dashboard data stay to look at."""
    update: dict[str, object] = {
        field: True for variable, field in _DEMO_FEATURES.items() if variable not in os.environ
    }
    update["log_dir"] = settings.log_dir / "demo"
    if not explicit_host and "BKVY_HOST" not in os.environ:
        update["host"] = "127.0.0.1"
    return settings.model_copy(update=update)


def _fresh_demo_state(log_dir: Path) -> None:
    """Each demo starts as docs/EXAMPLES.md expects: without the client keys, circuits and learned latency an
    earlier demo kept (its records stay)."""
    from bkvy.api.services import CIRCUIT_STATE_FILE, LATENCY_FILE
    from bkvy.core.limits.client_keys import CLIENT_KEYS_FILE

    for name in (CLIENT_KEYS_FILE, CIRCUIT_STATE_FILE, LATENCY_FILE):
        for suffix in ("", "-wal", "-shm", "-journal"):  # SQLite's companions of the key store
            (log_dir / f"{name}{suffix}").unlink(missing_ok=True)


def _run(coroutine) -> None:
    """uvloop where available: uvicorn's own loop choice does not apply when we own the loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
        return
    uvloop.run(coroutine)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    # Fewer young-generation collections under load; with gc.freeze() in the app's lifespan this took
    # /llm/direct at c=64 from 80 % to 93 % of the aiohttp forwarder (benchmarks/run.py --quick, 2026-12-01).
    gc.set_threshold(20_000, 50, 100)
    load_dotenv(Path(".env"), override=False)
    configure_logging(args.log_level)  # until the settings say LOG_FORMAT
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    try:
        settings = load_settings(**overrides)
        configure_logging(args.log_level, settings.log_format)
        if args.check_config:
            config = load_config(settings.config_dir)
            print(f"config OK ({settings.config_dir})\n{config_summary(config)}")
            return 0
        if args.demo:
            settings = _demo_settings(settings, explicit_host=bool(args.host))
            _fresh_demo_state(settings.log_dir)
        _run(_serve(settings, args.demo, args.log_level))
    except ConfigError as error:
        print(f"bkvy: configuration error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
