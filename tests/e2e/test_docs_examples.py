"""Every curl command in README.md and docs/EXAMPLES.md works as written against `python main.py --demo`."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "docs" / "EXAMPLES.md"]
DEMO_PORT_IN_DOCS = "10006"


def _curl_commands(path: Path) -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S):
        joined = block.replace("\\\n", " ")
        commands += [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]
    return commands


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def demo_port() -> Iterator[int]:
    port = _free_port()
    env = {**os.environ, "BKVY_CONFIG_DIR": "/nonexistent"}
    process = subprocess.Popen([sys.executable, "main.py", "--demo", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"demo exited: {process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)   # waiting for a real subprocess to bind; no clock to inject here
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_documented_curl_succeeds_against_the_demo(doc: Path, demo_port: int) -> None:
    commands = _curl_commands(doc)
    assert len(commands) >= 5, f"expected curl examples in {doc.name}"
    for command in commands:
        argv = shlex.split(command.replace(f":{DEMO_PORT_IN_DOCS}", f":{demo_port}"))
        completed = subprocess.run([*argv, "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=30)
        body, _, status = completed.stdout.rpartition("\n")
        reply = json.loads(body)
        expects_error = "nope" in command or "genius" in command
        if expects_error:
            assert status in {"404", "422"} and reply["success"] is False, command
        else:
            assert status == "200", f"{command}\n-> {status} {body[:500]}"
            assert reply.get("success", True) is not False, command
