"""The detector's signatures (issue 19 contract): a finding, its redaction, a request's scan."""

from bkvy.core.policy.detector import find_sensitive, redact_request, redact_text, scan_request
from bkvy.models.policy import PiiKind
from bkvy.models.types import ChatMessage, GenerationOptions


def test_an_email_is_found_redacted_and_counted_without_its_value() -> None:
    text = "write to ana@example.org today"
    findings = find_sensitive(text)
    assert [(f.kind, text[f.start : f.end]) for f in findings] == [(PiiKind.EMAIL, "ana@example.org")]
    assert redact_text(text, findings) == "write to [REDACTED:email] today"
    messages = (ChatMessage("system", "be brief"), ChatMessage("user", text))
    scan = scan_request(messages, GenerationOptions())
    assert scan.kinds == {PiiKind.EMAIL} and scan.count == 1 and not scan.is_clean
    redacted, _, scan_again = redact_request(messages, GenerationOptions())
    assert redacted[1].content == "write to [REDACTED:email] today" and scan_again == scan
