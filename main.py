"""bkvy entry point.

python main.py                 serve config/providers.json + config/routing.json on 0.0.0.0:10006
python main.py --demo          serve a simulated fleet on loopback (no keys, no network)
python main.py --check-config  validate the config, print a summary, exit 0 (valid) or 1
python main.py explain --level auto "prompt"   the plan a request would get, nothing sent (docs/ROUTING.md)
python main.py replay LOG.csv ... --config DIR  the log replayed against a config (docs/EVALUATION.md)

Signals: SIGHUP reloads the config (as ``POST /admin/reload``; an invalid one is logged and the running one
stays); SIGINT and SIGTERM stop gracefully: requests in flight finish and every record is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from dotenv import dotenv_values, load_dotenv

from bkvy.core.config.gateway import ConfigError, GatewayConfig, load_config
from bkvy.core.config.settings import Settings, load_settings
from bkvy.utils.logfmt import configure_logging
from bkvy.utils.scrubber import redact_url

log = logging.getLogger("bkvy")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bkvy", description="bkvy LLM API gateway")
    parser.add_argument(
        "command", nargs="?", choices=["serve", "migrate-to-redis"], default="serve",
        help="migrate-to-redis: copy LOG_DIR's client keys and spend into REDIS_URL once (docs/SCALING.md)",
    )  # fmt: skip
    parser.add_argument("--demo", action="store_true", help="run a simulated provider fleet on loopback")
    parser.add_argument("--check-config", action="store_true", help="validate the config and exit")
    parser.add_argument("--host", help="listen address (default 0.0.0.0, or BKVY_HOST)")
    parser.add_argument("--port", type=int, help="listen port (default 10006, or BKVY_PORT)")
    parser.add_argument(
        "--workers", type=_positive_int, default=1, help="worker processes on one port (more than 1 needs REDIS_URL)"
    )
    parser.add_argument(
        "--log-level", default=os.environ.get("BKVY_LOG_LEVEL", "info"), choices=["debug", "info", "warning", "error"]
    )
    return parser.parse_args(argv)


def config_summary(config: GatewayConfig) -> str:
    lines = [f"{len(config.providers)} providers"]
    for name, provider in config.providers.items():
        lines.append(
            f"  {name} ({provider.type.value}) {redact_url(provider.base_url)}  keys: {', '.join(provider.keys)}"
        )
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
    return "\n".join(lines + _routing_extras(config))


def _routing_extras(config: GatewayConfig) -> list[str]:
    """What routing.json, policy.json and tenants.json add beyond tiers and scenarios (issues 18, 19)."""
    routing = config.routing
    lines = [f"  strategy {route}: {strategy}" for route, strategy in routing.strategies.items()]
    lines += [f"  optimize {route}: {optimize}" for route, optimize in routing.optimize.items()]
    lines += [f"  domain {domain}: {', '.join(models)}" for domain, models in routing.domain_models.items()]
    if routing.classifier is not None:
        lines.append(f"  classifier model: {routing.classifier.model}")
    if config.policy is not None:
        rules = ", ".join(f"{rule.name} ({rule.action.value})" for rule in config.policy.rules) or "(none)"
        residency = ", ".join(rule.name for rule in config.policy.residency) or "(none)"
        lines.append(f"  policy rules: {rules}; residency: {residency}")
    if config.tenants:
        lines.append(f"  tenants: {', '.join(config.tenants)}")
    return lines


def _graceful_server_class():
    import uvicorn

    from bkvy.api.stream_relay import shutdown_cut_seconds

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM after its graceful shutdown, which kills the process before our own
        clean-up (the demo fleet) runs and makes a clean stop exit -15. Shutdown is already complete here."""

        async def shutdown(self, sockets=None):
            """Streams still running shortly before the grace period ends are ended with an error event and
            recorded as ``shutdown`` (``api.stream_relay``), rather than cut silently by uvicorn."""
            services = getattr(self.config.app.state, "services", None)
            grace = self.config.timeout_graceful_shutdown
            if services is not None and services.relays is not None and grace is not None:
                services.relays.end_all_after(shutdown_cut_seconds(grace))
            await super().shutdown(sockets)

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                yield
                if self._captured_signals:
                    log.info("shutdown_by_signal", extra={"signals": list(self._captured_signals)})
                self._captured_signals.clear()

    return GracefulServer


