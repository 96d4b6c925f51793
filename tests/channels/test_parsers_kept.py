"""Arbitrary and mutated input through the real routes and handlers, into the database: nothing crashes
the service (no 500, no exception out of a handler), and what cannot be used is kept with its reason.

A few examples each (Hypothesis, derandomized), on SQLite only: each example is a real request and a
real transaction. `test_parsers_fuzz.py` covers many more inputs against the pure parsers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import mailbox
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.staff_commands import StaffCommands
from bot.web import create_app
from channels.mail.maildir import MaildirSource
from channels.mail.parse import MailError, parse_mail
from channels.mail.reader import MailReader
from channels.telegram.events import LearnerMessage, StaffCommand, Unusable
from channels.telegram.parse import parse_update
from channels.telegram.updates import TelegramUpdates, staff_request
from channels.voicemail.spool import SpoolInbox
from channels.voicemail.webhook import voicemail_webhook
from channels.wechat import parse as wechat
from channels.wechat.webhook import WeChatWebhook
from core.context import CoreContext
from core.intake.intake import Intake
from core.messages import storage_key
from core.storage.delivery_models import OutboxRow, Unparsed
from core.storage.models import Message
from core.tickets.staff import add_staff
from core.tickets.staff_requests import StaffRooms
from tests.channels.test_parsers_fuzz import (
    MAIL_SAMPLES,
    TELEGRAM_SAMPLES,
    TRANSCRIPT,
    TWILIO,
    WECHAT_SAMPLES,
    json_values,
    mutated,
    mutated_json,
)
from tests.channels.wechat import signing
from tests.conftest import Database

NOW = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
SECRET = "voicemail-shared-secret"
TWILIO_TOKEN, TWILIO_HEADER = "twilio-auth-token", "X-Twilio-Signature"
STAFF_CHAT, TEACHER = -1000, 9001
MESSAGE_IDS = itertools.count(1)
REAL_PATH = settings(
    max_examples=12,
    derandomize=True,
    database=None,  # nothing remembered between runs: the same examples everywhere
    deadline=None,
    # The database is shared by the examples on purpose: what one kept, a later one may meet again.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def sqlite_only(db: Database) -> None:
    if db.backend != "sqlite":
        pytest.skip("a property test per backend would only double the time; the paths are the same")


@pytest.fixture
async def client(sqlite_only: None, intake: Intake, core: CoreContext) -> AsyncIterator[httpx.AsyncClient]:
    webhook = WeChatWebhook(
        intake,
        core,
        token=signing.TOKEN,
        app_id=signing.APP_ID,
        encoding_aes_key=signing.ENCODING_AES_KEY,
        clock=lambda: NOW,
    )
    voicemail = voicemail_webhook(
        intake, core, secret=SECRET, twilio_auth_token=TWILIO_TOKEN, clock=lambda: NOW
    )
    # An account in plaintext mode (no EncodingAESKey) beside the one in safe mode.
    plain = WeChatWebhook(intake, core, token=signing.TOKEN, app_id=signing.APP_ID, clock=lambda: NOW)
    routes = [*webhook.routes(), *plain.routes("/wechat-plain"), voicemail]
    transport = httpx.ASGITransport(app=create_app(core, routes))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
    await webhook.wait_idle()
    await plain.wait_idle()


async def kept_reason(core: CoreContext, channel: str, key: str) -> str | None:
    async with core.sessions() as session:
        return await session.scalar(
            select(Unparsed.reason).where(
                Unparsed.channel == channel, Unparsed.external_id == storage_key(key)
            )
        )


async def has_message(core: CoreContext, channel: str, external_id: str) -> bool:
    async with core.sessions() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.channel == channel, Message.external_id == storage_key(external_id))
        )
    return bool(found)


@REAL_PATH
@given(
    plain=st.text(max_size=200) | mutated(WECHAT_SAMPLES).map(lambda b: b.decode("utf-8", "replace")),
    mode=st.sampled_from(["safe", "plaintext"]),
)
async def test_a_signed_wechat_push_of_any_content_is_taken_kept_or_refused(
    client: httpx.AsyncClient, core: CoreContext, plain: str, mode: str
) -> None:
    signed = signing.push(plain, mode, timestamp=TS)
    path = "/wechat" if mode == "safe" else "/wechat-plain"
    response = await client.post(path, params=signed.params, content=signed.body)
    try:
        fields = wechat.read_xml(plain.encode())
    except wechat.UnsafeXml:  # a document type or entity: refused before any parsing, nothing stored
        assert response.status_code == 400
        return
    except wechat.BadXml:
        fields = None
    assert response.status_code == 200, response.text
    if fields is None:
        assert await kept_reason(core, "wechat", f"xml:{hashlib.sha256(signed.body).hexdigest()}")
        return
    if mode == "plaintext" and "MsgType" not in fields and "Encrypt" in fields:
        # Looks sealed, but this account has no key to open it: kept for the operator to see.
        assert await kept_reason(core, "wechat", f"xml:{hashlib.sha256(signed.body).hexdigest()}")
        return
    push = wechat.parse_push(fields, received_at=NOW)
    if isinstance(push, wechat.Unusable):
        assert await kept_reason(core, "wechat", push.key)
    elif isinstance(push, wechat.Complaint):
        key = push.message.external_id  # taken in, or kept aside by intake (an id another sender used)
        assert await has_message(core, "wechat", key) or await kept_reason(core, "wechat", key)


def voicemail_headers(body: bytes) -> dict[str, str]:
    signature = hmac.new(SECRET.encode(), f"{TS}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Voicemail-Timestamp": str(TS), "X-Voicemail-Signature": signature}


@REAL_PATH
@given(
    body=st.binary(max_size=300)
    | mutated([json.dumps(TRANSCRIPT, ensure_ascii=False).encode()])
    | mutated_json([TRANSCRIPT]).map(lambda d: json.dumps(d, ensure_ascii=False).encode())
)
async def test_a_signed_voicemail_post_of_any_body_is_taken_or_kept(
    client: httpx.AsyncClient, core: CoreContext, body: bytes
) -> None:
    response = await client.post("/voicemail", content=body, headers=voicemail_headers(body))
    assert response.status_code in (200, 409, 422), response.text
    if response.status_code == 422:  # unusable: kept under the body's hash, with the reason it was given
        reason = await kept_reason(core, "voicemail", f"webhook:{hashlib.sha256(body).hexdigest()}")
        assert reason and reason == response.json()["error"]


@REAL_PATH
@given(
    form=st.dictionaries(
        st.sampled_from(["RecordingSid", "From", "TranscriptionText", "Other"]), st.text(), min_size=1
    )
    | st.builds(lambda extra: {**TWILIO, **extra}, st.dictionaries(st.sampled_from(list(TWILIO)), st.text()))
)
async def test_a_signed_twilio_form_of_any_content_is_taken_or_kept(
    client: httpx.AsyncClient, core: CoreContext, form: dict[str, str]
) -> None:
    response = await client.post("/voicemail", data=form, headers={TWILIO_HEADER: twilio_signature(form)})
    assert response.status_code in (200, 409, 422), response.text
    if response.status_code == 422:
        body = urlencode(form).encode()
        reason = await kept_reason(core, "voicemail", f"webhook:{hashlib.sha256(body).hexdigest()}")
        assert reason and reason == response.json()["error"]


def twilio_signature(form: dict[str, str]) -> str:
    """Twilio's: base64 HMAC-SHA1 over the URL it called and each parameter, in name order."""
    signed = "http://testserver/voicemail" + "".join(name + value for name, value in sorted(form.items()))
    return base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), signed.encode(), hashlib.sha1).digest()).decode()


