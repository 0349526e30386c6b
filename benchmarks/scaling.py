"""What Redis and ``--workers`` cost (issue 17): ``python benchmarks/scaling.py [--seconds 10] [--rounds 3]``.

One run, one upstream (benchmarks/fast_upstream.py), one redis-server (a free port, a temp dir, no persistence),
``POST /llm/direct`` from ``wrk -c64``, bkvy with the transaction log off, in these configurations, one after the
other (each started, warmed 2 s, measured, stopped):

- ``1 worker, no Redis`` and ``1 worker, Redis``, each on a lane without limits (never touches Redis) and on a
  lane with an rpm limit far above the load (so every request runs the shared take script: one ``EVALSHA``);
- ``1 worker, Redis, client key``: the limited lane, each request with a client key (admission: one more
  ``EVALSHA``; spend added after the reply, batched);
- ``2 workers, Redis`` (``--workers 2``) on the limited lane.

Reported per configuration: req/s (median of the rounds), CPU µs per request of bkvy (every process: parent and
workers) and of redis-server (``/proc/<pid>/stat`` utime + stime, before and after each measured run), Redis
commands per request (``INFO commandstats`` deltas, total and per command; commands a script runs are counted
too, listed apart), and the CPU the load generator (wrk) and the upstream took. Nothing is pinned: every process
shares the machine's cores, as a ``--workers`` deployment does.

Prints a markdown table and writes it to ``benchmarks/results/<date>-scaling.md`` (``.2``, ... on a later run the
same day). Every process it starts is stopped on exit, on an error and on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis  # the project's own dependency (requirements.txt)
from fleet import DIRECT_BODY, write_bkvy_config
from loadgen import WrkResult, require_wrk, run_wrk
from procs import HOST, REPO_ROOT, Server, free_port

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CONNECTIONS = 64
LIMITED_KEY = "limited_key"
UNLIMITED_KEY = "free_key"
NEVER_BINDING_RPM = 100_000_000  # far above any load: the take script always grants, but it runs
ADMIN_KEY = "bench-admin-key-0123456789"
# commands the take / admission scripts run inside EVALSHA (counted by INFO commandstats, not round trips)
SCRIPT_COMMANDS = frozenset(
    {"get", "zremrangebyscore", "zcard", "zrange", "zadd", "pexpire", "exists", "hget", "hincrby", "hset"}
)
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Config:
    label: str
    workers: int
    uses_redis: bool
    key_id: str  # which provider key (lane) /llm/direct pins: limited or not
    uses_client_key: bool = False


CONFIGS = (
    Config("1 worker, no Redis, lane without limits", 1, False, UNLIMITED_KEY),
    Config("1 worker, Redis, lane without limits", 1, True, UNLIMITED_KEY),
    Config("1 worker, no Redis, limited lane", 1, False, LIMITED_KEY),
    Config("1 worker, Redis, limited lane", 1, True, LIMITED_KEY),
    Config("1 worker, Redis, limited lane + client key", 1, True, LIMITED_KEY, uses_client_key=True),
    Config("2 workers, Redis, limited lane", 2, True, LIMITED_KEY),
)


@dataclass(slots=True)
class Measured:
    config: Config
    results: list[WrkResult] = field(default_factory=list)
    bkvy_cpu: float = 0.0
    redis_cpu: float = 0.0
    upstream_cpu: float = 0.0
    wrk_cpu: float = 0.0
    commands: dict[str, int] = field(default_factory=dict)
    down_events: int = 0  # "shared_state_down" log lines: a Redis call slower than REDIS_TIMEOUT_MS

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.results)

    def per_request_us(self, seconds: float) -> float:
        return seconds * 1e6 / max(self.requests, 1)

    def per_request(self, calls: int) -> float:
        return calls / max(self.requests, 1)


def _process_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return total


def _tree(root: int) -> list[int]:
    """``root`` and every descendant (``--workers N`` forks its workers), from /proc's parent ids."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    found, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def _wrk_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped during a run
    return usage.ru_utime + usage.ru_stime


