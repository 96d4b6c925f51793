"""E-mail as learners really send it, into an `InboundMessage` (pure: bytes in, no I/O).

Chinese mail programs write GBK under a "gb2312" label, raw 8-bit headers, encoded words inside quoted
names and file names, HTML-only bodies, and quote the whole earlier mail under a reply: all of it is
read here (`text`, `htmltext`, `quotes`, `parts`), and machine-written mail is marked (`loops`).
Only bytes that are not an e-mail at all raise `MailError`; anything else gives a message with as
much as could be read, and `raw["problems"]` says what could not.
"""

from __future__ import annotations

import email
import hashlib
import re
from datetime import datetime, timedelta
from email.message import Message
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from channels.mail.loops import auto_reply_reason
from channels.mail.parts import MAX_ATTACHMENT_BYTES, TOO_LARGE, part_at, part_bytes, read_body
from channels.mail.quotes import trim_quoted
from channels.mail.text import body_charset, clean, content_type, decode_words, header, unbytes
from core.messages import InboundMessage

__all__ = [
    "MAX_ATTACHMENT_BYTES",
    "MAX_BYTES",
    "TOO_LARGE",
    "MailError",
    "attachment_bytes",
    "message_key",
    "parse_mail",
]

MAX_BYTES = 25 * 1024 * 1024  # what mail servers commonly accept; larger is not a learner's mail
BATCH_BYTES = 32 * 1024 * 1024  # what one batch may bring into memory (one larger mail comes alone)
MAX_TEXT = 100_000  # characters of text kept; a longer body is a log or a paste, still whole in the raw mail
MAX_REFERENCES = 50  # a long thread's oldest ids do not help to find its ticket
# The sender's Date is used when it is plausible: mail waits in queues for up to five days (the
# usual retry limit of mail servers), and a clock a little ahead is not a message from the future.
_DATE_BEFORE = timedelta(days=5)
_DATE_AFTER = timedelta(hours=1)
_HEADER_LINE = re.compile(rb"^[!-9;-~]+:", re.MULTILINE)
_HEADER_SEARCH = 64 * 1024  # how far junk before the headers is skipped
_MESSAGE_IDS = re.compile(r"<[^<>\s]+>")
_HEADER_START = re.compile(rb"[!-9;-~]+:")
_STRAY_LINES = 3  # lines without a name between two header lines that are taken as a folded value
# Only a line with a header's usual name below them shows that the headers go on (a body right below
# the headers, with no blank line, may well hold "Name: …" lines of its own).
_KNOWN_HEADER = re.compile(
    rb"(?:from|to|cc|bcc|subject|date|sender|reply-to|message-id|mime-version|content-[a-z-]+|received"
    rb"|return-path|in-reply-to|references|delivered-to|list-[a-z-]+|x-[!-9;-~]+|user-agent|organization"
    rb"|importance|priority|precedence|auto-submitted|thread-[a-z]+|dkim-signature|authentication-results"
    rb"|arc-[a-z-]+):",
    re.IGNORECASE,
)
# An address anywhere in a From that the address parser cannot read ("Test test@example.com", two
# addresses without a comma): in angle brackets first, else the first bare one.
_BRACKETED = re.compile(r"<\s*([^<>\s@]+@[^<>\s@]+)\s*>")
_BARE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# What staff may need to see about a mail besides its text; the body stays in the raw bytes.
_HEADERS_KEPT = {
    "from": "From",
    "to": "To",
    "cc": "Cc",
    "reply_to": "Reply-To",
    "sender": "Sender",
    "date": "Date",
    "in_reply_to": "In-Reply-To",
    "return_path": "Return-Path",
    "auto_submitted": "Auto-Submitted",
    "precedence": "Precedence",
    "list_id": "List-Id",
    "x_mailer": "X-Mailer",
    "user_agent": "User-Agent",
}
_HEADER_KEPT_CHARS = 500


