"""Every text part of a request is scanned and redacted: the system prompt, string content, text parts of a
content list (images untouched), assistant tool-call arguments (still valid JSON), tool results, ``stop`` and
``user``."""

import json

from bkvy.core.policy.detector import RequestScan, redact_request, scan_request
from bkvy.models.policy import PiiKind
from bkvy.models.types import ChatMessage, GenerationOptions, ToolCall

_IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo4111111111111111AAAA"}}


def _request() -> tuple[tuple[ChatMessage, ...], GenerationOptions]:
    messages = (
        ChatMessage("system", "Escalate to ops@example.com."),
        ChatMessage("user", ({"type": "text", "text": "My card is 4111 1111 1111 1111"}, _IMAGE)),
        ChatMessage(
            "assistant",
            "",
            (ToolCall("call_1", "lookup", json.dumps({"phone": "+44 20 7946 0958", "note": "ip 10.0.0.1"})),),
        ),
        ChatMessage("tool", "SSN on file: 123-45-6789", tool_call_id="call_1"),
    )
    return messages, GenerationOptions(stop=("END", "ana@example.org"), user="bob@example.net")


def test_scan_counts_every_text_part_and_names_the_kinds() -> None:
    messages, options = _request()
    scan = scan_request(messages, options)
    assert scan == RequestScan(
        frozenset({PiiKind.EMAIL, PiiKind.CARD, PiiKind.PHONE, PiiKind.IP, PiiKind.SSN}), count=7
    )


def test_redaction_reaches_every_part_and_reports_what_scan_reports() -> None:
    messages, options = _request()
    redacted, redacted_options, scan = redact_request(messages, options)
    assert scan == scan_request(messages, options)
    assert redacted[0].content == "Escalate to [REDACTED:email]."
    assert redacted[1].content == ({"type": "text", "text": "My card is [REDACTED:card]"}, _IMAGE)
    assert json.loads(redacted[2].tool_calls[0].arguments) == {"phone": "[REDACTED:phone]", "note": "ip [REDACTED:ip]"}
    assert redacted[2].tool_calls[0].call_id == "call_1"
    assert redacted[3] == ChatMessage("tool", "SSN on file: [REDACTED:ssn]", tool_call_id="call_1")
    assert redacted_options.stop == ("END", "[REDACTED:email]") and redacted_options.user == "[REDACTED:email]"
    assert scan_request(redacted, redacted_options).is_clean


def test_an_image_part_is_neither_scanned_nor_changed() -> None:
    messages = (ChatMessage("user", (_IMAGE,)),)
    assert scan_request(messages, GenerationOptions()).is_clean
    redacted, _, _ = redact_request(messages, GenerationOptions())
    assert redacted[0] is messages[0]


def test_a_clean_request_comes_back_as_the_same_objects() -> None:
    messages = (ChatMessage("system", "be brief"), ChatMessage("user", "hello"))
    options = GenerationOptions(stop=("\n\n",))
    redacted, redacted_options, scan = redact_request(messages, options)
    assert scan.is_clean and redacted_options is options
    assert all(after is before for after, before in zip(redacted, messages, strict=True))


def test_tool_arguments_stay_json_when_a_value_sits_next_to_an_escape() -> None:
    # In the raw JSON the card follows "\n": redacting the raw text keeps it valid; the value is redacted.
    arguments = json.dumps({"lines": "card:\n4111 1111 1111 1111", "n": 2})
    messages = (ChatMessage("assistant", "", (ToolCall("c", "f", arguments),)),)
    redacted, _, scan = redact_request(messages, GenerationOptions())
    assert json.loads(redacted[0].tool_calls[0].arguments) == {"lines": "card:\n[REDACTED:card]", "n": 2}
    assert scan.count == 1


def test_tool_arguments_that_are_not_json_are_redacted_as_text() -> None:
    messages = (ChatMessage("assistant", "", (ToolCall("c", "f", "to=ana@example.org"),)),)
    redacted, _, _ = redact_request(messages, GenerationOptions())
    assert redacted[0].tool_calls[0].arguments == "to=[REDACTED:email]"


def test_a_secret_named_json_field_is_redacted_and_the_json_stays_valid() -> None:
    arguments = json.dumps({"config": {"api_key": "a8f5f167f44f4964e6c998dee827110c", "region": "eu"}})
    messages = (ChatMessage("assistant", "", (ToolCall("c", "f", arguments),)),)
    redacted, _, scan = redact_request(messages, GenerationOptions())
    assert json.loads(redacted[0].tool_calls[0].arguments) == {
        "config": {"api_key": "[REDACTED:secret]", "region": "eu"}
    }
    assert scan == scan_request(messages, GenerationOptions()) == RequestScan(frozenset({PiiKind.SECRET}), 1)


def test_clean_json_arguments_keep_their_exact_text() -> None:
    arguments = '{"city":  "Paris", "days": 3}'
    call = ToolCall("c", "f", arguments)
    redacted, _, _ = redact_request((ChatMessage("assistant", "", (call,)),), GenerationOptions())
    assert redacted[0].tool_calls[0] is call


def test_deeply_nested_json_arguments_are_redacted_as_text_rather_than_raising() -> None:
    arguments = "[" * 5_000 + '"ana@example.org"' + "]" * 5_000
    messages = (ChatMessage("assistant", "", (ToolCall("c", "f", arguments),)),)
    redacted, _, scan = redact_request(messages, GenerationOptions())
    assert scan.count == 1 and "[REDACTED:email]" in redacted[0].tool_calls[0].arguments
    nested = "[" * 900 + '"ana@example.org"' + "]" * 900  # parses, but walking it may exhaust the stack
    assert scan_request((ChatMessage("assistant", "", (ToolCall("c", "f", nested),)),), GenerationOptions()).count == 1


def test_numbers_and_keys_in_tool_arguments_are_scanned_and_redacted() -> None:
    arguments = json.dumps(
        {"card": 4111111111111111, "jane.doe@example.com": "x", "n": 2, "ok": True, "ratio": 1.5, "none": None}
    )
    messages = (ChatMessage("assistant", "", (ToolCall("c", "f", arguments),)),)
    assert scan_request(messages, GenerationOptions()) == RequestScan(frozenset({PiiKind.CARD, PiiKind.EMAIL}), 2)
    redacted, _, scan = redact_request(messages, GenerationOptions())
    assert scan.count == 2
    assert json.loads(redacted[0].tool_calls[0].arguments) == {
        "card": "[REDACTED:card]",
        "[REDACTED:email]": "x",
        "n": 2,
        "ok": True,
        "ratio": 1.5,
        "none": None,
    }


def test_a_number_in_a_nested_list_is_scanned_and_a_clean_one_keeps_its_exact_text() -> None:
    arguments = '{"cards": [[4111111111111111]], "count": 12}'
    messages = (ChatMessage("assistant", "", (ToolCall("c", "f", arguments),)),)
    redacted, _, _ = redact_request(messages, GenerationOptions())
    assert json.loads(redacted[0].tool_calls[0].arguments) == {"cards": [["[REDACTED:card]"]], "count": 12}
    clean = (ChatMessage("assistant", "", (ToolCall("c", "f", '{"count":  12}'),)),)
    assert redact_request(clean, GenerationOptions())[0][0].tool_calls[0].arguments == '{"count":  12}'