ConfigSource = Callable[[], GatewayConfig]


def _file_config_source(settings: Settings, startup_environ: Mapping[str, str]) -> ConfigSource:
    """The one validator of start-up, ``--check-config`` and every reload: the config files, with key values from
    the environment as start-up saw it (the process environment, then ``.env`` for what it lacks), except that a
    variable edited in ``.env`` since start-up takes its new value: a key fixed in ``.env`` is picked up by a
    reload, also under systemd, whose ``EnvironmentFile=.env`` put the old value in the process environment.
    Raises ConfigError."""
    dotenv_at_start = _dotenv()

    def read() -> GatewayConfig:
        environ = {**dotenv_at_start, **startup_environ}
        environ |= {name: value for name, value in _dotenv().items() if dotenv_at_start.get(name) != value}
        return load_config(settings.config_dir, environ)

    return read


def _dotenv() -> dict[str, str]:
    return {name: value for name, value in dotenv_values(Path(".env")).items() if value is not None}


def _reload_on_sighup(app, server) -> Callable[[], None]:
    """SIGHUP's handler: reload in a task of its own (ignored before start-up completes or once stopping)."""
    from bkvy.api.services import reload_and_log

    reloads: set[asyncio.Task[bool]] = set()

    def on_sighup() -> None:
        services = getattr(app.state, "services", None)
        if services is None or server.should_exit:
            log.warning("reload_ignored", extra={"reason": "not serving"})
            return
        task = asyncio.get_running_loop().create_task(reload_and_log(services))
        reloads.add(task)  # a reference, so the task is not collected mid-reload
        task.add_done_callback(reloads.discard)

    return on_sighup


async def _serve(
    settings: Settings, demo: bool, log_level: str, config_source: ConfigSource, sock: socket.socket | None = None
) -> None:
    import uvicorn

    from bkvy.api.app import create_app
    from bkvy.api.server import ConnectionCounts, ConnectionLimits, guarded_http_protocol

    fleet = None
    if demo:
        from bkvy.demo import demo_config
        from bkvy.sim import SimFleet

        fleet = SimFleet(seed=7)
        await fleet.start("127.0.0.1")
        config_source = lambda: demo_config(fleet)  # noqa: E731 - the demo reloads its own generated config
        config = config_source()
        print("bkvy demo: simulated providers on loopback:", file=sys.stderr)
        print(config_summary(config), file=sys.stderr)
    else:
        config = config_source()
    connection_counts = ConnectionCounts()  # the protocol's tallies, on /metrics
    app = create_app(settings, config, config_source=config_source, connections_ended=connection_counts.by_reason)
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
            http=guarded_http_protocol(
                ConnectionLimits.from_settings(settings), connection_counts
            ),  # header cap, timeouts
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        )
    )
    # Without a handler SIGHUP ends the process at once, losing the records still queued (issue 15).
    # uvicorn handles SIGINT and SIGTERM itself (a graceful stop), never SIGHUP.
    has_sighup = hasattr(signal, "SIGHUP")
    if has_sighup:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _reload_on_sighup(app, server))
    try:
        await server.serve(sockets=None if sock is None else [sock])
    finally:
        if has_sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
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


def _serve_workers(settings: Settings, args: argparse.Namespace, config_source: ConfigSource) -> int:
    """``--workers N`` (bkvy/api/workers.py): refused without REDIS_URL, exit 2 with one line."""
    from bkvy.api.workers import WORKERS_NEED_REDIS, bind_sockets, serve_workers

    if settings.redis_url is None:
        print(WORKERS_NEED_REDIS.format(count=args.workers), file=sys.stderr)
        return 2
    if not args.demo:
        config_source()  # a bad config stops here, once, not in every worker
    sockets = bind_sockets(settings.host, settings.port, args.workers)

    def run_worker(sock: socket.socket) -> int:
        with contextlib.suppress(KeyboardInterrupt):
            _run(_serve(settings, args.demo, args.log_level, config_source, sock))
        return 0

    return serve_workers(sockets, run_worker)