class _RawHeaders(EmailPolicy):
    """`policy.default`, except that a header is fetched as the sender wrote it (unfolded) rather than
    through the header registry, which turns GBK bytes into U+FFFD, leaves encoded words inside quotes
    alone and raises on some malformed headers; `text.header` reads it instead."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value.replace("\r", "").replace("\n", "").strip()


_POLICY = _RawHeaders()


class MailError(ValueError):
    """The bytes are not a usable e-mail at all; the message is the reason shown to staff."""


def message_key(raw: bytes, message_id: str | None) -> str:
    """The idempotency key: the Message-ID, else a hash of the raw message (a sender without one)."""
    if message_id:
        return message_id
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def parse_mail(raw: bytes, received_at: datetime) -> InboundMessage:
    """One raw RFC 5322 message. `received_at` is when our server got it (used when Date is absent
    or absurd). Raises `MailError` only when nothing usable can be read."""
    if len(raw) > MAX_BYTES:
        raise MailError(f"{len(raw)} bytes, over the limit of {MAX_BYTES}")
    try:
        return _parse(raw, received_at)
    except RecursionError:  # the email package recurses once per multipart level
        raise MailError("parts nested too deeply to read") from None


def _parse(raw: bytes, received_at: datetime) -> InboundMessage:
    msg = _message(raw)
    problems: list[str] = []
    name, address = _sender(msg, problems)
    message_id = _id_header(msg, "Message-ID")
    if message_id is not None and not message_id.strip("<>@ "):
        message_id = None  # "<>" from a broken mailer would make all its mail one message
    body = read_body(msg)
    text, trimmed = trim_quoted(body.text)
    problems += body.notes
    if len(text) > MAX_TEXT:
        problems.append(f"text of {len(text)} characters cut to {MAX_TEXT}")
        text = text[: MAX_TEXT - 1] + "…"
    replied = _ids(_id_header(msg, "In-Reply-To"))
    references = _ids(_id_header(msg, "References"))[-MAX_REFERENCES:]
    subject = header(msg, "Subject")
    _sent_at(msg, received_at, problems)  # a Date that makes no sense is noted for staff
    problems += sorted({type(defect).__name__ for part in msg.walk() for defect in part.defects})
    return InboundMessage(
        channel="email",
        external_id=message_key(raw, message_id),
        sender_id=address,
        text=text,
        # Our server's time of arrival, not the sender's Date: that one is the sender's say-so, and
        # trusting it would let a flood date itself out of the hourly limit (the Date stays in `raw`).
        received_at=received_at,
        sender_name=name,
        email=address,
        # In-Reply-To names the mail answered; a program that writes only References puts it last.
        reply_to=replied[0] if replied else (references[-1] if references else None),
        references=tuple(references),
        subject=subject,
        attachments=tuple(body.files),
        raw=_raw(msg, message_id, trimmed, body.from_html, problems),
        auto_reply=auto_reply_reason(msg, address, subject),
        # A From header is the sender's say-so: the reader believes it only when our mail server vouches
        # for it, and intake when the mail answers one we sent to that address.
        sender_verified=False,
    )


def attachment_bytes(raw: bytes, ref: str) -> bytes | None:
    """The content of the attachment `parse_mail` gave the `ref` "mime:N", for the caller to store;
    None for a ref that names no part of this mail (or "too-large")."""
    if ref == TOO_LARGE:
        return None
    part = part_at(_message(raw), ref)
    return part_bytes(part) if part is not None else None


def _message(raw: bytes) -> Message:
    if not raw.strip():
        raise MailError("empty message")
    if not _HEADER_LINE.match(raw) and not raw.startswith(b"From "):
        # A blank line or a mangled line before the headers would make the parser take the whole mail
        # for a body: read from the first line that is a header.
        found = _HEADER_LINE.search(raw, 0, _HEADER_SEARCH)
        raw = raw[found.start() :] if found is not None else raw
    msg = email.message_from_bytes(_unfold_stray_lines(raw), policy=_POLICY)
    if not msg.keys():
        raise MailError(f"no header lines: not an e-mail (starts {raw[:40]!r})")
    return msg


def _unfold_stray_lines(raw: bytes) -> bytes:
    """Headers with a line between them that has no name: a value folded without the indent (web
    forms write these) or a junk line. The parser would end the headers there and lose the From below;
    such a line is read as part of the header above it. `policy.default` ends the headers there."""
    end = raw.find(b"\n\n")
    end2 = raw.find(b"\n\r\n")
    end = min(e for e in (end, end2, len(raw)) if e >= 0)
    lines = raw[:end].split(b"\n")
    named = [bool(_HEADER_START.match(line)) or line.startswith((b" ", b"\t")) for line in lines]
    if all(named[1:]):
        return raw
    known = [bool(_KNOWN_HEADER.match(line)) for line in lines]
    for i in range(1, len(lines)):
        if not named[i] and any(known[i + 1 : i + 1 + _STRAY_LINES]) and named[i - 1]:
            lines[i] = b" " + lines[i]
            named[i] = True
    return b"\n".join(lines) + raw[end:]


def _sender(msg: Message, problems: list[str]) -> tuple[str | None, str]:
    """The display name and lower-case address of the first From address, else of Sender or Reply-To
    (a sloppy web form), else the envelope's address (Return-Path, an mbox "From " line). Encoded words
    are decoded after the address is split off, so that a decoded name holding "," or "<" cannot break
    it; raw 8-bit bytes are read in the body's charset."""
    charset = body_charset(msg)
    for field in ("From", "Sender", "Reply-To", "Return-Path", "envelope"):
        value = unbytes(
            str(msg.get(field) or "") if field != "envelope" else msg.get_unixfrom() or "", charset
        )
        # Some mailers encode the whole "name <address>" as one encoded word.
        found = _address(value) or _address(decode_words(value, charset))
        if found is None:
            continue
        name, address, recovered = found
        if field != "From":
            problems.append(f"no address in From, {field} used")
        elif recovered:
            problems.append("From not in the standard form, its address taken as found")
        if field in ("Return-Path", "envelope"):
            name = ""  # an envelope names no one
        shown = " ".join(decode_words(name, charset).split()).strip("\"' ,<>")
        return shown or None, address
    raise MailError(f"no sender address in From: {str(header(msg, 'From') or '')[:100]!r}")


