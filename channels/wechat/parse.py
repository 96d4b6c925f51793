"""WeChat's pushed XML -> what complaintbot should do with it.

Pure (no I/O): `read_xml` turns bytes into the flat field map WeChat sends, refusing what could make the
parser do unbounded work; `parse_push` turns the fields into a learner's message or an event. Neither
knows about signatures or encryption: the webhook checks those before either is called.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.messages import Attachment, InboundMessage

# A pushed message is well under 4 kB (a text message is at most 2,048 bytes of content); 64 kB leaves room
# for the encrypted form (base64 of the whole, a third larger) and for fields WeChat adds.
MAX_BYTES = 64 * 1024
# WeChat never sends a document type, so none is needed: refusing it before parsing takes away every
# entity trick (billion laughs, external entities) whatever the XML parser would do with it.
_DECLARATION = re.compile(rb"<!\s*(doctype|entity)", re.IGNORECASE)
# (MsgType, Attachment.kind) of messages whose content is a media file kept on WeChat's servers.
_MEDIA_KINDS = {"image": "image", "voice": "voice", "video": "video", "shortvideo": "video", "file": "file"}


class UnsafeXml(ValueError):
    """Refused before parsing: a document type, an entity declaration, a body too large, not UTF-8."""


class BadXml(ValueError):
    """Safe, but not the XML WeChat sends (malformed, wrong root)."""


@dataclass(frozen=True)
class Complaint:
    message: InboundMessage  # a learner's message: opens or continues a ticket


@dataclass(frozen=True)
class Subscribed:
    open_id: str  # followed the account: greet with the privacy notice and how to complain
    key: str  # idempotency key of the event, as of every event: f"{FromUserName}:{CreateTime}:{Event}"


@dataclass(frozen=True)
class OtherEvent:
    event: str  # unsubscribe, a menu click, a location report…: acknowledged with "success", nothing kept
    key: str


@dataclass(frozen=True)
class Unusable:
    reason: str  # authentic (its signature passed) but not understood: kept raw for staff
    key: str


WeChatPush = Complaint | Subscribed | OtherEvent | Unusable


def check_safe(data: bytes) -> None:
    """Raise `UnsafeXml` for anything the parser should not even see."""
    if len(data) > MAX_BYTES:
        raise UnsafeXml(f"XML larger than {MAX_BYTES} bytes")
    if _DECLARATION.search(data):
        raise UnsafeXml("XML with a document type or entity declaration")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        # WeChat sends UTF-8 only; another encoding could also hide a declaration from the check above.
        raise UnsafeXml("XML that is not UTF-8") from None


def read_xml(data: bytes) -> dict[str, Any]:
    """The fields of `<xml>…</xml>`: each child's text, or a dict of its own children (event details)."""
    check_safe(data)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise BadXml(f"malformed XML: {exc}") from None
    if root.tag != "xml":
        raise BadXml(f"root element <{root.tag}>, not <xml>")
    return {child.tag: _value(child) for child in root}


def _value(element: ET.Element) -> Any:
    if len(element):
        return {child.tag: _value(child) for child in element}
    return element.text or ""


def parse_push(fields: Mapping[str, Any], *, received_at: datetime) -> WeChatPush:
    """Classify one decrypted push. `received_at` (aware) caps WeChat's CreateTime, as a clock ahead of ours
    must not date a message in the future."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    sender, created = _text(fields, "FromUserName"), _text(fields, "CreateTime")
    msg_type = _text(fields, "MsgType").lower()
    if not sender or not msg_type:
        return Unusable("FromUserName or MsgType is missing", _fields_key(sender, created, msg_type))
    if msg_type == "event":
        event = _text(fields, "Event")
        key = f"{sender}:{created}:{event}"
        # A follow through a QR code with a scene ("qrscene_…") is still a follow.
        return Subscribed(sender, key) if event.lower() == "subscribe" else OtherEvent(event, key)
    msg_id = _text(fields, "MsgId")
    if not msg_id:
        return Unusable(f"{msg_type} message without MsgId", _fields_key(sender, created, msg_type))
    at = received_at.astimezone(UTC)
    if created.isascii() and created.isdigit() and len(created) <= 10:  # Unix seconds, until 2286
        at = min(datetime.fromtimestamp(int(created), tz=UTC), at)
    text, attachments = _content(fields, msg_type)
    if text is None:
        return Unusable(f"{msg_type} messages are not understood", msg_id)
    message = InboundMessage(
        channel="wechat",
        external_id=msg_id,
        sender_id=sender,
        text=text,
        received_at=at,
        attachments=attachments,
        raw=dict(fields),
    )
    return Complaint(message)


def _fields_key(sender: str, created: str, msg_type: str) -> str:
    """The key of a push without MsgId: stored in clear and logged, so the OpenID in it is hashed."""
    return f"fields:{hashlib.sha256(sender.encode()).hexdigest()[:16]}:{created}:{msg_type}"


def _content(fields: Mapping[str, Any], msg_type: str) -> tuple[str | None, tuple[Attachment, ...]]:
    """The message's text and attachments; text None for a type we do not understand."""
    if msg_type == "text":
        return _text(fields, "Content"), ()
    if msg_type in _MEDIA_KINDS:
        return _media(fields, msg_type)
    if msg_type == "location":
        place = _text(fields, "Label")
        where = f"({_text(fields, 'Location_X')}, {_text(fields, 'Location_Y')})"
        return " ".join(p for p in ("[位置]", place, where) if p), ()
    if msg_type == "link":
        return "\n".join(p for p in (_text(fields, k) for k in ("Title", "Description", "Url")) if p), ()
    return None, ()


def _media(fields: Mapping[str, Any], msg_type: str) -> tuple[str, tuple[Attachment, ...]]:
    ref = _text(fields, "MediaId") or _text(fields, "FileKey")
    text, name, mime, size = "", None, None, None
    if msg_type == "voice":
        # With speech recognition switched on, WeChat sends the transcript with the voice: it is the
        # complaint's text, and the media id stays with it so staff can fetch the recording.
        text = _text(fields, "Recognition").strip()
        voice_format = _text(fields, "Format").lower()
        mime = f"audio/{voice_format}" if voice_format else None
    elif msg_type == "file":
        name = _text(fields, "Title") or None
        total = _text(fields, "FileTotalLen")
        size = int(total) if total.isdigit() else None
        text = _text(fields, "Description")
    elif msg_type == "image":
        mime = "image/jpeg"  # what WeChat stores pushed pictures as; PicUrl stays in the raw fields
    if not ref:
        return text, ()
    return text, (Attachment(kind=_MEDIA_KINDS[msg_type], ref=ref, name=name, mime=mime, size=size),)


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    return value if isinstance(value, str) else ""