async def _rows(core: CoreContext) -> tuple[int, int]:
    async with core.sessions() as session:
        unparsed = await session.scalar(select(func.count()).select_from(Unparsed)) or 0
        messages = await session.scalar(select(func.count()).select_from(Message)) or 0
    return unparsed, messages


@pytest.fixture
async def telegram(sqlite_only: None, core: CoreContext, intake: Intake) -> TelegramUpdates:
    async with core.sessions() as session, session.begin():
        await add_staff(
            session, name="王老师", department="service", role="staff", now=NOW, telegram_id=str(TEACHER)
        )
    chats = StaffRooms.on("telegram", departments={"service": STAFF_CHAT}, default=STAFF_CHAT, managers=None)

    async def answer(callback_id: str, text: str) -> None:
        pass

    return TelegramUpdates(core, intake, StaffCommands(core, chats, answer, intake), clock=lambda: NOW)


@REAL_PATH
@given(update=json_values | mutated_json(TELEGRAM_SAMPLES))
async def test_a_telegram_update_of_any_shape_is_taken_or_kept(
    telegram: TelegramUpdates, core: CoreContext, update: Any
) -> None:
    update = update if isinstance(update, dict) else {"update_id": update}
    event = parse_update(update, received_at=NOW)
    await telegram(update)  # raises nothing: the poller would otherwise fetch it again and again
    if isinstance(event, Unusable):
        assert await kept_reason(core, "telegram", event.external_id)
    elif isinstance(event, LearnerMessage):  # taken in, or kept aside by intake (an id reused)
        key = event.message.external_id
        assert await has_message(core, "telegram", key) or await kept_reason(core, "telegram", key)