def _address(value: str) -> tuple[str, str, bool] | None:
    """The first usable (name, address) of a header, and whether it had to be dug out of a value the
    address parser cannot read (`policy.default` gives no address or a wrong one for those)."""
    for name, address in getaddresses([value]):
        address = address.strip().lower()
        local, at, domain = address.rpartition("@")
        if at and local and domain and not any(ch.isspace() for ch in address):
            return name, address, False
    found = _BRACKETED.search(value) or _BARE.search(value)
    if found is None:
        return None
    address = (found.group(1) if found.re is _BRACKETED else found.group(0)).lower()
    return value[: found.start()], address, True


def _id_header(msg: Message, name: str) -> str | None:
    """A header of Message-IDs as written: never read as encoded words, since an id must match the
    same id elsewhere byte for byte."""
    value = msg.get(name)
    text = " ".join(clean(unbytes(str(value))).split()) if value is not None else ""
    return text or None


def _ids(value: str | None) -> list[str]:
    """Message-IDs in In-Reply-To or References; a lone id without brackets is taken as written."""
    if not value:
        return []
    found = _MESSAGE_IDS.findall(value)
    if found:
        return found
    return [value] if "@" in value and " " not in value else []


def _sent_at(msg: Message, received_at: datetime, problems: list[str]) -> datetime:
    value = header(msg, "Date")
    if value is None:
        return received_at
    try:
        sent = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        problems.append(f"unreadable Date: {value[:80]}")
        return received_at
    if sent.tzinfo is None or not received_at - _DATE_BEFORE <= sent <= received_at + _DATE_AFTER:
        problems.append(f"implausible Date: {value[:80]}")
        return received_at
    return min(sent, received_at)


def _raw(
    msg: Message, message_id: str | None, trimmed: bool, from_html: bool, problems: list[str]
) -> dict[str, Any]:
    kept: dict[str, Any] = {"message_id": message_id}
    for key, name in _HEADERS_KEPT.items():
        value = header(msg, name)
        if value is not None:
            kept[key] = value[:_HEADER_KEPT_CHARS]
    results = msg.get_all("Authentication-Results") or []
    if results:  # topmost first, as the servers on the way prepended them (channels.mail.trust)
        kept["authentication_results"] = [str(value)[:_HEADER_KEPT_CHARS] for value in results[:5]]
    kept["content_type"] = content_type(msg)
    if trimmed:
        kept["quote_trimmed"] = True
    if from_html:
        kept["from_html"] = True
    if problems:
        kept["problems"] = problems[:20]
    return kept
