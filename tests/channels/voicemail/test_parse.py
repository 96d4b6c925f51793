"""The transcript format of INTERFACES.md: what is accepted, and the reason staff see when it is not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from channels.voicemail.parse import VoicemailError, caller_phone, parse_transcript, parse_twilio
from tests.conftest import at

GOOD: dict[str, Any] = {
    "schema_version": 1,
    "source": "asterisk",
    "external_id": "1700000000.42",
    "caller": "+86 138-1234-8000",
    "received_at": "2026-11-22T22:14:00+08:00",
    "transcript": "  我想投诉课程老师经常迟到  ",
    "transcript_status": "completed",
    "duration_s": 31,
    "caller_name": "李明",
    "audio_url": "https://pbx.example/rec/42.wav",
}


def _parse(**changes: Any) -> Any:
    data = {k: v for k, v in {**GOOD, **changes}.items() if v is not ...}
    return parse_transcript(json.dumps(data, ensure_ascii=False).encode())


def test_a_good_transcript_becomes_the_callers_message() -> None:
    message = _parse()
    assert message.channel == "voicemail" and message.external_id == "asterisk:1700000000.42"
    assert message.sender_id == message.phone == "+8613812348000"
    assert message.text == "我想投诉课程老师经常迟到" and message.sender_name == "李明"
    assert message.received_at == at("2026-11-22 22:14")
    assert [a.ref for a in message.attachments] == ["https://pbx.example/rec/42.wav"]
    # Written with a byte-order mark by some Windows jobs: still the same transcript.
    bom = b"\xef\xbb\xbf" + json.dumps(GOOD).encode()
    assert parse_transcript(bom).external_id == message.external_id


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"caller": ...}, "missing field caller"),
        ({"duration_s": "31"}, "duration_s must be int or float, not str"),
        ({"duration_s": True}, "duration_s must be int or float, not bool"),
        ({"duration_s": float("nan")}, "duration_s nan is not a length of time"),
        ({"schema_version": 2}, "schema_version 2 is not 1"),
        ({"transcript_status": "done"}, "transcript_status 'done' is not one of"),
        ({"received_at": "2026-11-22 22:14"}, "has no UTC offset"),
        ({"received_at": "yesterday"}, "is not ISO-8601"),
        ({"source": "Bad Source!"}, "is not a short name"),
        ({"external_id": "  "}, "external_id is empty"),
        ({"confidence": "high"}, "confidence must be int or float"),
    ],
)
def test_each_problem_is_named(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(VoicemailError, match=reason.replace("(", r"\(")):
        _parse(**changes)


def test_bodies_that_are_not_transcripts() -> None:
    for body, reason in (
        (b"{not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b"\xff\xfe", "not JSON"),
    ):
        with pytest.raises(VoicemailError, match=reason):
            parse_transcript(body)
    with pytest.raises(VoicemailError, match="over the limit"):
        parse_transcript(b" " * (300 * 1024))


def test_a_failed_or_pending_transcript_has_no_text_and_the_finished_one_answers_the_pending() -> None:
    failed = _parse(transcript="(garbled)", transcript_status="failed")
    assert failed.text == ""
    pending = _parse(transcript="", transcript_status="pending")
    done = _parse()
    # Two messages of one voicemail: the finished one joins the ticket the pending one opened.
    assert pending.external_id != done.external_id
    assert done.reply_to == pending.external_id and pending.reply_to == done.external_id


def test_withheld_and_odd_caller_numbers() -> None:
    assert caller_phone("anonymous") is None and caller_phone("") is None and caller_phone("abc") is None
    assert caller_phone("０２１－５０００１２３４") == "02150001234"  # full-width, as some systems log it
    withheld = _parse(caller="Restricted")
    assert withheld.phone is None and withheld.sender_id == "withheld:asterisk:1700000000.42"


def test_twilio_callback_fields() -> None:
    form = {
        "RecordingSid": "RE123",
        "TranscriptionText": "退费三个月没到账",
        "TranscriptionStatus": "completed",
        "From": "+8613812348000",
        "CallSid": "CA1",
        "RecordingUrl": "https://api.twilio.com/rec/RE123",
    }
    message = parse_twilio(form, at("2026-11-22 22:20"))
    assert (message.external_id, message.text, message.phone) == (
        "twilio:RE123",
        "退费三个月没到账",
        "+8613812348000",
    )
    assert parse_twilio({**form, "TranscriptionStatus": "failed"}, at("2026-11-22 22:20")).text == ""
    with pytest.raises(VoicemailError, match="RecordingSid"):
        parse_twilio({"From": "+86138"}, at("2026-11-22 22:20"))
