"""Realistic mixed prompt text for the detector's benchmarks: prose, code, JSON, logs and their look-alikes
(dates, versions, order numbers, UUIDs, git SHAs, times), with or without real findings. Deterministic."""

from __future__ import annotations

import random

_PROSE = [
    "Please summarise the following incident report for the on-call channel and keep it under 200 words.",
    "The customer asked why order 20231105-4471 shipped late; the warehouse moved on 2024-03-18 at 09:30.",
    "Version 3.12.1 of the service fixed the retry loop; see ticket OPS-4521 and commit 9f2c1e7a4b.",
    "Our quarterly revenue grew 14.5% to 2,340,000 USD while churn fell from 3.1% to 2.4% (Q3 2024).",
    "Translate the paragraph into French and keep product names like Model X-200 and SKU 4471-220 as is.",
    "The build uses python 3.11.7, node 20.11.0 and runs on ubuntu 22.04 with 16 GB of memory.",
    "Rate limits: 500 requests per minute, 150000 tokens per minute; the batch API takes 24 hours.",
    "Meeting moved to 14:30 on 12/05/2024 in room B-204; bring the Q4 forecast and the hiring plan.",
    "Explain the difference between TCP and UDP to a new engineer, with two examples each.",
    "Request id 5b0f7c1e-8d2a-4c3b-9e6f-1a2b3c4d5e6f failed with status 503 after 2.5 seconds.",
]
_CODE = [
    "def retry(attempts: int = 3, backoff_seconds: float = 0.5) -> None:\n    for i in range(attempts):\n",
    '    config = {"timeout": 30, "max_tokens": 1024, "temperature": 0.2, "model": "gpt-4o-mini"}\n',
    "    if response.status_code == 429:\n        time.sleep(float(response.headers['Retry-After']))\n",
    "    logger.info('processed %d rows in %.2f s', count, elapsed)  # see docs/ops.md:42\n",
    "std::vector<int> values{1, 2, 3}; auto it = std::find(values.begin(), values.end(), 2);\n",
    "SELECT id, created_at FROM orders WHERE total > 100.50 AND created_at > '2024-01-01' LIMIT 50;\n",
    "2024-11-02T10:15:30.123Z INFO worker-7 job=ingest batch=88 rows=10240 duration_ms=1532\n",
    '{"sha": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3", "isbn": "978-3-16-148410-0", "ok": true}\n',
]
FINDINGS = [
    "Contact me at maria.lopez@example.com or +44 20 7946 0958.",
    "Card on file: 4111 1111 1111 1111, expiry 09/27.",
    "Wire it to DE89 3704 0044 0532 0130 00 today.",
    "His SSN is 123-45-6789, please verify.",
    "The DB host is 10.20.30.40 and the API key is sk-proj-EXAMPLEfake0000notReal1111forBench22.",
    'api_key = "a8f5f167f44f4964e6c998dee827110c"',
]


def prompt(size_bytes: int, *, with_findings: bool, seed: int = 19) -> str:
    """About ``size_bytes`` of mixed text; with findings, one of FINDINGS every ~2 KB (at least one)."""
    rng = random.Random(seed)
    pieces: list[str] = []
    length = 0
    next_finding = 0 if with_findings else size_bytes + 1
    while length < size_bytes:
        if length >= next_finding:
            piece = rng.choice(FINDINGS) + " "
            next_finding += 2048
        else:
            piece = rng.choice(_PROSE) + " " if rng.random() < 0.6 else rng.choice(_CODE)
        pieces.append(piece)
        length += len(piece)
    return "".join(pieces)[:size_bytes]
