"""Every parser fed arbitrary and mutated input (Hypothesis): none raises anything but its own documented
refusal, and what it cannot use comes back as "unusable" with a reason and a key to keep it under.

Pure: no database, no server. `test_parsers_kept.py` sends such input through the real routes and checks
that it is kept with its reason. Examples are few and derived from the test's name (`derandomize`), so a
run is quick and the same on every machine.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.mail.parse import MailError, parse_mail
from channels.telegram.events import LearnerMessage, StaffCommand, Unusable
from channels.telegram.parse import parse_update
from channels.voicemail.parse import VoicemailError, parse_transcript, parse_twilio
from channels.wechat import parse as wechat
from channels.wechat.security import Envelope, Forbidden, Undecryptable, sign
from core.messages import InboundMessage
from tests.channels.wechat import recorded, signing

NOW = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)
DATA = Path(__file__).parent
FUZZ = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# JSON as a platform may send it, nested a few levels deep.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)


@st.composite
def mutated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    """A real sample with a few edits: bytes flipped, cut out, doubled, inserted; or cut short."""
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["flip", "cut", "double", "insert", "truncate"]))
        if edit == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif edit == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif edit == "double":
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at:]
    return bytes(data)


@st.composite
def mutated_json(draw: st.DrawFn, samples: list[dict[str, Any]]) -> Any:
    """A real JSON document with one value somewhere in it replaced by arbitrary JSON, or with
    arbitrary fields added to one of its objects."""
    document = json.loads(json.dumps(draw(st.sampled_from(samples))))
    node: Any = document
    for _ in range(draw(st.integers(0, 4))):
        keys = (
            list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        )
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        if not isinstance(node[key], dict | list) or draw(st.booleans()):
            node[key] = draw(json_values)
            return document
        node = node[key]
    # The walk ended without replacing a value: the object it reached gets a few arbitrary fields.
    if isinstance(node, dict):
        node.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    return document


def _kept_or_understood(message: InboundMessage) -> None:
    """A message that came through keeps what was sent, whole: the raw payload, and a text."""
    assert message.raw is not None
    assert isinstance(message.text, str)


# ---------------------------------------------------------------- WeChat XML, plain and sealed

# Every recorded push (`wechat/pushes/`): each message and event type, as WeChat posts it.
WECHAT_SAMPLES = [(recorded.PUSHES / f"{name}.xml").read_bytes() for name in recorded.SAMPLES]


def _wechat_push(data: bytes) -> wechat.WeChatPush | None:
    """What the webhook makes of a body: a push, or None for a refusal (`UnsafeXml`, 400)."""
    try:
        fields = wechat.read_xml(data)
    except wechat.UnsafeXml:
        return None
    except wechat.BadXml as exc:
        assert str(exc)
        return wechat.Unusable(str(exc), "digest")
    push = wechat.parse_push(fields, received_at=NOW)
    if isinstance(push, wechat.Unusable):
        assert push.reason and push.key
    elif isinstance(push, wechat.Complaint):
        _kept_or_understood(push.message)
        assert push.message.raw == dict(fields) and push.message.received_at <= NOW
    return push


@FUZZ
@given(st.binary(max_size=512) | mutated(WECHAT_SAMPLES))
def test_wechat_xml_never_crashes_and_names_what_it_cannot_use(data: bytes) -> None:
    push = _wechat_push(data)  # None: refused as unsafe XML (400), nothing stored
    if isinstance(push, wechat.Unusable):
        assert push.reason and push.key  # kept for staff under a key, with why


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "FromUserName",
                "CreateTime",
                "MsgType",
                "MsgId",
                "Content",
                "Event",
                "MediaId",
                "Recognition",
                "FileTotalLen",
                "Label",
                "Url",
            ]
        ),
        st.text(max_size=20) | st.dictionaries(st.text(max_size=5), st.text(max_size=5)),
    )
)
def test_wechat_fields_of_any_shape_are_classified(fields: dict[str, Any]) -> None:
    push = wechat.parse_push(fields, received_at=NOW)
    assert isinstance(push, wechat.Complaint | wechat.Subscribed | wechat.OtherEvent | wechat.Unusable)
    if isinstance(push, wechat.Unusable):
        assert push.reason and push.key


SEALED = Envelope(signing.TOKEN, signing.ENCODING_AES_KEY, signing.APP_ID)


@FUZZ
@given(st.text(max_size=300) | mutated(WECHAT_SAMPLES).map(lambda b: b.decode("utf-8", "replace")), st.data())
def test_a_sealed_push_opens_or_is_refused_with_a_reason(plain: str, data: st.DataObject) -> None:
    encrypted = signing.encrypt(plain)
    if data.draw(st.booleans(), label="mutate the ciphertext"):
        encrypted = data.draw(mutated([encrypted.encode()]), label="ciphertext").decode("latin-1")
    timestamp, nonce = "1759197600", "4711"
    try:
        opened = SEALED.open(
            {"Encrypt": encrypted}, sign(signing.TOKEN, timestamp, nonce, encrypted), timestamp, nonce
        )
    except Undecryptable as exc:
        assert str(exc)  # kept for staff with this reason
        return
    except Forbidden as exc:  # cut to nothing, or opened to another app id: refused (403), a reason given
        assert str(exc)
        return
    if opened == plain.encode():
        _wechat_push(opened)


# ---------------------------------------------------------------- Telegram updates

TELEGRAM_SAMPLES = [
    json.loads(path.read_text(encoding="utf-8"))
    for path in sorted((DATA / "telegram" / "responses").glob("*.json"))
]
TELEGRAM_SAMPLES = [s for s in TELEGRAM_SAMPLES if isinstance(s, dict) and "update_id" in s] or [
    {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 1759197600,
            "chat": {"id": 5, "type": "private"},
            "from": {"id": 5, "is_bot": False, "first_name": "李"},
            "text": "投诉",
        },
    }
]


@FUZZ
@given(json_values | mutated_json(TELEGRAM_SAMPLES))
def test_telegram_updates_of_any_shape_are_classified(update: Any) -> None:
    event = parse_update(update if isinstance(update, dict) else {"update_id": update}, received_at=NOW)
    if isinstance(event, Unusable):
        assert event.reason and event.external_id
    elif isinstance(event, LearnerMessage):
        _kept_or_understood(event.message)
        assert event.message.received_at <= NOW


@FUZZ
@given(st.text(max_size=200))
def test_any_text_a_staff_member_types_is_a_command_or_text(text: str) -> None:
    update = {
        "update_id": 7,
        "message": {
            "message_id": 3,
            "date": 1759197600,
            "text": "/" + text,
            "chat": {"id": -1000, "type": "supergroup", "title": "学员服务部"},
            "from": {"id": 9001, "is_bot": False, "first_name": "王"},
            "entities": [{"type": "bot_command", "offset": 0, "length": 1 + len(text.split(" ")[0])}],
        },
    }
    event = parse_update(update, received_at=NOW, bot_username="complaint_test_bot")
    if isinstance(event, StaffCommand):
        assert event.command == event.command.strip() and event.args == event.args.strip()


# ---------------------------------------------------------------- MIME

MAIL_SAMPLES = [path.read_bytes() for path in sorted((DATA / "mail" / "data").glob("*.eml"))][:12]


@FUZZ
@given(st.binary(max_size=2048) | mutated(MAIL_SAMPLES))
def test_any_bytes_are_a_mail_or_refused_with_a_reason(raw: bytes) -> None:
    try:
        message = parse_mail(raw, NOW)
    except MailError as exc:
        assert str(exc)  # the reader keeps the raw bytes with this reason
        return
    _kept_or_understood(message)
    assert message.external_id and message.sender_id


# ---------------------------------------------------------------- voicemail JSON and form posts

TRANSCRIPT = {
    "schema_version": 1,
    "source": "asterisk",
    "external_id": "1759197600.42",
    "caller": "+8613800138000",
    "received_at": "2026-09-30T22:14:00+08:00",
    "transcript": "我要投诉退费的事",
    "transcript_status": "completed",
    "duration_s": 42,
    "mailbox": "400",
    "confidence": 0.9,
}


@FUZZ
@given(
    st.binary(max_size=512)
    | mutated([json.dumps(TRANSCRIPT, ensure_ascii=False).encode()])
    | mutated_json([TRANSCRIPT]).map(lambda d: json.dumps(d, ensure_ascii=False).encode())
)
def test_any_body_is_a_transcript_or_refused_with_a_reason(body: bytes) -> None:
    try:
        message = parse_transcript(body)
    except VoicemailError as exc:
        assert str(exc)
        return
    _kept_or_understood(message)


TWILIO = {
    "RecordingSid": "RE42",
    "From": "+8613800138000",
    "TranscriptionText": "投诉",
    "CallSid": "CA1",
    "TranscriptionStatus": "completed",
    "RecordingUrl": "https://api.twilio.com/r/RE42",
}


@FUZZ
@given(
    st.dictionaries(st.sampled_from([*TWILIO, "Other"]), st.text(max_size=30))
    | st.builds(
        lambda extra: {**TWILIO, **extra},
        st.dictionaries(st.sampled_from(list(TWILIO)), st.text(max_size=30)),
    )
)
def test_any_form_is_a_twilio_transcript_or_refused_with_a_reason(form: dict[str, str]) -> None:
    try:
        message = parse_twilio(form, NOW)
    except VoicemailError as exc:
        assert str(exc)
        return
    _kept_or_understood(message)
    assert message.raw == form
