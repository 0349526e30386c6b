"""Number-shaped personal data: payment cards (Luhn and IIN), IBANs (length per country, mod 97), US SSNs
(invalid ranges excluded) and phone numbers (E.164 and the common national layouts).

Each finder is a compiled regular expression for candidates plus a validation step on each candidate; digits
are ASCII only (``[0-9]``, not ``\\d``, which takes every script's digits).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from bkvy.core.policy.findings import Finding
from bkvy.models.policy import PiiKind

# 13-19 digits, optionally grouped by single spaces or dashes; IIN first digit 2-6 (see _has_known_iin).
_CARD = re.compile(r"(?<![\w.\-/+])[2-6][0-9]{3}(?:[ \-]?[0-9]){9,15}(?![\w\-/]|[.,][0-9])")
# Grouped layouts printed on cards: 4-4-4-4(-1..3), Amex 4-6-5, Diners 4-6-4.
_CARD_GROUPS = frozenset({(4, 4, 4, 4), (4, 4, 4, 4, 1), (4, 4, 4, 4, 2), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4)})

_IBAN_PREFIX = re.compile(r"[A-Z][A-Z][0-9][0-9]")
_IBAN = re.compile(r"(?<![\w\-])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![\w\-])")
# ISO 13616 registry: IBAN length per country.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

# AAA-GG-SSSS (dashes or spaces, the same twice); area 000, 666 and 9xx, group 00 and serial 0000 are never issued.
_SSN = re.compile(r"(?<![\w\-])(?!000|666|9)[0-9]{3}([\- ])(?!00)[0-9]{2}\1(?!0000)[0-9]{4}(?![\w\-]|[.,][0-9])")

# E.164 as people write it: "+", a country code, then groups separated by one space, dot or dash, and a "(0)"
# or "(area)" group; 8-16 digits in all. Possessive digit runs: no backtracking over ways to split a run.
_PHONE_INTERNATIONAL = re.compile(
    r"(?<![\w+])\+[1-9][0-9]{0,3}+(?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9]++)){1,6}+(?![\w]|[.,\-][0-9])"
)
# National layouts need separators and a recognisable start, so dates, versions, order and product numbers
# don't pass: NANP (optional 1, area code 2-9: 3-3-4) or a trunk "0" prefix (020 7946 0958,
# 01 23 45 67 89) with 9-11 digits; the separators after the first group are all the same character.
_PHONE_NANP = re.compile(
    r"(?<![\w+\-.#/])(?:1[ .\-])?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}([ .\-]))[0-9]{3}([ .\-])[0-9]{4}"
    r"(?![\w\-/]|[.,][0-9])"
)
_PHONE_TRUNK = re.compile(
    r"(?<![\w+\-.#/])(?:\(0[1-9][0-9]{0,3}\) ?|0[1-9][0-9]{0,3}([ .\-]))[0-9]{2,4}(?:[ .\-][0-9]{2,4}){1,3}"
    r"(?![\w\-/]|[.,][0-9])"
)
_NUMERIC_RUN = re.compile(r"[0-9][0-9 ()./\-]{5,}[0-9]")
_SEPARATORS = re.compile(r"[ .\-]")
_NOT_DIGIT = re.compile(r"[^0-9]")


def numeric_runs(text: str) -> Iterator[tuple[int, int]]:
    """Spans of 7+ characters of digits and the separators numbers are written with, starting and ending with a
    digit: every card, SSN, phone and IPv4 candidate lies in one. One scan with a charset prefix is ~5x cheaper
    than the kinds' own patterns over the whole text (benchmarks/pii_detector.py), which then run on runs only."""
    return (match.span() for match in _NUMERIC_RUN.finditer(text))


def find_numbers_in(text: str, start: int, end: int) -> Iterator[Finding]:
    """Cards, SSNs and phones in the numeric run ``text[start:end]``."""
    digits = end - start - len(_NOT_DIGIT.findall(text, start, end))
    if digits < 8 or _is_iban_shaped(text, start):
        return
    if start and text[start - 1] in "+(":
        start -= 1  # "+44 …", "(555) …": the run itself starts at the first digit
    end = min(len(text), end + 2)  # lookaheads see what follows the run
    if digits >= 13:
        yield from _spans(PiiKind.CARD, _CARD, text, start, end, _is_card)
    if digits >= 9:
        yield from _spans(PiiKind.SSN, _SSN, text, start, end, None)
    if text[start] == "+":  # '+' is no run character: it can only lead one
        yield from _spans(PiiKind.PHONE, _PHONE_INTERNATIONAL, text, start, end, _has_e164_length)
    if digits >= 10:
        yield from _spans(PiiKind.PHONE, _PHONE_NANP, text, start, end, _has_nanp_separators)
    if digits >= 9 and "0" in text[start:end]:
        yield from _spans(PiiKind.PHONE, _PHONE_TRUNK, text, start, end, _is_trunk_phone)


