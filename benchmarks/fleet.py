"""The servers under test and the targets (URL + body) the scenarios load.

Upstream (fast_upstream.py) ← direct, reference forwarders (aiohttp, httpx), bkvy with logging off and on,
and LiteLLM's proxy when installed. Every server is its own process on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from procs import HOST, REPO_ROOT, CpuPlan, Server, free_port, uvicorn_argv

PROVIDER = "up"
MODEL = "m"
CHAT_BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
DIRECT_BODY = json.dumps(
    {"client_id": "bench", "provider": PROVIDER, "model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
)
# model names the OpenAI-compatible endpoint may accept for our one model (SPEC: a concrete model name)
_CHAT_MODEL_CANDIDATES = (MODEL, f"{PROVIDER}/{MODEL}")
LITELLM_VENV_BIN = Path(__file__).resolve().parent / ".litellm-venv" / "bin" / "litellm"


@dataclass(frozen=True, slots=True)
class Target:
    label: str
    role: str  # "direct" | "ref_aiohttp" | "ref_httpx" | "bkvy" | "bkvy_log" | "litellm"
    url: str
    body: str
    server: Server | None
    path: str  # "/v1/chat/completions" | "/llm/direct"

    @property
    def is_bkvy(self) -> bool:
        return self.role in ("bkvy", "bkvy_log")


@dataclass(slots=True)
class BenchFleet:
    cpus: CpuPlan
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bkvy-bench-")))
    servers: dict[str, Server] = field(default_factory=dict)
    chat_model: str | None = None  # what bkvy's /v1/chat/completions accepted, None = not available

    def _server(self, name: str, argv: list[str], port: int, env: dict[str, str], cpus) -> Server:
        server = Server(name, argv, port, env, cpus, self.work_dir / f"{name}.log")
        self.servers[name] = server
        server.start(timeout_seconds=120.0 if name == "litellm" else 60.0)
        return server

    def start(self, with_litellm: bool) -> None:
        port = free_port()
        upstream = self._server(
            "upstream",
            [sys.executable, "benchmarks/fast_upstream.py", "--port", str(port)],
            port,
            {},
            self.cpus.upstream,
        )
        forward_env = {"BENCH_UPSTREAM_URL": upstream.base_url, "PYTHONPATH": str(REPO_ROOT)}
        for role in ("aiohttp", "httpx"):
            port = free_port()
            self._server(
                f"ref_{role}",
                uvicorn_argv(f"benchmarks.reference_forwarders:{role}_app", port),
                port,
                forward_env,
                self.cpus.gateway,
            )
        config_dir = write_bkvy_config(self.work_dir, upstream.base_url)
        for name, is_logging in (("bkvy", False), ("bkvy_log", True)):
            log_dir = self.work_dir / f"{name}-logs"
            log_dir.mkdir()
            env = {
                "BKVY_CONFIG_DIR": str(config_dir),
                "LOG_DIR": str(log_dir),
                "TRANSACTION_LOGGING": "true" if is_logging else "false",
                "BKVY_LOG_LEVEL": "warning",
            }
            port = free_port()
            self._server(
                name, [sys.executable, "main.py", "--host", HOST, "--port", str(port)], port, env, self.cpus.gateway
            )
        litellm_bin = litellm_binary()
        if with_litellm and litellm_bin:
            port = free_port()
            self._server(
                "litellm",
                [
                    litellm_bin,
                    "--config",
                    str(self._write_litellm_config(upstream.base_url)),
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                    "--num_workers",
                    "1",
                ],
                port,
                {"LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"},
                self.cpus.gateway,
            )
        self.chat_model = self._probe_chat_model()

    def stop(self) -> None:
        for server in reversed(list(self.servers.values())):
            server.stop()

    def _write_litellm_config(self, upstream_url: str) -> Path:
        path = self.work_dir / "litellm.yaml"
        path.write_text(
            f"model_list:\n  - model_name: {MODEL}\n    litellm_params:\n      model: openai/{MODEL}\n"
            f"      api_base: {upstream_url}/v1\n      api_key: sk-bench\n"
            "litellm_settings:\n  set_verbose: false\n  telemetry: false\n"
        )
        return path

    def _probe_chat_model(self) -> str | None:
        url = self.servers["bkvy"].base_url + "/v1/chat/completions"
        for model in _CHAT_MODEL_CANDIDATES:
            body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
            request = urllib.request.Request(url, body, {"content-type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    if response.status == 200 and json.loads(response.read()).get("choices"):
                        return model
            except (urllib.error.URLError, ValueError, OSError):
                continue
        return None

    def targets(self) -> list[Target]:
        up = self.servers["upstream"].base_url
        chat = "/v1/chat/completions"
        found = [Target("direct (upstream)", "direct", up + chat, CHAT_BODY, None, chat)]
        for role, label in (("ref_aiohttp", "ref aiohttp"), ("ref_httpx", "ref httpx")):
            found.append(Target(label, role, self.servers[role].base_url + chat, CHAT_BODY, self.servers[role], chat))
        for role, suffix in (("bkvy", "log off"), ("bkvy_log", "log on")):
            server = self.servers[role]
            if self.chat_model is not None:
                body = json.dumps({"model": self.chat_model, "messages": [{"role": "user", "content": "hi"}]})
                found.append(Target(f"bkvy {chat} ({suffix})", role, server.base_url + chat, body, server, chat))
            found.append(
                Target(
                    f"bkvy /llm/direct ({suffix})",
                    role,
                    server.base_url + "/llm/direct",
                    DIRECT_BODY,
                    server,
                    "/llm/direct",
                )
            )
        if "litellm" in self.servers:
            server = self.servers["litellm"]
            found.append(Target("LiteLLM proxy", "litellm", server.base_url + chat, CHAT_BODY, server, chat))
        return found

    def set_upstream_delay(self, delay_ms: float) -> None:
        url = self.servers["upstream"].base_url + "/_bench/delay"
        request = urllib.request.Request(
            url, json.dumps({"delay_ms": delay_ms}).encode(), {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()


def write_bkvy_config(work_dir: Path, upstream_url: str, keys: dict[str, dict[str, object]] | None = None) -> Path:
    """bkvy's config for the benchmarks: one ``openai`` provider at the upstream, one model, and ``keys``
    (default: one key without rate_limits, unlimited)."""
    config_dir = work_dir / "config"
    config_dir.mkdir()
    providers = {
        PROVIDER: {
            "type": "openai",
            "base_url": upstream_url,
            "keys": keys or {"bench_key": {"api_key": "sk-bench"}},
            "models": {
                MODEL: {
                    "intelligence_tier": "low",
                    "input_cost_per_1k": 0.0001,
                    "output_cost_per_1k": 0.0002,
                    "expected_latency_ms": 100,
                }
            },
        }
    }
    (config_dir / "providers.json").write_text(json.dumps(providers, indent=2))
    (config_dir / "routing.json").write_text(json.dumps({"scenarios": {}}))
    return config_dir


def litellm_binary() -> str | None:
    explicit = os.environ.get("LITELLM_BIN")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return str(LITELLM_VENV_BIN) if LITELLM_VENV_BIN.exists() else None
