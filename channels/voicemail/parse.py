"""Voicemail transcripts (INTERFACES.md, "Voicemail transcripts") into `InboundMessage`s.

Pure functions, no I/O. One format for both ways in (spool file, `POST /voicemail`), plus Twilio's
form-encoded transcription callback. The idempotency key is `(source, external_id)`, so the same
voicemail delivered by a file and by the webhook is one message. A transcript that is empty or
failed is still a complaint: the call-back is then the only way to learn what it is about.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.messages import Attachment, InboundMessage

SCHEMA_VERSION = 1
MAX_BYTES = 256 * 1024  # a transcript is a few kB; anything this large is not one
STATUSES = ("completed", "failed", "pending")
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "source": str,
    "external_id": str,
    "caller": str,
    "received_at": str,
    "transcript": str,
    "transcript_status": str,
    "duration_s": (int, float),
}
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "mailbox": str,
    "caller_name": str,
    "call_id": str,
    "language": str,
    "confidence": (int, float),
    "audio_url": str,
}
_SOURCE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
# What telephony systems put in the caller field when the number is withheld.
_WITHHELD = {"", "anonymous", "unknown", "private", "restricted", "unavailable", "withheld"}


class VoicemailError(ValueError):
    """The input is not a usable transcript; the message is the reason shown to staff."""


def parse_transcript(body: bytes) -> InboundMessage:
    """A transcript as JSON bytes (a spool file or a webhook body)."""
    if len(body) > MAX_BYTES:
        raise VoicemailError(f"{len(body)} bytes, over the limit of {MAX_BYTES}")
    try:
        # A byte-order mark is what some Windows speech-to-text jobs write first; it is not an error.
        data = json.loads(body.decode("utf-8-sig"))
    except (ValueError, RecursionError) as exc:  # also bytes that are not UTF-8
        raise VoicemailError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise VoicemailError(f"not a JSON object but {type(data).__name__}")
    return from_fields(data)


def from_fields(data: Mapping[str, Any]) -> InboundMessage:
    """A transcript already decoded; every field is checked, every problem named."""
    problems = [_check(data, name, kind, required=True) for name, kind in _REQUIRED.items()]
    problems += [_check(data, name, kind, required=False) for name, kind in _OPTIONAL.items()]
    found = [p for p in problems if p]
    if found:
        raise VoicemailError("; ".join(found))
    if data["schema_version"] != SCHEMA_VERSION:
        raise VoicemailError(f"schema_version {data['schema_version']} is not {SCHEMA_VERSION}")
    source = data["source"].strip().lower()
    if not _SOURCE.fullmatch(source):
        raise VoicemailError(f"source {data['source']!r} is not a short name like 'asterisk' or 'twilio'")
    external_id = data["external_id"].strip()
    if not external_id:
        raise VoicemailError("external_id is empty")
    status = data["transcript_status"]
    if status not in STATUSES:
        raise VoicemailError(f"transcript_status {status!r} is not one of {', '.join(STATUSES)}")
    try:
        received_at = datetime.fromisoformat(data["received_at"])
    except ValueError:
        raise VoicemailError(f"received_at {data['received_at']!r} is not ISO-8601") from None
    if received_at.tzinfo is None:
        raise VoicemailError(f"received_at {data['received_at']!r} has no UTC offset")
    if not math.isfinite(data["duration_s"]) or data["duration_s"] < 0:
        raise VoicemailError(f"duration_s {data['duration_s']} is not a length of time")
    if not math.isfinite(data.get("confidence") or 0):
        raise VoicemailError(f"confidence {data['confidence']} is not a number")
    audio = data.get("audio_url")
    return message(
        source=source,
        external_id=external_id,
        caller=data["caller"],
        received_at=received_at,
        transcript=data["transcript"] if status == "completed" else "",
        status=status,
        raw=data,
        caller_name=(data.get("caller_name") or "").strip() or None,
        attachments=(Attachment(kind="audio", ref=audio, mime=None),) if audio else (),
    )


def parse_twilio(form: Mapping[str, str], received_at: datetime) -> InboundMessage:
    """Twilio's transcription callback. It carries no time of the call, so the caller gives
    `received_at` (when the callback arrived, a few minutes after the call)."""
    missing = [name for name in ("RecordingSid", "From") if not form.get(name, "").strip()]
    if missing:
        raise VoicemailError(f"Twilio callback without {', '.join(missing)}")
    status = form.get("TranscriptionStatus", "")
    recording = form.get("RecordingUrl", "").strip()
    return message(
        source="twilio",
        external_id=form["RecordingSid"].strip(),
        caller=form["From"],
        received_at=received_at,
        transcript=form.get("TranscriptionText", "") if status == "completed" else "",
        status="completed" if status == "completed" else "failed",
        raw=dict(form),
        attachments=(Attachment(kind="audio", ref=recording),) if recording else (),
    )


def message(
    *,
    source: str,
    external_id: str,
    caller: str,
    received_at: datetime,
    transcript: str,
    raw: Mapping[str, Any],
    status: str = "completed",
    caller_name: str | None = None,
    attachments: tuple[Attachment, ...] = (),
) -> InboundMessage:
    key = f"{source}:{external_id}"
    phone = caller_phone(caller)
    # A "pending" transcript opens the ticket at once (the call-back clock runs from the call); the
    # finished transcript of the same voicemail is another message that answers it, so it joins that
    # ticket instead of being dropped as a redelivery. Either may arrive first.
    own, answers = (f"{key}#pending", key) if status == "pending" else (key, f"{key}#pending")
    return InboundMessage(
        channel="voicemail",
        external_id=own,
        reply_to=answers,
        # A withheld number is nobody's address: each such call is its own caller, never linked.
        sender_id=phone if phone else f"withheld:{key}",
        text=transcript.strip(),
        received_at=received_at,
        sender_name=caller_name,
        phone=phone,
        attachments=attachments,
        raw=dict(raw),
        sender_verified=False,  # a caller ID is whatever the caller's network says: anyone can set it
    )


def caller_phone(caller: str) -> str | None:
    """The caller's number as dialled back ("+8613800138000", "02150001234"), or None when withheld."""
    text = unicodedata.normalize("NFKC", caller).strip()
    if text.lower() in _WITHHELD:
        return None
    kept = "".join(ch for ch in text if ch.isdigit() or ch == "+")
    digits = kept.lstrip("+")
    if not digits.isdigit() or not 3 <= len(digits) <= 20:
        return None
    return ("+" if kept.startswith("+") else "") + digits


def _check(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool) -> str:
    if name not in data or (not required and data[name] is None):
        return f"missing field {name}" if required else ""
    value = data[name]
    # JSON true/false are ints to Python; they are never a number here.
    if isinstance(value, bool) or not isinstance(value, kind):
        wanted = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
        return f"{name} must be {wanted}, not {type(value).__name__}"
    return ""
