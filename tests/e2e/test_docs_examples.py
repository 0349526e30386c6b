"""Every curl command in README.md and docs/EXAMPLES.md works as written against `python main.py --demo`."""

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

DOCS = [ROOT / "README.md", ROOT / "docs" / "EXAMPLES.md"]
DEMO_PORT_IN_DOCS = "10006"


def _curl_commands(path: Path) -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S):
        joined = block.replace("\\\n", " ")
        commands += [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]
    return commands


@pytest.fixture(scope="module")
def demo_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    process, port = start_demo({}, tmp_path_factory.mktemp("bkvy-docs"))
    try:
        yield port
    finally:
        stop_demo(process)


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
