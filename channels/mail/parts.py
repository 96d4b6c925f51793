"""A message's MIME tree into the text a person wrote and the files they sent with it.

The text is every body part in order (Apple Mail splits it around an inline picture), taking text/plain
over text/html within a multipart/alternative. Every other part is a file: PDFs, pictures pasted into
the body (the screenshot a learner sends as proof usually sits in the HTML alternative's
multipart/related), forwarded mail, a bounce's delivery report. A file is named by its position in
`Message.walk()` order, so the caller can store its bytes (`part_at`, `part_bytes`).
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass, field
from email.errors import MessageError
from email.message import Message
from email.policy import compat32

from channels.mail.htmltext import html_to_text
from channels.mail.text import clean, content_type, decode_bytes, header, param
from core.messages import Attachment

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024  # what staff can open and we keep; larger stays in the raw mail
TOO_LARGE = "too-large"  # the `ref` of a file over the limit
MAX_ATTACHMENTS = 100  # more is not a learner's evidence but a machine's output; all stay in the raw mail
MAX_DEPTH = 20  # multipart levels read; real mail has at most five or six
_BODY_TYPES = ("text/plain", "text/html")
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", re.IGNORECASE)
_NAME_LIMIT = 200
_CID = re.compile(r"\[cid:([^@\]\s]{1,100})@[^\]\s]{0,100}\]")


@dataclass
class Body:
    """What `read_body` found; `notes` say what could not be read as sent, for staff."""

    text: str = ""
    from_html: bool = False
    files: list[Attachment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_body(msg: Message) -> Body:
    reader = _Reader(msg)
    texts = reader.texts(msg, 0)
    body = reader.body
    body.text = "\n\n".join(text.strip("\n") for text, _ in texts if text.strip())
    body.from_html = bool(texts) and all(from_html for _, from_html in texts)
    if len(body.files) > MAX_ATTACHMENTS:
        body.notes.append(f"{len(body.files)} attachments, only the first {MAX_ATTACHMENTS} listed")
        del body.files[MAX_ATTACHMENTS:]
    return body


class _Reader:
    def __init__(self, msg: Message) -> None:
        self.body = Body()
        self.positions = {id(part): index for index, part in enumerate(msg.walk())}

    def texts(self, part: Message, depth: int) -> list[tuple[str, bool]]:
        """The body texts under `part` (each with whether it came from HTML); files go into the body."""
        ctype = content_type(part)
        if part.is_multipart() and not ctype.startswith("message/"):
            if depth >= MAX_DEPTH:  # no mail program nests this deep; recursion must stop somewhere
                self.body.notes.append(f"parts nested deeper than {MAX_DEPTH} levels not read")
                return []
            payload = part.get_payload()
            children = [c for c in payload if isinstance(c, Message)] if isinstance(payload, list) else []
            if ctype == "multipart/alternative":
                return self.alternative(children, depth + 1)
            found: list[tuple[str, bool]] = []
            for child in children:
                found += self.texts(child, depth + 1)
            return found
        if ctype.startswith("multipart/"):
            # A multipart without its boundary is one opaque payload: its words are the best we have.
            self.body.notes.append(f"{ctype} without a usable boundary, read as text")
            return [(self.decode(part, "text/plain"), False)]
        if ctype not in _BODY_TYPES or _is_attachment(part):
            self.body.files.append(_attachment(part, ctype, self.positions.get(id(part), -1)))
            return []
        text = self.decode(part, ctype)
        if ctype == "text/html":
            return [(html_to_text(text), True)]
        # Outlook writes "[cid:image001.png@01DB5C2E.7A1B2C30]" where a picture sits: its name will do.
        return [(_CID.sub(r"[\1]", text), False)]

    def alternative(self, children: list[Message], depth: int) -> list[tuple[str, bool]]:
        # Every alternative is read, for its files: the pictures live in the HTML one.
        readings = [(content_type(child) != "text/plain", self.texts(child, depth)) for child in children]
        for _html, texts in sorted(readings, key=lambda reading: reading[0]):
            if any(text.strip() for text, _ in texts):
                return texts
        return []

    def decode(self, part: Message, ctype: str) -> str:
        data = part_bytes(part) or b""
        label = param(part, "charset")
        if label is None and ctype == "text/html":
            found = _META_CHARSET.search(data[:4096])
            label = found.group(1).decode("ascii") if found else None
        text, note = decode_bytes(data, label)
        if note:
            self.body.notes.append(f"{ctype}: {note}")
        return clean(text)


def _is_attachment(part: Message) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    return disposition == "attachment" or filename(part) is not None


def _attachment(part: Message, ctype: str, index: int) -> Attachment:
    name = filename(part)
    if ctype == "application/octet-stream" and name:
        # QQ Mail and phones send photos and PDFs as octet-stream; the name says what they are.
        ctype = mimetypes.guess_type(name, strict=False)[0] or ctype
    if ctype == "message/rfc822" and not name:
        # A mail forwarded as an attachment (the teacher's message, as evidence): named by its subject.
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else None
        subject = header(first, "Subject") if isinstance(first, Message) else None
        name = f"{(subject or 'message')[: _NAME_LIMIT - 4]}.eml"
    data = part_bytes(part)
    size = len(data) if data is not None else None
    kind = "image" if ctype.startswith("image/") else "file"
    ref = TOO_LARGE if size is not None and size > MAX_ATTACHMENT_BYTES else f"mime:{index}"
    return Attachment(kind=kind, ref=ref, name=name, mime=ctype, size=size)


def filename(part: Message) -> str | None:
    """The file's name as the sender's program wrote it, without any folder (a name is not a path)."""
    name = param(part, "filename", "content-disposition") or param(part, "name")
    if not name:
        return None
    name = re.split(r"[/\\]", name)[-1].strip().lstrip(".") or None
    return name[:_NAME_LIMIT] if name else None


def part_at(msg: Message, ref: str) -> Message | None:
    """The part an attachment's `ref` ("mime:3") names, or None."""
    prefix, _, index = ref.partition(":")
    if prefix != "mime" or not index.isdigit():
        return None
    for position, part in enumerate(msg.walk()):
        if position == int(index):
            return part
    return None


def part_bytes(part: Message) -> bytes | None:
    """A part's content, transfer encoding undone; for attached mail, the mail as it was sent."""
    if content_type(part).startswith("message/"):
        inner = part.get_payload()
        try:
            return b"".join(_as_bytes(item) for item in (inner if isinstance(inner, list) else [inner]))
        except (LookupError, UnicodeError, ValueError, TypeError, MessageError):
            return None  # an attached mail too broken to write out again; it is still in the raw mail
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else None


def _as_bytes(item: object) -> bytes:
    if isinstance(item, Message):
        return item.as_bytes(policy=compat32)
    return str(item).encode("utf-8", "surrogateescape")
