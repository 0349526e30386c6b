"""Addresses: e-mail (found from each "@", so text without one costs a single scan) and IP addresses (IPv4 with
valid octets; IPv6 candidates validated by ``ipaddress``)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from bkvy.core.policy.findings import Finding
from bkvy.models.policy import PiiKind

_LOCAL_PART_MAX = 64  # RFC 5321
# Unicode letters and digits in both parts (RFC 6531: "jürgen@bücher.de"); labels, then a 2-24 letter TLD.
# Of RFC 5322's local-part characters only those addresses use in practice: "to=ana@…" or "'ana@…'" must not
# take the "to=" or the quote with them (a redaction would eat the quote of a string).
_EMAIL_LOCAL = re.compile(r"\w[\w.%+\-]{0,63}\Z")
# "git@github.com:org/repo" (an scp-like URL, not an address) is left alone.
_EMAIL_DOMAIN = re.compile(r"(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w\-]|:[^\s])")

_IPV4 = re.compile(r"(?<![\w.\-])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![\w\-]|\.[0-9])")
_VERSION_WORD = re.compile(r"(?i)(?:version|ver\.?|release)\s*\Z")
# An IPv6 address holds two colons with at most four hex digits between them; the candidate around such a hint
# is then validated by ipaddress.
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_IPV6_MAX_CHARS = 45  # eight groups with an embedded IPv4 tail


def find_emails(text: str) -> Iterator[Finding]:
    at = text.find("@")
    while at != -1:
        local = _EMAIL_LOCAL.search(text, max(0, at - _LOCAL_PART_MAX), at)
        domain = _EMAIL_DOMAIN.match(text, at + 1) if local else None
        if local and domain:
            yield Finding(PiiKind.EMAIL, local.start(), domain.end())
            at = text.find("@", domain.end())
        else:
            at = text.find("@", at + 1)


def find_ipv4_in(text: str, start: int, end: int) -> Iterator[Finding]:
    """IPv4 addresses in the numeric run ``text[start:end]`` (pii_numbers.numeric_runs)."""
    if text.count(".", start, end) < 3:
        return
    for match in _IPV4.finditer(text, start, min(len(text), end + 2)):
        if _is_ipv4(match.group()) and not _VERSION_WORD.search(text, max(0, match.start() - 12), match.start()):
            yield Finding(PiiKind.IP, match.start(), match.end())


def find_ipv6(text: str) -> Iterator[Finding]:
    if "::" in text or text.count(":") >= 7:
        yield from _find_ipv6(text)


def _is_ipv4(candidate: str) -> bool:
    octets = candidate.split(".")
    return all(int(octet) <= 255 and (octet == "0" or not octet.startswith("0")) for octet in octets)


def _find_ipv6(text: str) -> Iterator[Finding]:
    hint = _IPV6_HINT.search(text)
    while hint:
        start, end = hint.start(), hint.end()
        if end < len(text) and text[end].isalpha() and text[end] not in _IPV6_CHARS:
            hint = _IPV6_HINT.search(text, end)  # "std::vector": glued to a word, no address (saves ~2/3)
            continue
        while start > 0 and text[start - 1] in _IPV6_CHARS:
            start -= 1
        while end < len(text) and text[end] in _IPV6_CHARS:
            end += 1
        start, end = _trimmed(text, start, end)
        if end - start <= _IPV6_MAX_CHARS and _is_ipv6(text[start:end]) and not _touches_word(text, start, end):
            yield Finding(PiiKind.IP, start, end)
        hint = _IPV6_HINT.search(text, max(end, hint.end()))


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """Without a sentence's final dot or a lone colon used as punctuation ("addr:fe80::1", "fe80::1: ...")."""
    while end > start and (text[end - 1] == "." or (text[end - 1] == ":" and text[end - 2 : end] != "::")):
        end -= 1
    if text[start] == ":" and text[start : start + 2] != "::":
        start += 1
    return start, end


def _is_ipv6(candidate: str) -> bool:
    if not any(char.isdigit() for char in candidate):
        return False  # "a::b", "Foo::Bar": real addresses hold a decimal digit ("fe80::1", "2001:db8::", "::1")
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def _touches_word(text: str, start: int, end: int) -> bool:
    """A candidate glued to a word ("std::vector", "Foo::Bar") is code, not an address."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    return before.isalnum() or before == "_" or after.isalnum() or after == "_"
