"""The transcript format of INTERFACES.md: what is accepted, and the reason staff see when it is not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from channels.voicemail.parse import VoicemailError, caller_phone, parse_transcript, parse_twilio
from core.messages import InboundMessage
from tests.channels.voicemail.recorded import CALLBACKS, TRANSCRIPTS, body, transcript, twilio
from tests.conftest import at

COMPLAINT = "老师上课总是迟到，课时费也没有退，请给我回个电话"  # the minimal sample's and Twilio's


def _parse(name: str = "asterisk_full", **changes: Any) -> InboundMessage:
    """A recorded transcript, changed; a change to None leaves the field out."""
    return parse_transcript(json.dumps(transcript(name, **changes), ensure_ascii=False).encode())


def test_a_good_transcript_becomes_the_callers_message() -> None:
    message = parse_transcript(body("asterisk_full"))
    assert message.channel == "voicemail" and message.external_id == "asterisk:1790733480.43"
    assert message.sender_id == message.phone == "+8613812348000"  # as dialled back, spacing gone
    assert message.text == "我想投诉课程老师经常迟到" and message.sender_name == "李明"
    assert message.received_at == at("2026-09-30 09:59:30")
    assert [a.ref for a in message.attachments] == ["https://pbx.school.example/voicemail/8000/msg0043.wav"]
    # Written with a byte-order mark by some Windows jobs: still the same transcript.
    bom = b"\xef\xbb\xbf" + body("asterisk_full")
    assert parse_transcript(bom).external_id == message.external_id


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_every_recorded_transcript_is_one_voicemail_of_the_pbx(name: str) -> None:
    message = parse_transcript(body(name))
    assert message.channel == "voicemail" and message.external_id.startswith("asterisk:17907334")
    assert message.received_at.utcoffset() is not None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"caller": None}, "missing field caller"),
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
    for bad, reason in (
        (b"{not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b"\xff\xfe", "not JSON"),
    ):
        with pytest.raises(VoicemailError, match=reason):
            parse_transcript(bad)
    with pytest.raises(VoicemailError, match="over the limit"):
        parse_transcript(b" " * (300 * 1024))


def test_a_failed_or_pending_transcript_has_no_text_and_the_finished_one_answers_the_pending() -> None:
    failed = _parse("asterisk_failed", transcript="(garbled)")
    assert failed.text == ""
    pending, done = parse_transcript(body("asterisk_pending")), parse_transcript(body("asterisk_minimal"))
    assert done.text == COMPLAINT
    # Two messages of one voicemail: the finished one joins the ticket the pending one opened.
    assert pending.external_id != done.external_id
    assert done.reply_to == pending.external_id and pending.reply_to == done.external_id


def test_withheld_and_odd_caller_numbers() -> None:
    assert caller_phone("anonymous") is None and caller_phone("") is None and caller_phone("abc") is None
    assert caller_phone("０２１－５０００１２３４") == "02150001234"  # full-width, as some systems log it
    withheld = parse_transcript(body("asterisk_withheld"))  # the PBX wrote "anonymous"
    assert withheld.phone is None and withheld.sender_id == "withheld:asterisk:1790733480.45"
    assert _parse(caller="Restricted").phone is None


@pytest.mark.parametrize("name", CALLBACKS)
def test_every_recorded_twilio_callback_is_the_recordings_voicemail(name: str) -> None:
    message = parse_twilio(twilio(name), at("2026-09-30 10:02"))
    assert message.external_id == "twilio:RE0123456789abcdef0123456789abcdef"
    assert message.phone == "+8613800138000" and message.received_at == at("2026-09-30 10:02")


def test_twilio_callback_fields() -> None:
    message = parse_twilio(twilio("twilio_completed"), at("2026-09-30 10:02"))
    assert (message.text, [a.ref for a in message.attachments]) == (
        COMPLAINT,
        [
            "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef"
            "/Recordings/RE0123456789abcdef0123456789abcdef"
        ],
    )
    assert parse_twilio(twilio("twilio_failed"), at("2026-09-30 10:02")).text == ""
    with pytest.raises(VoicemailError, match="RecordingSid"):
        parse_twilio(twilio("twilio_completed", RecordingSid=""), at("2026-09-30 10:02"))