def _run(coroutine) -> None:
    """uvloop where available: uvicorn's own loop choice does not apply when we own the loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
        return
    uvloop.run(coroutine)


def _migrate_to_redis(settings: Settings) -> int:
    """Copy the embedded client keys and circuit states into Redis (idempotent) and print what was copied."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from bkvy.api.services import CIRCUIT_STATE_FILE
    from bkvy.core.shared.migrate import migrate_circuits, migrate_client_keys

    if settings.redis_url is None:
        print("bkvy: migrate-to-redis needs REDIS_URL (the Redis to copy into)", file=sys.stderr)
        return 2

    async def run() -> str:
        client = Redis.from_url(settings.redis_url, socket_timeout=10.0, socket_connect_timeout=10.0)
        try:
            report = await migrate_client_keys(
                client, prefix=settings.redis_prefix, log_dir=settings.log_dir, now_wall=time.time()
            )
            circuits_found, circuits_copied = await migrate_circuits(
                client, prefix=settings.redis_prefix, state_file=settings.log_dir / CIRCUIT_STATE_FILE
            )
        finally:
            await client.aclose()
        return (
            f"client keys: {report.keys_found} in {settings.log_dir}, {report.keys_copied} copied"
            f" ({report.revoked_copied} revoked), this month's spend copied: ${report.spend_copied_usd:.6f};"
            f"; circuit states: {circuits_found} in {CIRCUIT_STATE_FILE}, {circuits_copied} copied"
        )

    try:
        print(asyncio.run(run()))
    except (RedisError, OSError) as error:
        print(f"bkvy: migrate-to-redis: Redis unreachable ({type(error).__name__})", file=sys.stderr)
        return 1
    return 0


def _demo_config_offline() -> GatewayConfig:
    """``--demo``'s config without starting its simulated fleet: the same providers, models, keys and scenarios,
    with a placeholder loopback URL (``explain`` sends nothing)."""
    from bkvy.demo import demo_config
    from bkvy.sim import SimFleet

    fleet = SimFleet(seed=7)
    for server in fleet.servers.values():
        server.base_url = "http://127.0.0.1:9"
    return demo_config(fleet)


def _explain(args: argparse.Namespace, settings: Settings, config_source: ConfigSource) -> int:
    """``python main.py explain ...``: the plan ``POST /llm/explain`` would answer; nothing is sent."""
    from bkvy.api.explain_cli import run_explain

    if args.demo:
        return run_explain(
            args, settings.model_copy(update={"log_dir": settings.log_dir / "demo"}), _demo_config_offline()
        )
    return run_explain(args, settings, config_source())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    explain_args = replay_args = None
    if argv[:1] == ["replay"]:  # its own arguments (bkvy/replay/cli.py); exits 2 on bad ones
        from bkvy.replay.cli import parse_replay_args

        replay_args, argv = parse_replay_args(argv[1:]), []
    if argv[:1] == ["explain"]:  # its own arguments (bkvy/api/explain_cli.py); exits 2 on bad ones
        from bkvy.api.explain_cli import parse_explain_args

        explain_args, argv = parse_explain_args(argv[1:]), []
    args = _parse_args(argv)
    # Fewer young-generation collections under load; with gc.freeze() in the app's lifespan this took
    # /llm/direct at c=64 from 80 % to 93 % of the aiohttp forwarder (benchmarks/run.py --quick, 2026-12-01).
    gc.set_threshold(20_000, 50, 100)
    startup_environ = dict(os.environ)  # before .env is loaded: see _file_config_source
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
        config_source = _file_config_source(settings, startup_environ)
        if explain_args is not None:
            return _explain(explain_args, settings, config_source)
        if replay_args is not None:
            from bkvy.replay.cli import run_replay

            return run_replay(replay_args, settings)
        if args.check_config:
            config = config_source()
            print(f"config OK ({settings.config_dir})\n{config_summary(config)}")
            return 0
        if args.command == "migrate-to-redis":
            return _migrate_to_redis(settings)
        if args.demo:
            settings = _demo_settings(settings, explicit_host=bool(args.host))
            _fresh_demo_state(settings.log_dir)
        if args.workers > 1:
            return _serve_workers(settings, args, config_source)
        _run(_serve(settings, args.demo, args.log_level, config_source))
    except ConfigError as error:
        print(f"bkvy: configuration error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
