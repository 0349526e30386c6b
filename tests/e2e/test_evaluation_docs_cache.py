"""docs/EVALUATION.md's response cache example works as written against ``python main.py --demo`` (with the admin
key the page starts it with): a miss, a hit despite the extra spaces, the hit as a stream, then a purge."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.live_demo import ROOT, start_demo, stop_demo

DOC = ROOT / "docs" / "EVALUATION.md"


def _cache_section_commands() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Response cache") :]
    section = section[: section.find("\n## ", 1)] if "\n## " in section[1:] else section
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        commands += [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return commands


@pytest.fixture(scope="module")
def demo_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    process, port = start_demo({"BKVY_ADMIN_API_KEY": "secret"}, tmp_path_factory.mktemp("bkvy-cache-docs"))
    try:
        yield port
    finally:
        stop_demo(process)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_cache_example_misses_hits_streams_and_purges(demo_port: int) -> None:
    commands = _cache_section_commands()
    assert len(commands) == 4 and all(command.startswith("curl ") for command in commands)
    outputs = []
    for command in commands:
        argv = [arg for arg in shlex.split(command.replace(":10006", f":{demo_port}")) if arg != "-N"]
        if "-i" not in argv:
            argv.insert(1, "-i")
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        outputs.append(completed.stdout.lower())
    miss, hit, stream, purge = outputs
    assert "x-bkvy-cache: miss" in miss and '"success":true' in miss
    assert "x-bkvy-cache: hit" in hit and "x-bkvy-cache-age: 0" in hit
    assert "x-bkvy-cache: hit" in stream and "chat.completion.chunk" in stream and "data: [done]" in stream
    assert '{"purged":1,"scope":"client:docs"}' in purge
