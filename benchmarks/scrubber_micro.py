"""What the secret choke point costs per reply and per record (issue 16). Run by hand:

    python benchmarks/scrubber_micro.py

Prints µs per call (best of 5 rounds of timeit): the search of a 3 KB JSON reply for 10 secrets three ways
(a loop of ``in``, one compiled alternation, ``Scrubber``'s gated search), ``ScrubbedSend`` around a reply's two
ASGI messages against a bare ``send``, a record's check (``Records._without_secrets``) and a CSV row's render.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import string
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bkvy.api.scrub_send import ScrubbedSend
from bkvy.utils.recorder import Records
from bkvy.utils.records import TransactionRecord
from bkvy.utils.scrubber import Scrubber
from bkvy.utils.transaction_log import RowRenderer

ROUNDS = 5


def _best_us(call: object, number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=ROUNDS)) / number * 1e6  # type: ignore[arg-type]


def _secrets(rng: random.Random) -> list[str]:
    alphabet = string.ascii_letters + string.digits
    prefixes = ["sk-", "sk-ant-api03-", "AIza", "gsk_", "xai-", "sk-proj-", "hf_", "", "admin-", "monitor-"]
    return [prefix + "".join(rng.choice(alphabet) for _ in range(40)) for prefix in prefixes]


def _reply(rng: random.Random) -> bytes:
    words = [
        "the",
        "gateway",
        "answered",
        "a",
        "request",
        "about",
        "routing",
        "and",
        "latency",
        "with",
        "several",
        "candidate",
        "models",
    ]
    text = " ".join(rng.choice(words) for _ in range(600))
    completion = {
        "id": "chatcmpl-9f8a7b6c5d4e3f2a1b0c",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }
    return json.dumps(completion).encode()[:3000]


async def _send_us(scrubber: Scrubber, body: bytes, number: int) -> tuple[float, float]:
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    message = {"type": "http.response.body", "body": body}

    async def sink(_message: object) -> None:
        return None

    async def reply(send: object) -> None:
        await send(start)  # type: ignore[operator]
        await send(message)  # type: ignore[operator]

    async def bare() -> None:
        await reply(sink)

    async def scrubbed() -> None:
        await reply(ScrubbedSend(sink, scrubber))

    timings = []
    for run in (bare, scrubbed):
        best = float("inf")
        for _ in range(ROUNDS):
            started = asyncio.get_running_loop().time()
            for _ in range(number):
                await run()
            best = min(best, (asyncio.get_running_loop().time() - started) / number * 1e6)
        timings.append(best)
    return timings[0], timings[1]


def main() -> None:
    rng = random.Random(1)
    secrets = _secrets(rng)
    body = _reply(rng)
    encoded = [secret.encode() for secret in secrets]
    alternation = re.compile(b"|".join(re.escape(secret) for secret in encoded))
    scrubber = Scrubber(secrets)
    number = 50_000
    print(f"3 KB reply, {len(secrets)} secrets")
    print(f"| loop of `in`          | {_best_us(lambda: any(s in body for s in encoded), number):6.2f} µs |")
    print(f"| compiled alternation  | {_best_us(lambda: alternation.search(body), number):6.2f} µs |")
    print(f"| Scrubber.has_secret   | {_best_us(lambda: scrubber.has_secret(body), number):6.2f} µs |")
    gated = body + bytes(sorted(gate for gate, _group in scrubber._tables.byte_gates))  # the worst case
    print(f"|   every gate byte in  | {_best_us(lambda: scrubber.has_secret(gated), number):6.2f} µs |")
    bare, scrubbed = asyncio.run(_send_us(scrubber, body, number))
    print(f"| send, bare            | {bare:6.2f} µs |\n| send, ScrubbedSend    | {scrubbed:6.2f} µs |")
    records = Records(clock=None, metrics=None, scrubber=scrubber)  # type: ignore[arg-type]
    record = TransactionRecord("2026-12-01T00:00:00.000Z", "req-1", "client", "direct", "", "", "openai", "gpt")
    print(f"| record check          | {_best_us(lambda: records._without_secrets(record), number):6.2f} µs |")
    render = RowRenderer()
    print(f"| CSV row render        | {_best_us(lambda: render(record), number):6.2f} µs |")


if __name__ == "__main__":
    main()
