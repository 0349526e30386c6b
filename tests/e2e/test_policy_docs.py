"""Every curl command in docs/POLICY.md works as written against the demo (with TRUSTED_PROXIES=127.0.0.1, as
the page says); a ``# expect NNN`` line before a command gives its status (else 200)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.live_demo import ROOT, start_demo, stop_demo

DOC = ROOT / "docs" / "POLICY.md"


def _commands() -> list[tuple[str, str]]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S):
        expected = "200"
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("# expect "):
                expected = line.removeprefix("# expect ")
            elif line.startswith("curl "):
                commands.append((line, expected))
                expected = "200"
    return commands


@pytest.fixture(scope="module")
def demo_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    process, port = start_demo({"TRUSTED_PROXIES": "127.0.0.1"}, tmp_path_factory.mktemp("bkvy-policy-docs"))
    try:
        yield port
    finally:
        stop_demo(process)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_every_policy_example_gives_its_status(demo_port: int) -> None:
    commands = _commands()
    assert len(commands) >= 8
    for command, expected in commands:
        argv = [arg for arg in shlex.split(command.replace(":10006", f":{demo_port}")) if arg != "-i"]
        completed = subprocess.run([*argv, "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=30)
        body, _, status = completed.stdout.rpartition("\n")
        assert status == expected, f"{command}\n-> {status} {body[:500]}"
        assert "jane@example.org" not in body
        json.loads(body)


def test_the_doc_exists() -> None:
    assert Path(DOC).exists()
