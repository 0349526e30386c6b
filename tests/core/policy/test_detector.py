"""The detector on one text: exact redaction, offsets, overlapping candidates, huge and unicode input, and
that no text makes it raise."""

import itertools
import random

import pytest

from bkvy.core.policy.detector import Finding, find_sensitive, redact_text
from bkvy.core.policy.pii_secrets import MIN_ENTROPY_BITS_PER_CHAR, shannon_entropy
from bkvy.models.policy import PiiKind


def _found(text: str) -> list[tuple[str, str]]:
    return [(f.kind.value, text[f.start : f.end]) for f in find_sensitive(text)]


def test_redaction_replaces_each_finding_with_its_kind_and_keeps_the_rest_byte_for_byte() -> None:
    text = "Mail ana@example.org or call +44 20 7946 0958; card 4111 1111 1111 1111, ssn 123-45-6789."
    assert redact_text(text, find_sensitive(text)) == (
        "Mail [REDACTED:email] or call [REDACTED:phone]; card [REDACTED:card], ssn [REDACTED:ssn]."
    )


def test_offsets_point_at_the_value_in_the_original_text() -> None:
    text = "ip 10.0.0.1, iban DE89 3704 0044 0532 0130 00"
    assert find_sensitive(text) == [Finding(PiiKind.IP, 3, 11), Finding(PiiKind.IBAN, 18, 45)]


def test_an_assignment_redacts_the_value_and_keeps_the_name() -> None:
    text = 'config: {"api_key": "a8f5f167f44f4964e6c998dee827110c", "region": "eu"}'
    assert redact_text(text, find_sensitive(text)) == 'config: {"api_key": "[REDACTED:secret]", "region": "eu"}'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+4915112345678", [("phone", "+4915112345678")]),  # 13 Luhn-valid digits starting 4: not a card after "+"
        ("4111 1111 1111 1111", [("card", "4111 1111 1111 1111")]),  # a card, not the phone its first groups make
        ("192.168.100.200", [("ip", "192.168.100.200")]),  # an address, not a dotted phone number
        ("::ffff:192.0.2.128", [("ip", "::ffff:192.0.2.128")]),  # the longer IPv6 holds the IPv4
        ("token=sk-proj-Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF", [("secret", "sk-proj-Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF")]),
        ("DE89 3704 0044 0532 0130 01", []),  # a wrong IBAN checksum: its account digits are no card or phone
    ],
)
def test_overlapping_candidates_settle_on_the_most_specific_kind(text: str, expected: list) -> None:
    assert _found(text) == expected


def test_findings_are_in_text_order_and_never_overlap() -> None:
    rng = random.Random(19)
    pieces = ["ana@example.org", "4111111111111111", "10.0.0.1", "+1 (415) 555-2671", "123-45-6789", "x", " ", "-"]
    for _ in range(200):
        text = "".join(rng.choice(pieces) for _ in range(12))
        findings = find_sensitive(text)
        assert all(a.end <= b.start for a, b in itertools.pairwise(findings))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Grüße an jürgen.müller@bücher.de", [("email", "jürgen.müller@bücher.de")]),
        ("电话 +86 10 1234 5678 谢谢", [("phone", "+86 10 1234 5678")]),
        ("١٢٣-٤٥-٦٧٨٩ and ٤١١١١١١١١١١١١١١١", []),  # non-ASCII digits are not numbers we validate
        ("İİİİ password=Zx9kL2mQ7pR4 İ", [("secret", "Zx9kL2mQ7pR4")]),  # lower() grows "İ": offsets still right
        ("emoji 🙂 ana@example.org 🙂", [("email", "ana@example.org")]),
    ],
)
def test_unicode_text_keeps_offsets_right(text: str, expected: list) -> None:
    assert _found(text) == expected


def test_a_huge_input_is_scanned_whole() -> None:
    filler = "The quick brown fox 2024-03-18 v3.12.1 std::map order 20231105-4471. " * 15_000  # ~1 MB
    text = filler + "ana@example.org " + filler + "4111 1111 1111 1111"
    assert _found(text) == [("email", "ana@example.org"), ("card", "4111 1111 1111 1111")]


def test_a_pathological_run_does_not_backtrack_forever() -> None:
    # Long runs of the characters the patterns repeat: each must finish in one pass (the suite would hang).
    for text in ["+" + "1 " * 50_000, "1-" * 50_000, "a:" * 50_000, "sk-" + "a" * 100_000, "@" * 50_000, "A1" * 50_000]:
        find_sensitive(text)