def find_ibans_at(text: str, start: int, end: int) -> Iterator[Finding]:
    """IBANs whose account digits include the numeric run ``text[start:end]``: every country's BBAN holds 7+
    digits in a row, so the run finds the IBAN and its country code and check digits lie just before it
    ("DE89 3704 …", "GB82 WEST 1234 …", "NL91ABNA0417…"). A scan of the whole text for "[A-Z][A-Z][0-9][0-9]"
    cost as much as the numeric runs themselves (~40 µs per 10 KB); this looks at 16 characters per run."""
    del end  # an IBAN may go on past the run (letters in the BBAN); its pattern finds its end
    before = text[start - 2 : start]
    if not before or not ("A" <= before[-1] <= "Z" or (before[-1] == " " and "A" <= before[0] <= "Z")):
        return  # the run follows no capital (or "WEST "-like group): no IBAN; most runs stop here
    for prefix in _IBAN_PREFIX.finditer(text, max(0, start - 16), start + 2):
        match = _IBAN.match(text, prefix.start())
        if match and match.end() > start and _is_iban(match.group().replace(" ", "")):
            yield Finding(PiiKind.IBAN, match.start(), match.end())


def _spans(
    kind: PiiKind,
    pattern: re.Pattern[str],
    text: str,
    start: int,
    end: int,
    is_valid: Callable[[re.Match[str]], bool] | None,
) -> Iterator[Finding]:
    for match in pattern.finditer(text, start, end):
        if is_valid is None or is_valid(match):
            yield Finding(kind, match.start(), match.end())


def _is_iban_shaped(text: str, start: int) -> bool:
    """A run glued to two capitals ("DE89 3704 …") is an IBAN's check digits and account, valid or not: its
    groups are no card or phone even when a Luhn or layout check happens to pass."""
    return start >= 2 and "A" <= text[start - 1] <= "Z" and "A" <= text[start - 2] <= "Z"


def _has_e164_length(match: re.Match[str]) -> bool:
    return 8 <= len(_NOT_DIGIT.sub("", match.group())) <= 16


def _has_nanp_separators(match: re.Match[str]) -> bool:
    return match.group(1) is None or match.group(1) == match.group(2)


def _is_trunk_phone(match: re.Match[str]) -> bool:
    candidate = match.group()
    after_first = candidate[candidate.index(")") + 1 :] if candidate.startswith("(") else candidate
    separators = set(_SEPARATORS.findall(after_first.strip()))
    return len(separators) == 1 and 9 <= len(_NOT_DIGIT.sub("", candidate)) <= 11


def _is_card(match: re.Match[str]) -> bool:
    candidate = match.group()
    separators = set(_NOT_DIGIT.findall(candidate))
    if len(separators) > 1:
        return False
    digits = _NOT_DIGIT.sub("", candidate)
    if not 13 <= len(digits) <= 19:
        return False
    if separators:
        groups = tuple(len(group) for group in candidate.split(separators.pop()))
        if groups not in _CARD_GROUPS:
            return False
    return _has_known_iin(digits) and _passes_luhn(digits)


def _has_known_iin(digits: str) -> bool:
    """Visa 4; Mastercard 51-55, 2221-2720; Amex 34, 37; Discover 6011, 644-649, 65; UnionPay 62; JCB 3528-3589;
    Diners 300-305, 36, 38-39; Maestro 50, 56-58, 63, 67."""
    first_two, first_four = int(digits[:2]), int(digits[:4])
    if digits[0] == "4" or 51 <= first_two <= 55 or 2221 <= first_four <= 2720:
        return True
    if first_two in (34, 37, 36, 38, 39, 50, 56, 57, 58, 62, 63, 65, 67):
        return True
    return 3528 <= first_four <= 3589 or 3000 <= first_four <= 3059 or first_four == 6011 or 6440 <= first_four <= 6499


def _passes_luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _is_iban(compact: str) -> bool:
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)  # A=10 ... Z=35 (ISO 7064 mod 97-10)
    return int(number) % 97 == 1
