"""RSS of a bkvy process per stream that its client never reads (issue 16, item 6).

    python benchmarks/unread_streams.py --streams 50 --tokens 200000

Three processes on 127.0.0.1: the simulated fleet (``python -m bkvy.sim --instant``), bkvy (uvicorn, the demo
config pointed at that fleet) and this script, which opens ``--streams`` raw sockets with a small SO_RCVBUF,
sends one streamed ``POST /v1/chat/completions`` on each for a long answer and never reads. It prints bkvy's RSS
before, once it has settled, and the difference per stream. The fleet runs apart so its own write buffers do
not count. ``--stall-timeout`` sets STREAM_WRITE_TIMEOUT_SECONDS (default: large, so streams stay open).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "gpt-4o-mini"

_SERVE = """
import asyncio, sys, uvicorn
from bkvy.api.app import create_app
from bkvy.core.config.settings import load_settings
from bkvy.demo import demo_config
urls = dict(zip(("openai", "anthropic", "gemini", "ollama", "openai_compatible"), sys.argv[2:7]))
class Fleet:
    def base_url(self, wire_format): return urls[wire_format]
app = create_app(load_settings(), demo_config(Fleet()))
config = uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
asyncio.run(uvicorn.Server(config).serve())
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _settled_rss_mb(pid: int, *, seconds: float = 20.0) -> float:
    """RSS once it stops growing (three equal readings 0.5 s apart, within 0.5 MB), or after ``seconds``."""
    readings = [_rss_mb(pid)]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.5)
        readings.append(_rss_mb(pid))
        if len(readings) >= 3 and max(readings[-3:]) - min(readings[-3:]) < 0.5:
            break
    return readings[-1]


def _wait_http(url: str) -> None:
    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def _unread_stream(port: int, tokens: int) -> socket.socket:
    body = json.dumps(
        {"model": f"openai/{MODEL}", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window stays small
    sock.connect(("127.0.0.1", port))
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body)
    return sock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=200_000, help="tokens in each (never read) answer")
    parser.add_argument("--stall-timeout", type=float, default=3600.0, help="STREAM_WRITE_TIMEOUT_SECONDS")
    args = parser.parse_args()
    sim_base, port = _free_port(), _free_port()
    log_dir = tempfile.mkdtemp(prefix="bkvy-unread-")
    env = {
        **os.environ,
        "STREAM_WRITE_TIMEOUT_SECONDS": str(args.stall_timeout),
        "PYTHONPATH": str(ROOT),
        "LOG_DIR": log_dir,
    }
    sim = subprocess.Popen(
        [sys.executable, "-m", "bkvy.sim", "--instant", "--port-base", str(sim_base)], cwd=ROOT, env=env
    )
    urls = [f"http://127.0.0.1:{sim_base + i}" for i in range(5)]
    bkvy = subprocess.Popen([sys.executable, "-c", _SERVE, str(port), *urls], cwd=ROOT, env=env)
    sockets: list[socket.socket] = []
    try:
        _wait_http(f"http://127.0.0.1:{port}/health")
        knobs = json.dumps({"model": MODEL, "tokens_per_reply": args.tokens}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{urls[0]}/_sim/knobs", data=knobs), timeout=5).read()
        before = _settled_rss_mb(bkvy.pid)
        sockets = [_unread_stream(port, args.tokens) for _ in range(args.streams)]
        after = _settled_rss_mb(bkvy.pid)
        per_stream = (after - before) / args.streams
        print(f"streams={args.streams} tokens={args.tokens} rss_before={before:.1f} MB rss_after={after:.1f} MB")
        print(f"per unread stream: {per_stream * 1024:.0f} KB")
    finally:
        for sock in sockets:
            sock.close()
        for process in (bkvy, sim):
            process.terminate()
            process.wait(timeout=20)


if __name__ == "__main__":
    main()
