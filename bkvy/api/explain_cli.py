"""``python main.py explain (--level LEVEL|auto | --scenario NAME | --file REQUEST.json) [--json] [PROMPT]``.

The plan ``POST /llm/explain`` would answer, computed offline from the config the gateway would load
(``BKVY_CONFIG_DIR``, or the demo's with ``--demo``) and the state it would start with: the circuits and learned
latency persisted in LOG_DIR (``LOG_DIR/demo`` with ``--demo``), the bandit's posteriors of adaptive routes
(LOG_DIR/bandit_states.json, drawn with a fixed seed so the same state explains the same plan), fresh rate-limit
windows. Nothing is sent.
Exit 0 with the chosen model printed; 2 for bad arguments or a bad request file; 1 for a config error (main).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

from bkvy.api.adaptive_state import BANDIT_STATE_FILE, adaptive_routing
from bkvy.api.explain import explanation_json, llm_explain_request
from bkvy.api.services import _circuits, _configured_limiter, _latency
from bkvy.clock import MonotonicClock
from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.settings import Settings
from bkvy.core.execution.executor import Executor
from bkvy.core.upstream.transport import AiohttpTransport
from bkvy.models.errors import BkvyError

_CLIENT_ID = "explain-cli"
_LEVELS = ("low", "medium", "high", "auto")
DRAW_SEED = 0  # an adaptive route's draws: reproducible, run after run, for the same persisted posteriors


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own exit 2, with our prefix
        self.print_usage(sys.stderr)
        self.exit(2, f"bkvy explain: {message}\n")


def parse_explain_args(argv: list[str]) -> argparse.Namespace:
    """Exits 2 with a message for bad arguments."""
    parser = _Parser(prog="python main.py explain", description="the plan a request would get; nothing is sent")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--level", choices=_LEVELS, help="as /llm/intelligence's intelligence_level")
    kind.add_argument("--scenario", help="as /llm/scenario's scenario")
    kind.add_argument("--file", type=Path, help="a JSON body of /llm/intelligence, /llm/scenario or /llm/direct")
    parser.add_argument("--json", action="store_true", help="print the JSON POST /llm/explain answers")
    parser.add_argument("--demo", action="store_true", help="the config and state of python main.py --demo")
    parser.add_argument("--max-wait", type=float, dest="max_wait_seconds", help="max_wait_seconds of the request")
    parser.add_argument("prompt", nargs="?", help="the user message (with --level or --scenario)")
    args = parser.parse_args(argv)
    if args.file is not None and args.prompt is not None:
        parser.error("PROMPT goes with --level or --scenario; --file carries its own messages")
    return args


def request_body(args: argparse.Namespace) -> bytes:
    """The body the endpoint would get. Exits 2 when ``--file`` cannot be read."""
    if args.file is not None:
        try:
            return args.file.read_bytes()
        except OSError as error:
            print(f"bkvy explain: cannot read {args.file}: {error.strerror}", file=sys.stderr)
            raise SystemExit(2) from None
    body: dict[str, Any] = {"client_id": _CLIENT_ID, "messages": [{"role": "user", "content": args.prompt or "hi"}]}
    if args.level is not None:
        body["intelligence_level"] = args.level
    else:
        body["scenario"] = args.scenario
    if args.max_wait_seconds is not None:
        body["max_wait_seconds"] = args.max_wait_seconds
    return json.dumps(body).encode()


def run_explain(args: argparse.Namespace, settings: Settings, config: GatewayConfig) -> int:
    """Print the plan (a table, or ``--json``); 0 (the chosen model printed), 2 for a request it refuses."""
    clock = MonotonicClock()
    state_settings = settings.model_copy(update={"redis_url": None})  # the embedded files, as a lone gateway
    _, guard, _ = _circuits(state_settings, clock, None)
    latency, _ = _latency(state_settings, clock)
    adaptive, _ = adaptive_routing(state_settings, config, clock, random.Random(DRAW_SEED))  # no update: no save
    executor = Executor(  # never started: its transport opens no connection, and nothing is sent
        config=config,
        clock=clock,
        transport=AiohttpTransport(),
        limiter=_configured_limiter(config, clock),
        latency=latency,
        breaker=guard,
        adaptive=adaptive,
    )
    try:
        request, classification = llm_explain_request(request_body(args), "explain-cli", config)
        reply = explanation_json(executor.explain(request), classification)
    except BkvyError as error:
        print(f"bkvy explain: {error.code}: {error.message}", file=sys.stderr)
        return 2
    print(json.dumps(reply, indent=2) if args.json else render_table(reply))
    return 0


def render_table(reply: dict[str, Any]) -> str:
    """The explain JSON as a table: candidate, position, cost, estimate, excluded_by, reasons; then the choice."""
    header = f"{'candidate':<52} {'#':>3} {'score':>6} {'cost $':>10} {'est s':>6}  excluded_by"
    lines = [header, "-" * (len(header) + 4)]
    for row in reply["candidates"]:
        name = f"{row['provider']}/{row['model']} [{row['key_id']}]"
        score = f"{row['score']:.3f}" if "score" in row else "-"
        lines.append(
            f"{name:<52} {row['position'] or '-':>3} {score:>6} {row['estimated_cost_usd']:>10.6f} "
            f"{row['estimate_seconds']:>6.2f}  {row.get('excluded_by', '')}".rstrip()
        )
        lines.append("    " + "; ".join(row["reasons"]))
    if "classification" in reply:
        lines.append(f"classification: {json.dumps(reply['classification'])}")
    lines.append(f"decision: {reply['decision_reason']}")
    if str(reply["decision_reason"]).startswith("adaptive"):
        lines.append(
            f"adaptive: one draw per arm from the posteriors in {BANDIT_STATE_FILE}, seeded ({DRAW_SEED}): "
            "the same state gives the same plan here; the gateway's draws vary request to request"
        )
    chosen = reply["chosen"]
    lines.append(
        "chosen: none (no candidate would be tried)"
        if chosen is None
        else f"chosen: {chosen['provider']}/{chosen['model']} (key {chosen['key_id']})"
    )
    return "\n".join(lines)
