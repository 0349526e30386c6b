"""Secrets: vendor API-key and token shapes, private-key blocks, and high-entropy values assigned to a
secret-named field (``password = "…"``, ``"api_key": "…"``, ``token=…``, ``Bearer …``).

Shapes follow the vendors' documented prefixes as gitleaks' default rules encode them (config/gitleaks.toml),
widened where a vendor's length has changed over time. Each shape starts with its literal prefix, so clean text
costs one fast literal search per shape.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator

from bkvy.core.policy.findings import Finding
from bkvy.models.policy import PiiKind

# Each shape starts with a literal, no look-behind: sre then finds candidates with its literal-prefix search
# (~3 µs per 10 KB each, against ~25 µs for a `\b` or look-behind start); the left boundary is checked on matches.
_VENDOR_SHAPES = (
    re.compile(r"AIza[A-Za-z0-9_\-]{35}(?![\w\-])"),  # Google API key
    re.compile(r"A(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z2-7]{16}\b"),  # AWS access key id
    re.compile(r"gh[pousr]_[A-Za-z0-9]{36,251}\b"),  # GitHub personal, OAuth, user-to-server, server, refresh
    re.compile(r"github_pat_\w{82}\b"),  # GitHub fine-grained personal access token
    re.compile(r"xox[baprse]-[A-Za-z0-9\-]{10,250}"),  # Slack bot, user, app-level, refresh
    re.compile(r"sk_(?:live|test|prod)_[A-Za-z0-9]{10,247}\b"),  # Stripe secret key
    re.compile(r"rk_(?:live|test|prod)_[A-Za-z0-9]{10,247}\b"),  # Stripe restricted key
)
# Shapes whose body is an unbounded run are found run by run (each run read once, from its prefix to its end:
# a run holds no other unglued start), never by a pattern retried at every prefix inside a run, which is
# quadratic on crafted text ("sk-sk-sk-…", "eyJeyJ…").
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_\-]*")
# OpenAI sk-…, sk-proj-…, sk-svcacct-…, sk-admin-…; Anthropic sk-ant-api03-…: 20-250 characters after "sk-",
# holding a digit and a letter.
_SK_MIN, _SK_MAX = 20, 250
_HAS_DIGIT = re.compile(r"[0-9]")
_HAS_LETTER = re.compile(r"[A-Za-z]")
# JWT: base64url of '{"' starts both header and payload; the signature is absent for alg "none".
_JWT_REST = re.compile(r"\.eyJ[A-Za-z0-9_\-]{10,}+\.(?:[A-Za-z0-9_\-]++={0,2})?")
# PEM and OpenSSH private keys: BEGIN, then the first END line at most _PEM_MAX_BODY characters on; a block
# with no END line that near (cut short) runs to the end of its base64 lines only.
_PEM_BEGIN = re.compile(r"-----BEGIN[ A-Z0-9_\-]{0,100}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END[ A-Z0-9_\-]{0,100}PRIVATE KEY(?: BLOCK)?-----")
_PEM_TAIL = re.compile(r"[A-Za-z0-9+/=\s]*+")  # always matches (maybe empty)
_PEM_MAX_BODY = 16_384  # an 8192-bit RSA key in PEM is ~6.5 KB
_GLUED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

# A secret-named field, then = : := => and the value; the finding covers the value only, so "api_key: …" stays
# readable and a JSON string stays a JSON string. Found from each occurrence of a name's root in the lowered
# text (a case-insensitive alternation over the whole text cost ~0.7 ms per 10 KB; this costs ~10 µs).
# A value is read up to MAX_VALUE_CHARS characters (a longer one is found as its first MAX_VALUE_CHARS): the
# entropy of an unbounded value per name made "pass=pass=…" quadratic.
MAX_VALUE_CHARS = 512
_VALUE = r"[\"']?[ \t]*(?::=|=>|[:=])[ \t]*[\"'`]?([^\s\"'`,;]{8," + str(MAX_VALUE_CHARS) + "})"
_NAMES_BY_ROOT = {
    "pass": re.compile(r"(?:pass(?:word|wd|phrase)|(?<![a-z])pass)" + _VALUE),  # not "bypass", "compass"
    "pwd": re.compile(r"pwd" + _VALUE),
    "secret": re.compile(r"secret(?:[_\-]?key)?" + _VALUE),
    "token": re.compile(r"token" + _VALUE),
    "credential": re.compile(r"credentials?" + _VALUE),
    "key": re.compile(r"key" + _VALUE),  # only after a prefix that makes it a secret's name: _KEY_PREFIX
}
_KEY_PREFIX = re.compile(r"(?:api|access|private|secret|signing|client|encryption|master)[_\-]?\Z")
_BEARER = re.compile(r"bearer[ \t]+([A-Za-z0-9._~+/\-]{16," + str(MAX_VALUE_CHARS) + "}=*)")
MIN_ENTROPY_BITS_PER_CHAR = 3.0  # random 8+ char tokens score ≥ 3; words, repeats and "********" score less
# What an assignment's value often is without being a secret: a variable, a call, a template, a placeholder.
_NOT_A_VALUE = re.compile(
    r"^(?:[$<{%(\[]|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:[(\[]|$))"
    r"|(?i:your|example|placeholder|changeme|redacted|x{4}|\*{3})"
)


def find_secrets(text: str) -> Iterator[Finding]:
    for pattern in _VENDOR_SHAPES:
        for match in pattern.finditer(text):
            if not match.start() or text[match.start() - 1] not in _GLUED:
                yield Finding(PiiKind.SECRET, match.start(), match.end())
    yield from _find_sk_keys(text)
    yield from _find_jwts(text)
    yield from _find_private_keys(text)
    lowered = text.lower()
    if len(lowered) != len(text):
        lowered = text  # a few characters lower into two ("İ"): offsets must stay the text's; lowercase names only
    for root, pattern in _NAMES_BY_ROOT.items():
        at = lowered.find(root)
        while at != -1:
            assignment = (
                pattern.match(lowered, at)
                if root != "key" or _KEY_PREFIX.search(lowered, max(0, at - 12), at)
                else None
            )
            yield from _assigned(text, assignment)
            # A name inside a value just read is part of that value: read each value once ("pass=pass=…").
            at = lowered.find(root, assignment.end() if assignment else at + len(root))
    at = lowered.find("bearer")
    while at != -1:
        bearer = _BEARER.match(lowered, at)
        yield from _assigned(text, bearer)
        at = lowered.find("bearer", bearer.end() if bearer else at + 6)


def _always(match: re.Match[str] | None) -> re.Match[str]:
    assert match is not None  # a pattern that matches the empty string
    return match


def _run_end(text: str, at: int) -> int:
    return _always(_TOKEN_RUN.match(text, at)).end()


def _unglued(text: str, at: int) -> bool:
    return not at or text[at - 1] not in _GLUED


def _find_sk_keys(text: str) -> Iterator[Finding]:
    at = text.find("sk-")
    while at != -1:
        end = _run_end(text, at + 3)
        body_end = min(end, at + 3 + _SK_MAX)
        body = text[at + 3 : body_end]
        if _unglued(text, at) and len(body) >= _SK_MIN and _HAS_DIGIT.search(body) and _HAS_LETTER.search(body):
            yield Finding(PiiKind.SECRET, at, body_end)
        at = text.find("sk-", end)


def _find_jwts(text: str) -> Iterator[Finding]:
    at = text.find("eyJ")
    while at != -1:
        end = _run_end(text, at + 3)
        rest = _JWT_REST.match(text, end) if end - at >= 13 and _unglued(text, at) else None
        if rest:
            yield Finding(PiiKind.SECRET, at, rest.end())
        at = text.find("eyJ", rest.end() if rest else end)


def _find_private_keys(text: str) -> Iterator[Finding]:
    """Each BEGIN line, up to the first END line if that comes before the next BEGIN line and within
    _PEM_MAX_BODY; otherwise (cut short) up to the end of its base64 lines. Each BEGIN and END is found once."""
    begin = _PEM_BEGIN.search(text)
    next_end: re.Match[str] | None = None
    searched = False
    while begin:
        body = begin.end()
        if not searched or (next_end is not None and next_end.start() < body):
            next_end, searched = _PEM_END.search(text, body), True
        next_begin = _PEM_BEGIN.search(text, body)
        if (
            next_end is not None
            and next_end.start() - body <= _PEM_MAX_BODY
            and (next_begin is None or next_end.start() < next_begin.start())
        ):
            block_end = next_end.end()
        else:
            block_end = _always(_PEM_TAIL.match(text, body)).end()
        yield Finding(PiiKind.SECRET, begin.start(), block_end)
        while next_begin is not None and next_begin.start() < block_end:  # a BEGIN inside the block is part of it
            next_begin = _PEM_BEGIN.search(text, block_end)
        begin = next_begin


def _assigned(text: str, match: re.Match[str] | None) -> Iterator[Finding]:
    if match is None:
        return
    value = text[match.start(1) : match.end(1)]  # the original case: entropy and placeholders read it
    if not _NOT_A_VALUE.search(value) and shannon_entropy(value) >= MIN_ENTROPY_BITS_PER_CHAR:
        yield Finding(PiiKind.SECRET, match.start(1), match.end(1))


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value`` by its own character frequencies (0.0 for an empty string)."""
    if not value:
        return 0.0
    length = len(value)
    return -sum(count / length * math.log2(count / length) for count in Counter(value).values())
