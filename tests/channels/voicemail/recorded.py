"""The recorded payloads in `payloads/`: transcripts as an Asterisk voicemail job writes them (JSON of
INTERFACES.md, to the spool or `POST /voicemail`) and Twilio's transcription callbacks (form posts).

    fields = transcript("asterisk_minimal", external_id="c2")   # a sample, with a test's own changes
    form = twilio("twilio_failed")                               # the callback's fields, decoded

`asterisk_minimal` has the required fields only, `asterisk_full` every optional one too (and a caller
and text as written by the PBX, spaced out); `_pending`, `_failed` and `_withheld` are the other states.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

PAYLOADS = Path(__file__).parent / "payloads"
TRANSCRIPTS = sorted(path.stem for path in PAYLOADS.glob("*.json"))
CALLBACKS = sorted(path.stem for path in PAYLOADS.glob("*.form"))


def body(name: str) -> bytes:
    """The payload's bytes as they are posted or dropped in the spool."""
    return next(PAYLOADS.glob(f"{name}.*")).read_bytes()


def transcript(name: str, **changes: Any) -> dict[str, Any]:
    """A recorded transcript's fields with `changes`; a change to None leaves the field out."""
    fields: dict[str, Any] = json.loads(body(name)) | changes
    return {key: value for key, value in fields.items() if value is not None}


def twilio(name: str, **changes: str) -> dict[str, str]:
    """A recorded Twilio callback's form fields with `changes`."""
    return dict(parse_qsl(body(name).decode(), keep_blank_values=True, strict_parsing=True)) | changes