def test_no_text_makes_the_detector_raise() -> None:
    rng = random.Random(7)
    alphabet = "0123456789 .-+()/:@_=\"'abcdefXYZ\n\t#%İ١🙂"
    for _ in range(2_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        findings = find_sensitive(text)
        assert redact_text(text, findings).count("[REDACTED:") == len(findings)
    assert find_sensitive("") == []


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # Luhn fails
        "1234567812345670",  # Luhn passes, IIN 1 is no card network
        "GB82WEST12345698765431",  # mod 97 fails
        "000-12-3456",
        "666-12-3456",
        "912-34-5678",
        "123-00-4567",
        "123-45-0000",
        "999.1.1.1",
        "2024-03-18 and 15.01.2024",
        "version 1.2.3.4",
        "SKU 1234-567-890",
        "ISBN 978-3-16-148410-0",
        "5b0f7c1e-8d2a-4c3b-9e6f-1a2b3c4d5e6f",
        "std::vector and 12:30:45",
        "bypass = x7Yq2Lp9Vb4Nm8Kw",  # a name that merely ends in "pass"
    ],
)
def test_look_alikes_are_not_findings(text: str) -> None:
    assert find_sensitive(text) == []


def test_entropy_threshold_separates_random_values_from_words_and_repeats() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaaaaaa") == 0.0
    assert shannon_entropy("abcdefgh") == pytest.approx(3.0)
    assert shannon_entropy("x7Yq2Lp9Vb4Nm8Kw") >= MIN_ENTROPY_BITS_PER_CHAR
    assert shannon_entropy("hunterhunter") < MIN_ENTROPY_BITS_PER_CHAR


# Issue 19 review: crafted text made the secret patterns quadratic; every capture and look-ahead is now bounded.
_RNG = random.Random(19)
_RANDOM_VALUE = "".join(_RNG.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789") for _ in range(600))


def test_an_assigned_value_is_read_up_to_its_bound_only() -> None:
    from bkvy.core.policy.pii_secrets import MAX_VALUE_CHARS

    text = f"password={_RANDOM_VALUE} done"
    assert _found(text) == [("secret", _RANDOM_VALUE[:MAX_VALUE_CHARS])]
    assert redact_text(text, find_sensitive(text)) == (
        f"password=[REDACTED:secret]{_RANDOM_VALUE[MAX_VALUE_CHARS:]} done"
    )


def test_a_bearer_token_is_read_up_to_its_bound_only() -> None:
    from bkvy.core.policy.pii_secrets import MAX_VALUE_CHARS

    assert _found(f"Bearer {_RANDOM_VALUE}") == [("secret", _RANDOM_VALUE[:MAX_VALUE_CHARS])]


def test_an_sk_key_needs_its_digit_within_its_250_characters() -> None:
    assert _found("sk-" + "a" * 300 + "1") == []
    assert _found("sk-" * 2000) == []
    assert _found("sk-" * 50 + " sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t") == [("secret", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t")]


def test_a_begin_line_without_a_near_end_line_does_not_take_the_rest_of_the_text() -> None:
    head = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
    text = head + "-- pasted: ana@example.org " + "." * 20_000 + " -----END PRIVATE KEY-----"
    assert _found(text) == [("secret", head), ("email", "ana@example.org")]


def test_each_cut_short_begin_line_is_its_own_block_and_a_later_key_is_found_whole() -> None:
    block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAjhRJuuB1mk4X86dr\n-----END RSA PRIVATE KEY-----"
    text = "-----BEGIN PRIVATE KEY----- (cut); " * 3 + block
    assert _found(text) == [("secret", "-----BEGIN PRIVATE KEY----- ")] * 3 + [("secret", block)]


def test_a_name_inside_a_value_just_read_is_part_of_that_value() -> None:
    assert _found("pass=" * 2000) == []
    assert _found("pass=" * 10 + " api_key=" + _RANDOM_VALUE[:40]) == [("secret", _RANDOM_VALUE[:40])]


def test_many_overlapping_candidates_settle_to_the_same_findings() -> None:
    text = "eyJaaaaaaaaaaaa." * 300
    found = find_sensitive(text)
    assert len(found) == 100 and all(f.kind is PiiKind.SECRET for f in found)
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))
