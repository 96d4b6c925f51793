"""The regression corpus in `data/corpus/`: mail as the world writes it (Western charsets declared or
not, encoded words as Outlook and Eudora write them, raw 8-bit headers, senders without angle brackets
or after a broken header line, Japanese and Korean, reply attributions in many languages, and the
Chinese mail that must stay right). `manifest.json` holds what each message says, written from the text
itself; the first test reads every message and compares, the second compares our reading with the
standard library's (`email` with `policy.default`) and fails on any difference that the manifest does
not list as deliberate, with its reason.
"""

from __future__ import annotations

import email
import json
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from channels.mail.htmltext import html_to_text
from channels.mail.parse import parse_mail
from channels.mail.quotes import trim_quoted
from core.messages import InboundMessage

CORPUS = Path(__file__).parent / "data" / "corpus"
CASES: list[dict[str, Any]] = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
FIELDS = ("sender", "name", "subject", "text", "files")
CLASSES = {"western", "words", "raw8bit", "sender", "cjk", "attribution", "chinese"}


def ours(case: dict[str, Any]) -> dict[str, Any]:
    message: InboundMessage = parse_mail((CORPUS / case["file"]).read_bytes(), NOW)
    return {
        "sender": message.sender_id,
        "name": message.sender_name,
        "subject": message.subject,
        "text": message.text,
        "files": [attachment.name for attachment in message.attachments],
    }


def standard(case: dict[str, Any]) -> dict[str, Any]:
    """What `policy.default` reads, put the way we put it (one-line headers, lower-case addresses,
    HTML as text, the quoted original trimmed): only the decoding is compared."""
    msg = email.message_from_bytes((CORPUS / case["file"]).read_bytes(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    sender = name = None
    try:
        addresses = msg["From"].addresses if msg["From"] is not None else ()
    except (IndexError, ValueError, AttributeError):  # the registry gives up on some From values
        addresses = ()
    if addresses:
        sender = addresses[0].addr_spec.lower() or None
        name = " ".join(addresses[0].display_name.split()) or None
    subject = " ".join(str(msg["Subject"]).split()) if msg["Subject"] is not None else None
    body = msg.get_body(("plain", "html"))
    text = ""
    if body is not None:
        try:
            content = body.get_content()
        except (LookupError, UnicodeError):
            content = ""
        text = content.replace("\r\n", "\n").strip()
        if body.get_content_type() == "text/html":
            text = html_to_text(text)
        text = trim_quoted(text)[0]
    files = [part.get_filename() for part in msg.iter_attachments()]
    return {"sender": sender, "name": name, "subject": subject or None, "text": text, "files": files}


def test_the_corpus_covers_every_class_with_over_a_hundred_messages() -> None:
    assert len(CASES) >= 100
    assert {case["class"] for case in CASES} == CLASSES
    assert sorted(case["file"] for case in CASES) == sorted(p.name for p in CORPUS.glob("*.eml"))


@pytest.mark.parametrize("case", CASES, ids=[case["file"] for case in CASES])
def test_every_message_reads_as_written(case: dict[str, Any]) -> None:
    read = ours(case)
    assert read == {field: case[field] for field in FIELDS}
    assert "\ufffd" not in json.dumps(read, ensure_ascii=False)
    if "untrimmed" in case:  # what was trimmed is the quoted original, not the learner's words
        assert trim_quoted(case["untrimmed"]) == (case["text"], True)


@pytest.mark.parametrize("case", CASES, ids=[case["file"] for case in CASES])
def test_where_we_differ_from_the_standard_library_is_deliberate(case: dict[str, Any]) -> None:
    read, standard_read = ours(case), standard(case)
    differ = {field for field in FIELDS if read[field] != standard_read[field]}
    listed = set(case["deliberate"])
    unexplained = {field: (read[field], standard_read[field]) for field in differ - listed}
    assert not unexplained, f"differences not listed as deliberate: {unexplained}"
    assert not listed - differ, f"listed as deliberate but the same: {sorted(listed - differ)}"
