"""The one secret choke point (issue 16): masking in bytes, text, log records; URLs for display."""

from __future__ import annotations

import logging

import pytest

from bkvy.utils.scrubber import REDACTED, Scrubber, SecretLogFilter, redact_url, url_secrets

KEY = "sk-proj-Abc123Def456Ghi789Jkl"
NO_RARE_BYTE = "aeiouaeiouaeiou"  # only common letters: its gate is a common byte, still found
NON_ASCII = "clé-secrète-ünïcode"


def test_every_secret_is_masked_with_a_mask_of_its_own_length() -> None:
    scrubber = Scrubber([KEY, NO_RARE_BYTE, NON_ASCII, "short"])
    body = f'{{"error":"{KEY}","x":"{NO_RARE_BYTE}","y":"{NON_ASCII}","z":"short"}}'.encode()
    scrubbed = scrubber.scrub(body)
    assert len(scrubbed) == len(body)
    for secret in (KEY, NO_RARE_BYTE, NON_ASCII):
        assert secret.encode() not in scrubbed
    assert b'"short"' in scrubbed  # shorter than MIN_SECRET_CHARS: not looked for
    assert scrubbed.count(REDACTED[:-1].encode()) == 3
    assert scrubber.scrub_text(f"a {KEY} b") == f"a {'[redacted' + '*' * (len(KEY) - 10) + ']'} b"


def test_a_reply_without_secrets_is_returned_as_is() -> None:
    scrubber = Scrubber([KEY])
    body = b'{"choices":[{"message":{"content":"Quite a Zany Jazz Quiz"}}]}'  # holds gate bytes, no secret
    assert scrubber.scrub(body) is body
    assert not scrubber.has_secret(body) and not scrubber.has_secret_text(body.decode())


def test_a_secret_holding_another_is_masked_whole() -> None:
    scrubber = Scrubber(["abcdefgh12", "abcdefgh12345678"])
    assert scrubber.scrub_text("abcdefgh12345678") == "[redacted******]"


def test_replace_secrets_swaps_the_set() -> None:
    scrubber = Scrubber([KEY])
    scrubber.replace_secrets(["another-secret-value"])
    assert scrubber.has_secret_text("another-secret-value") and not scrubber.has_secret_text(KEY)
    assert Scrubber().is_empty and Scrubber(["tiny"]).is_empty


def _record(msg: str, *args: object, **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("bkvy.test", logging.WARNING, __file__, 1, msg, args or None, None)
    record.__dict__.update(fields)
    return record


def test_log_filter_masks_message_arguments_and_fields() -> None:
    log_filter = SecretLogFilter(Scrubber([KEY]))
    record = _record("upstream said %s", KEY, detail=f"x {KEY}", keys=[KEY], status=400)
    assert log_filter.filter(record) is True
    assert KEY not in record.getMessage() and "[redacted" in record.getMessage()
    assert KEY not in record.detail and KEY not in record.keys and record.status == 400  # type: ignore[attr-defined]


def test_log_filter_masks_a_traceback() -> None:
    log_filter = SecretLogFilter(Scrubber([KEY]))
    try:
        raise ValueError(f"bad key {KEY}")
    except ValueError:
        record = logging.LogRecord(
            "bkvy.test", logging.ERROR, __file__, 1, "failed", None, __import__("sys").exc_info()
        )
    log_filter.filter(record)
    text = logging.Formatter().format(record)
    assert KEY not in text and "ValueError: bad key [redacted" in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
        ("http://user:pass@host:8080/v1", "http://[redacted]@host:8080/v1"),
        ("http://u:p@[::1]:9/x", "http://[redacted]@[::1]:9/x"),
        (
            "https://x.openai.azure.com/openai?api-version=2024-06-01&api-key=SECRET",
            "https://x.openai.azure.com/openai?api-version=2024-06-01&api-key=[redacted]",
        ),
        ("https://g.example/v1beta?key=AIzaSyXYZ&alt=sse", "https://g.example/v1beta?key=[redacted]&alt=sse"),
        ("http://h/?Api%2DKey=zz&b=%20x", "http://h/?Api%2DKey=[redacted]&b=%20x"),
        ("http://h:99999/", "[redacted]"),
    ],
)
def test_redact_url_hides_userinfo_and_credential_queries(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_url_secrets_lists_what_a_url_carries() -> None:
    assert url_secrets("https://bob:hunter2hunter2@h/?api-key=SECRETKEY&v=1") == ["bob", "hunter2hunter2", "SECRETKEY"]
    assert url_secrets("https://h/v1") == []
