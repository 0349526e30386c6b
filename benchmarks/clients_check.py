"""By hand, not a test: the clients people use, unchanged, against a live ``python main.py --demo``.

    python benchmarks/clients_check.py                 # every installed client
    python benchmarks/clients_check.py --only litellm  # clients whose name contains "litellm"

Starts the demo on a free loopback port (as tests/e2e/live_demo.py does), runs each client through each case
(plain, stream, tools round trip, structured output, embeddings where the client has them, a 400 naming the
parameter, a 404 model, 20 concurrent async calls) and prints a table client | version | case | result. A client
that is not installed gets one "skipped" line. openai, anthropic and langchain-* are pinned in
requirements-dev.txt; litellm, pydantic-ai (pydantic-ai-slim[openai,anthropic]) and llm are installed by hand.
The results of the last run are in docs/CLIENTS.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Offline settings the clients need (docs/CLIENTS.md): litellm reads its bundled model-cost map instead of
# fetching it at import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from clients_anthropic import (  # noqa: E402
    anthropic_checks,
    langchain_anthropic_checks,
    litellm_anthropic_checks,
    pydantic_ai_anthropic_checks,
)
from clients_openai import (  # noqa: E402
    Checks,
    langchain_openai_checks,
    litellm_openai_checks,
    llm_checks,
    openai_checks,
    pydantic_ai_openai_checks,
)

from tests.e2e.live_demo import start_demo, stop_demo  # noqa: E402

# (client shown in the table, distribution whose version is shown, builder)
CLIENTS: list[tuple[str, str, Callable[[str], Checks]]] = [
    ("openai", "openai", openai_checks),
    ("anthropic", "anthropic", anthropic_checks),
    ("langchain-openai", "langchain-openai", langchain_openai_checks),
    ("langchain-anthropic", "langchain-anthropic", langchain_anthropic_checks),
    ("litellm (openai/)", "litellm", litellm_openai_checks),
    ("litellm (anthropic/)", "litellm", litellm_anthropic_checks),
    ("pydantic-ai (OpenAIChatModel)", "pydantic-ai-slim", pydantic_ai_openai_checks),
    ("pydantic-ai (AnthropicModel)", "pydantic-ai-slim", pydantic_ai_anthropic_checks),
    ("llm", "llm", llm_checks),
]


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or "(no message)"
    return f"FAIL {type(error).__name__}: {text[:160]}"


def _run_client(client: str, distribution: str, build: Callable[[str], Checks], base_url: str) -> list[list[str]]:
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return [[client, "-", "-", f"skipped: {distribution} is not installed"]]
    try:
        checks = build(base_url)
    except ImportError as error:
        return [[client, version, "-", f"skipped: {error}"]]
    rows = []
    for case, run_case in checks:
        started = time.monotonic()
        try:
            run_case()
            result = "ok"
        except Exception as error:  # a by-hand report: any failure is a row, not a crash
            result = _one_line(error)
        rows.append([client, version, case, result])
        print(f"  {client} | {case} | {result} ({time.monotonic() - started:.1f} s)", file=sys.stderr)
    return rows


def _table(rows: list[list[str]]) -> str:
    header = ["client", "version", "case", "result"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run only the clients whose name contains this")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    process, port = start_demo({}, Path(tempfile.mkdtemp(prefix="bkvy-clients-")))
    base_url = f"http://127.0.0.1:{port}"
    rows: list[list[str]] = []
    try:
        for client, distribution, build in CLIENTS:
            if args.only is None or args.only in client:
                rows += _run_client(client, distribution, build, base_url)
    finally:
        stop_demo(process)
    print(_table(rows))
    failed = sum(1 for row in rows if row[3].startswith("FAIL"))
    print(f"\n{len(rows)} rows, {failed} failed, python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