@REAL_PATH
@given(
    command=st.sampled_from(["claim", "reply", "assign", "show", "rate", "log", "find", "x"]), args=st.text()
)
async def test_any_staff_command_is_answered_and_crashes_nothing(
    telegram: TelegramUpdates, core: CoreContext, command: str, args: str
) -> None:
    message_id = next(MESSAGE_IDS)
    event = StaffCommand(
        command, args.strip(), STAFF_CHAT, TEACHER, "王老师", None, None, message_id, message_id
    )
    before = await _answers(core)
    await telegram.staff(staff_request(event), NOW)  # a refusal is an answer, never an exception
    assert await _answers(core) > before  # and every command is answered, if only with a refusal


async def _answers(core: CoreContext) -> int:
    async with core.sessions() as session:
        return await session.scalar(select(func.count()).select_from(OutboxRow)) or 0


@REAL_PATH
@given(raw=st.binary(max_size=600) | mutated(MAIL_SAMPLES))
async def test_a_mail_of_any_bytes_is_taken_or_kept_and_marked_done(
    sqlite_only: None, tmp_path: Path, core: CoreContext, intake: Intake, raw: bytes
) -> None:
    folder = tmp_path / f"mail-{next(MESSAGE_IDS)}"
    box = mailbox.Maildir(folder, create=True)
    box.add(mailbox.MaildirMessage(raw))
    kept_before = (await _rows(core))[0]
    report = await MaildirSource(folder, MailReader(intake, core)).fetch_once(NOW)
    assert (report.taken + report.duplicates + report.kept, report.left) == (1, 0)
    assert not list((folder / "new").iterdir())  # done with: marked seen
    try:
        parse_mail(raw, NOW)
    except MailError:  # not an e-mail at all: kept raw with the reason
        assert report.kept == 1
    if report.kept:
        assert (await _rows(core))[0] == kept_before + 1
        async with core.sessions() as session:
            last = await session.scalar(select(Unparsed).order_by(Unparsed.id.desc()).limit(1))
        assert last is not None and last.channel == "email" and last.reason


@REAL_PATH
@given(
    body=st.binary(max_size=300)
    | mutated([json.dumps(TRANSCRIPT, ensure_ascii=False).encode()])
    | mutated_json([TRANSCRIPT]).map(lambda d: json.dumps(d, ensure_ascii=False).encode())
)
async def test_a_spool_file_of_any_content_is_taken_or_moved_aside_with_its_reason(
    sqlite_only: None, tmp_path: Path, core: CoreContext, intake: Intake, body: bytes
) -> None:
    spool = tmp_path / "spool"
    inbox = SpoolInbox(spool, intake, core)
    name = f"vm-{next(MESSAGE_IDS)}.json"
    inbox.ensure_dirs()  # as the service does at start
    (spool / "tmp" / name).write_bytes(body)
    (spool / "tmp" / name).rename(spool / "new" / name)
    report = await inbox.scan_once(NOW)
    assert (report.taken + report.duplicates + report.failed, report.left) == (1, 0)
    if report.failed:
        assert (spool / "failed" / name).read_bytes() == body  # the file itself, untouched
        assert (spool / "failed" / f"{name}.reason").read_text(encoding="utf-8").strip()
    else:
        assert (spool / "cur" / name).read_bytes() == body
