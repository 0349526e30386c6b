"""docs/POLICY.md "## Tenants": the worked example runs as written against `python main.py --demo`, and each
``print`` shows what its comment says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.live_demo import ROOT, start_demo, stop_demo

DEMO_PORT_IN_DOCS = "10006"


def _tenants_example() -> str:
    text = (ROOT / "docs" / "POLICY.md").read_text(encoding="utf-8")
    section = text.split("\n## Tenants\n", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return block


def test_the_tenants_example_prints_what_it_says(tmp_path: Path) -> None:
    example = _tenants_example()
    expected = [line.rsplit("# ", 1)[1].strip() for line in example.splitlines() if line.startswith("print(")]
    process, port = start_demo({"BKVY_ADMIN_API_KEY": "change-me"}, tmp_path)
    try:
        script = example.replace(f":{DEMO_PORT_IN_DOCS}", f":{port}")
        completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    finally:
        stop_demo(process)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.splitlines() == expected
    assert process.stderr is not None
    log = process.stderr.read().decode()
    assert log.count("tenant_budget_alert") == 1, log[-3000:]
