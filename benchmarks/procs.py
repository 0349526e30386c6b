"""Server processes for the benchmark: start on loopback, wait until they answer, stop by pid, read RSS."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# The same server flags for every uvicorn app (bkvy's main.py sets the same: loop/http "auto" pick
# uvloop/httptools when installed, access log off, one process).
UVICORN_FLAGS = (
    "--workers",
    "1",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "warning",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """Which cores each side gets: the gateway under test alone, the upstream and wrk elsewhere."""

    gateway: frozenset[int] | None
    upstream: frozenset[int] | None
    load: frozenset[int] | None

    def describe(self) -> str:
        if self.gateway is None:
            return "not pinned"
        return (
            f"gateway on CPU {sorted(self.gateway)}, upstream on {sorted(self.upstream or [])}, "
            f"wrk/clients on {sorted(self.load or [])}"
        )


def cpu_plan(is_pinned: bool) -> CpuPlan:
    cores = sorted(os.sched_getaffinity(0))
    if not is_pinned or len(cores) < 2:
        return CpuPlan(None, None, None)
    if len(cores) < 4:
        return CpuPlan(frozenset(cores[1:2]), frozenset(cores[:1]), frozenset(cores[:1]))
    return CpuPlan(frozenset(cores[1:2]), frozenset(cores[2:3]), frozenset(cores[3:4]))


@dataclass(slots=True)
class Server:
    name: str
    argv: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    cpus: frozenset[int] | None = None
    log_path: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_seconds: float = 60.0) -> None:
        cpus = self.cpus
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 (the child writes to it for its life)
        self.process = subprocess.Popen(
            self.argv,
            cwd=REPO_ROOT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches only the runner, which stops us
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        self._wait_listening(timeout_seconds)

    def _wait_listening(self, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not listen on {self.port} within {timeout_seconds:g} s")

    def stop(self) -> None:
        """SIGINT, then SIGTERM, then SIGKILL, to this server's own process group only."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig, grace_seconds in ((signal.SIGINT, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=grace_seconds)
                return
            except subprocess.TimeoutExpired:
                continue

    def cpu_seconds(self) -> float:
        """User + system CPU time so far, from /proc/PID/stat."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_kib(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in KiB from /proc/PID/status."""
        fields: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
        return fields["VmRSS"], fields["VmHWM"]


def uvicorn_argv(app: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port), *UVICORN_FLAGS]