def _command_calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def write_config(work_dir: Path, upstream_url: str) -> Path:
    """One ``openai`` provider at the upstream, one model, a key without limits and a key with a huge rpm."""
    return write_bkvy_config(
        work_dir,
        upstream_url,
        keys={
            UNLIMITED_KEY: {"api_key": "sk-bench-free"},
            LIMITED_KEY: {"api_key": "sk-bench-limited", "rate_limits": {"*": {"rpm": NEVER_BINDING_RPM}}},
        },
    )


def _post(url: str, body: dict[str, object], headers: dict[str, str]) -> dict[str, object]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


class Bench:
    def __init__(self, seconds: float, rounds: int) -> None:
        self.seconds = seconds
        self.rounds = rounds
        self.work_dir = Path(tempfile.mkdtemp(prefix="bkvy-scaling-"))
        self.servers: list[Server] = []
        self.upstream: Server | None = None
        self.redis: Server | None = None
        self.redis_client: redis.Redis | None = None

    def _start(self, server: Server) -> Server:
        self.servers.append(server)
        server.start()
        return server

    def start_shared(self) -> None:
        port = free_port()
        self.upstream = self._start(
            Server(
                "upstream",
                [sys.executable, "benchmarks/fast_upstream.py", "--port", str(port)],
                port,
                log_path=self.work_dir / "upstream.log",
            )
        )
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise SystemExit("redis-server is not installed: apt-get install -y redis-server")
        port = free_port()
        redis_dir = self.work_dir / "redis"
        redis_dir.mkdir()
        argv = [redis_server, "--port", str(port), "--bind", HOST, "--dir", str(redis_dir), "--save", ""]
        argv += ["--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
        self.redis = self._start(Server("redis", argv, port, log_path=self.work_dir / "redis.log"))
        self.redis_client = redis.Redis(host=HOST, port=port)

    def stop(self) -> None:
        if self.redis_client is not None:
            self.redis_client.close()
        for server in reversed(self.servers):
            server.stop()

    def measure(self, config: Config) -> Measured:
        assert self.upstream is not None and self.redis is not None and self.redis_client is not None
        self.redis_client.flushall()
        name = config.label.replace(" ", "_").replace(",", "").replace("+", "")
        log_dir = self.work_dir / f"{name}-logs"
        log_dir.mkdir()
        env = {
            "BKVY_CONFIG_DIR": str(self.config_dir),
            "LOG_DIR": str(log_dir),
            "TRANSACTION_LOGGING": "false",
            "BKVY_LOG_LEVEL": "warning",
            "BKVY_ADMIN_API_KEY": ADMIN_KEY,
        }
        if config.uses_redis:
            env["REDIS_URL"] = f"redis://{HOST}:{self.redis.port}/0"
        port = free_port()
        argv = [sys.executable, "main.py", "--host", HOST, "--port", str(port), "--workers", str(config.workers)]
        bkvy = self._start(Server(name, argv, port, env, log_path=self.work_dir / f"{name}.log"))
        try:
            found = self._load(config, bkvy)
        finally:
            bkvy.stop()
            self.servers.remove(bkvy)
        assert bkvy.log_path is not None
        found.down_events = bkvy.log_path.read_text(errors="replace").count("shared_state_down")
        return found

    def _load(self, config: Config, bkvy: Server) -> Measured:
        assert self.upstream is not None and self.redis is not None and self.redis_client is not None
        body = json.loads(DIRECT_BODY)
        body["api_key_id"] = config.key_id
        url = bkvy.base_url + "/llm/direct"
        auth = ""
        if config.uses_client_key:
            created = _post(bkvy.base_url + "/admin/keys", {"name": "bench"}, {"X-Admin-API-Key": ADMIN_KEY})
            auth = str(created["key"])
        os.environ["BENCH_AUTH"] = auth
        headers = {"Authorization": f"Bearer {auth}"} if auth else {}
        _post(url, body, headers)  # fails loudly when the body or the key is wrong
        if config.workers > 1:
            time.sleep(1.0)  # every worker listening (the first answer came from one of them)
        found = Measured(config)
        text = json.dumps(body)
        run_wrk(url, text, connections=CONNECTIONS, duration_seconds=2.0)  # warm the pools; not measured
        for _ in range(self.rounds):
            time.sleep(0.5)
            bkvy_pids, redis_pids = _tree(bkvy.pid), _tree(self.redis.pid)
            before = (_process_cpu(bkvy_pids), _process_cpu(redis_pids), self.upstream.cpu_seconds(), _wrk_cpu())
            calls_before = _command_calls(self.redis_client)
            found.results.append(run_wrk(url, text, connections=CONNECTIONS, duration_seconds=self.seconds))
            calls_after = _command_calls(self.redis_client)
            after = (_process_cpu(bkvy_pids), _process_cpu(redis_pids), self.upstream.cpu_seconds(), _wrk_cpu())
            found.bkvy_cpu += after[0] - before[0]
            found.redis_cpu += after[1] - before[1]
            found.upstream_cpu += after[2] - before[2]
            found.wrk_cpu += after[3] - before[3]
            for command, calls in calls_after.items():
                delta = calls - calls_before.get(command, 0) - (1 if command == "info" else 0)
                if delta:
                    found.commands[command] = found.commands.get(command, 0) + delta
        os.environ.pop("BENCH_AUTH", None)
        return found

    @property
    def config_dir(self) -> Path:
        assert self.upstream is not None
        existing = self.work_dir / "config"
        return existing if existing.exists() else write_config(self.work_dir, self.upstream.base_url)


def _commands_text(found: Measured) -> str:
    parts = []
    for command, calls in sorted(found.commands.items(), key=lambda item: -item[1]):
        inner = " (in script)" if command in SCRIPT_COMMANDS else ""
        parts.append(f"{command} {found.per_request(calls):.3f}{inner}")
    return ", ".join(parts) or "none"


def render(measured: list[Measured], context: list[str]) -> str:
    lines = [f"# bkvy scaling benchmark {datetime.date.today().isoformat()}", ""]
    lines += [f"- {line}" for line in context]
    lines += [
        "",
        "| configuration | req/s | errors | p50 ms | p99 ms | bkvy CPU µs/req | redis CPU µs/req | bkvy+redis µs/req "
        "| EVALSHA/req | Redis commands/req | Redis down events | wrk µs/req | upstream µs/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for found in measured:
        errors = sum(r.errors for r in found.results)
        lines.append(
            f"| {found.config.label} | {statistics.median(r.requests_per_second for r in found.results):,.0f} "
            f"| {errors} | {statistics.median(r.p50_ms for r in found.results):.2f} "
            f"| {statistics.median(r.p99_ms for r in found.results):.2f} "
            f"| {found.per_request_us(found.bkvy_cpu):.0f} | {found.per_request_us(found.redis_cpu):.1f} "
            f"| {found.per_request_us(found.bkvy_cpu + found.redis_cpu):.0f} "
            f"| {found.per_request(found.commands.get('evalsha', 0)):.3f} "
            f"| {found.per_request(sum(found.commands.values())):.2f} | {found.down_events} "
            f"| {found.per_request_us(found.wrk_cpu):.0f} | {found.per_request_us(found.upstream_cpu):.0f} |"
        )
    lines += [
        "",
        "Redis commands per request (`INFO commandstats` deltas over the measured runs; `(in script)`: a command the",
        "take or admission script runs inside its EVALSHA, counted by Redis but no round trip of its own; the others",
        "are round trips or parts of a pipelined one):",
        "",
    ]
    lines += [f"- {found.config.label}: {_commands_text(found)}" for found in measured if found.config.uses_redis]
    lines += ["", *_derived(measured)]
    return "\n".join(lines) + "\n"


def _derived(measured: list[Measured]) -> list[str]:
    by_label = {found.config.label: found for found in measured}
    local = by_label.get("1 worker, no Redis, limited lane")
    shared = by_label.get("1 worker, Redis, limited lane")
    if local is None or shared is None:
        return []
    local_us = local.per_request_us(local.bkvy_cpu)
    shared_us = shared.per_request_us(shared.bkvy_cpu + shared.redis_cpu)
    redis_us = shared.per_request_us(shared.redis_cpu)
    lines = [
        f"- CPU per request, limited lane: {local_us:.0f} µs in-process, {shared_us:.0f} µs with Redis (bkvy + "
        f"redis-server): {100 * (shared_us / local_us - 1):+.0f} % (goal ≤ +30 %)",
        "- Redis round trips per request on the hot path (EVALSHA): "
        f"{shared.per_request(shared.commands.get('evalsha', 0)):.3f} on the limited lane (goal ≤ 2)",
    ]
    if redis_us > 0:
        lines.append(
            f"- one Redis core: {redis_us:.1f} µs per request → {1e6 / redis_us:,.0f} req/s at 100 % of a core; "
            f"{0.5e6 / redis_us:,.0f} req/s at 50 % (the margin to plan with)"
        )
    keyed = by_label.get("1 worker, Redis, limited lane + client key")
    if keyed is not None:
        lines.append(
            f"- with a client key: {keyed.per_request(keyed.commands.get('evalsha', 0)):.3f} EVALSHA per request "
            f"(goal ≤ 2); spend flushes: {keyed.per_request(keyed.commands.get('hincrbyfloat', 0)):.3f} "
            "HINCRBYFLOAT per request"
        )
    two = by_label.get("2 workers, Redis, limited lane")
    if two is not None:
        one_rps = statistics.median(r.requests_per_second for r in shared.results)
        two_rps = statistics.median(r.requests_per_second for r in two.results)
        lines.append(f"- 2 workers against 1 (both with Redis, limited lane): {two_rps / one_rps:.2f}×")
    for found in measured:
        wall = sum(r.requests / max(r.requests_per_second, 1e-9) for r in found.results) * (os.cpu_count() or 1)
        shares = (found.bkvy_cpu, found.redis_cpu, found.wrk_cpu, found.upstream_cpu)
        bkvy, redis_share, wrk, upstream = (f"{100 * cpu / wall:.0f} %" for cpu in shares)
        lines.append(
            f"- machine's CPU during {found.config.label}: bkvy {bkvy}, redis-server {redis_share}, wrk {wrk}, "
            f"upstream {upstream}"
        )
    return lines


def _stem() -> str:
    base = datetime.date.today().isoformat() + "-scaling"
    stem, number = base, 1
    while (RESULTS_DIR / f"{stem}.md").exists():
        number += 1
        stem = f"{base}.{number}"
    return stem


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per configuration")
    parser.add_argument("--only", default="", help="comma list of substrings of the configurations to run")
    args = parser.parse_args()
    require_wrk()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_interrupt)
    configs = [c for c in CONFIGS if not args.only or any(w.strip() in c.label for w in args.only.split(","))]
    bench = Bench(args.seconds, args.rounds)
    started = time.monotonic()
    measured: list[Measured] = []
    try:
        print(f"starting upstream and redis-server (logs in {bench.work_dir})", file=sys.stderr, flush=True)
        bench.start_shared()
        for config in configs:
            print(f"[{config.label}]", file=sys.stderr, flush=True)
            measured.append(bench.measure(config))
    except KeyboardInterrupt:
        print("interrupted: stopping every server", file=sys.stderr)
        return 130
    finally:
        bench.stop()
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout.strip()
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    context = [
        f"machine: {os.cpu_count()} CPUs, not pinned (bkvy, redis-server, upstream and wrk share them); "
        f"Python {platform.python_version()}; {' '.join(redis_version[:3])}; bkvy {commit or 'unknown'}",
        f"load: wrk -t1 -c{CONNECTIONS}, POST /llm/direct pinned to one lane, {args.rounds} × {args.seconds:g} s per "
        "configuration after a 2 s warm-up; req/s, p50, p99: median of the rounds; CPU and commands: over all rounds",
        f"limited lane: rpm {NEVER_BINDING_RPM:,} (never binds; the take script runs on every request); "
        "transaction log off; a fresh bkvy and an emptied Redis (FLUSHALL) per configuration",
        f"run took {time.monotonic() - started:.0f} s",
    ]
    report = render(measured, context)
    RESULTS_DIR.mkdir(exist_ok=True)
    out_path = RESULTS_DIR / f"{_stem()}.md"
    out_path.write_text(report)
    print(report)
    print(f"written to {out_path.relative_to(REPO_ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
