"""`POST /voicemail`: signed transcripts and Twilio's transcription callback become tickets.

The bodies are the recorded ones of `payloads/` (`recorded`), posted as they are or with a test's changes.

Signatures are built here straight from the documented algorithms (ours in INTERFACES.md, Twilio's
"validating requests"), not with the code under test; the app runs in-process via `httpx.ASGITransport`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from bot.app import channel_report
from bot.config import Settings
from bot.web import create_app
from channels.voicemail.parse import MAX_BYTES
from channels.voicemail.webhook import voicemail_webhook
from core.context import CoreContext
from core.intake.intake import Intake
from core.storage.delivery_models import OutboxRow, Unparsed
from core.storage.models import Base, Clock, LearnerIdentity, Message, Ticket
from tests.channels.voicemail import recorded

SECRET = "voicemail-shared-secret"
TWILIO_TOKEN = "0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a working day
URL = "http://testserver/voicemail"
CALLER = recorded.transcript("asterisk_minimal")["caller"]  # Twilio's callback is from the same number
COMPLAINT = recorded.transcript("asterisk_minimal")["transcript"]
RECORDING = recorded.twilio("twilio_completed")["RecordingSid"]


def transcript(**changes: Any) -> dict[str, Any]:
    return recorded.transcript("asterisk_minimal", **changes)


def signed(body: bytes, *, secret: str = SECRET, at: datetime = NOW) -> dict[str, str]:
    """Our producers' headers: hex HMAC-SHA256 of `timestamp + "." + body`."""
    timestamp = str(int(at.timestamp()))
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Voicemail-Signature": digest,
        "X-Voicemail-Timestamp": timestamp,
    }


def twilio_signature(url: str, params: Mapping[str, str], token: str = TWILIO_TOKEN) -> str:
    """Twilio's: base64 HMAC-SHA1 of the URL followed by each parameter's name and value, by name."""
    data = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def twilio_form(**changes: str) -> dict[str, str]:
    return recorded.twilio("twilio_completed", **changes)


@dataclass
class Rig:
    core: CoreContext
    client: httpx.AsyncClient

    async def post_json(self, fields: Mapping[str, Any] | bytes, **sign: Any) -> httpx.Response:
        """Fields, or a recorded body as it is."""
        body = fields if isinstance(fields, bytes) else json.dumps(fields, ensure_ascii=False).encode()
        return await self.client.post("/voicemail", content=body, headers=signed(body, **sign))

    async def post_twilio(
        self, form: Mapping[str, str] | bytes, signature: str | None = None, path: str = "/voicemail"
    ) -> httpx.Response:
        """Form fields, or a recorded body as it is, signed as Twilio signs (unless `signature` is given)."""
        body = form if isinstance(form, bytes) else urlencode(form).encode()
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        headers["X-Twilio-Signature"] = signature or twilio_signature(f"http://testserver{path}", fields)
        return await self.client.post(path, content=body, headers=headers)

    async def snapshot(self) -> dict[str, int]:
        """Rows per table: "nothing stored" means this does not change."""
        async with self.core.sessions() as session:
            return {
                table.name: await session.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables
            }

    async def tickets(self) -> list[Ticket]:
        async with self.core.sessions() as session:
            return list(await session.scalars(select(Ticket)))

    async def unparsed(self) -> list[Unparsed]:
        async with self.core.sessions() as session:
            return list(await session.scalars(select(Unparsed)))


Serve = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def serve(intake: Intake, core: CoreContext) -> AsyncIterator[Serve]:
    """Builds the app around one `voicemail_webhook(...)`, by default with both secrets and a fixed clock."""
    clients: list[httpx.AsyncClient] = []

    async def build(**options: Any) -> Rig:
        defaults: dict[str, Any] = {"secret": SECRET, "twilio_auth_token": TWILIO_TOKEN, "clock": lambda: NOW}
        app = create_app(core, [voicemail_webhook(intake, core, **(defaults | options))])
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        clients.append(client)
        return Rig(core, client)

    yield build
    for client in clients:
        await client.aclose()


@pytest.fixture
async def rig(serve: Serve) -> Rig:
    return await serve()


async def test_a_signed_transcript_opens_a_voicemail_ticket_with_a_call_back_clock(rig: Rig) -> None:
    response = await rig.post_json(recorded.body("asterisk_minimal"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["ok"] is True and answer["created"] is True and answer["duplicate"] is False
    assert answer["ticket"].startswith("TS-260930-")
    (ticket,) = await rig.tickets()
    assert (ticket.number, ticket.channel) == (answer["ticket"], "voicemail")
    async with rig.core.sessions() as session:
        message = await session.scalar(select(Message).where(Message.ticket_id == ticket.id))
        stages = set(await session.scalars(select(Clock.stage).where(Clock.ticket_id == ticket.id)))
    assert message is not None and rig.core.vault.decrypt(message.text_enc) == COMPLAINT
    assert "callback" in stages


async def test_the_same_voicemail_posted_twice_is_one_ticket(rig: Rig) -> None:
    first = (await rig.post_json(transcript())).json()
    before = await rig.snapshot()
    again = await rig.post_json(transcript())
    assert again.status_code == 200, again.text
    assert again.json() == {"ok": True, "ticket": first["ticket"], "created": False, "duplicate": True}
    assert await rig.snapshot() == before


async def test_a_concurrent_pair_of_deliveries_is_one_ticket(rig: Rig) -> None:
    responses = await asyncio.gather(rig.post_json(transcript()), rig.post_json(transcript()))
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    answers = [r.json() for r in responses]
    assert answers[0]["ticket"] == answers[1]["ticket"]
    assert sorted(a["created"] for a in answers) == [False, True]
    assert len(await rig.tickets()) == 1


def _forged(body: bytes) -> dict[str, str]:
    return signed(body) | {"X-Voicemail-Signature": signed(body + b" ")["X-Voicemail-Signature"]}


def _without(*names: str) -> Callable[[bytes], dict[str, str]]:
    return lambda body: {k: v for k, v in signed(body).items() if k not in names}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(_forged, id="forged-signature"),
        pytest.param(lambda body: signed(body, secret="another-secret"), id="wrong-secret"),
        pytest.param(_without("X-Voicemail-Signature"), id="no-signature"),
        pytest.param(_without("X-Voicemail-Timestamp"), id="no-timestamp"),
        pytest.param(_without("X-Voicemail-Signature", "X-Voicemail-Timestamp"), id="no-headers"),
        pytest.param(lambda body: signed(body, at=NOW - timedelta(minutes=6)), id="stale-6-min"),
        pytest.param(lambda body: signed(body, at=NOW + timedelta(minutes=6)), id="future-6-min"),
        pytest.param(lambda body: signed(body) | {"X-Voicemail-Timestamp": "yesterday"}, id="not-a-number"),
    ],
)
async def test_an_unsigned_or_stale_transcript_gets_403_and_stores_nothing(
    rig: Rig, headers: Callable[[bytes], dict[str, str]]
) -> None:
    before = await rig.snapshot()
    body = json.dumps(transcript()).encode()
    response = await rig.client.post("/voicemail", content=body, headers=headers(body))
    assert response.status_code == 403
    assert await rig.snapshot() == before  # no ticket, no unparsed row, no notice


async def test_a_signature_four_minutes_old_is_still_accepted(rig: Rig) -> None:
    response = await rig.post_json(transcript(), at=NOW - timedelta(minutes=4))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b'{"schema_version": 1, ', "not JSON", id="bad-json"),
        pytest.param(json.dumps({"schema_version": 1}).encode(), "missing field caller", id="missing"),
        pytest.param(json.dumps(transcript(duration_s="41")).encode(), "duration_s must be", id="wrong-type"),
    ],
)
async def test_a_signed_but_unusable_transcript_gets_422_and_is_kept_for_staff(
    rig: Rig, body: bytes, reason: str
) -> None:
    response = await rig.client.post("/voicemail", content=body, headers=signed(body))
    assert response.status_code == 422
    assert reason in response.json()["error"]
    (kept,) = await rig.unparsed()
    assert kept.channel == "voicemail" and reason in kept.reason
    assert rig.core.vault.decrypt(kept.raw_enc) == body.decode()
    assert await rig.tickets() == []
    async with rig.core.sessions() as session:
        notices = await session.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.kind == "notice-staff")
        )
    assert notices == 1

    again = await rig.client.post("/voicemail", content=body, headers=signed(body))  # the producer retries
    assert again.status_code == 422
    assert len(await rig.unparsed()) == 1


async def test_an_oversized_body_gets_413_and_stores_nothing(rig: Rig) -> None:
    before = await rig.snapshot()
    body = json.dumps(transcript(transcript="很" * MAX_BYTES)).encode()
    response = await rig.client.post("/voicemail", content=body, headers=signed(body))
    assert response.status_code == 413
    assert await rig.snapshot() == before


async def test_a_voicemail_id_reused_by_another_caller_gets_409(rig: Rig) -> None:
    assert (await rig.post_json(transcript())).status_code == 200
    response = await rig.post_json(transcript(caller="+8613900001111"))
    assert response.status_code == 409
    assert "already used by another sender" in response.json()["error"]
    assert len(await rig.tickets()) == 1
    assert len(await rig.unparsed()) == 1  # kept, and staff told


async def test_a_database_failure_gets_500_and_the_retry_opens_the_ticket(
    rig: Rig, intake: Intake, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    receive = intake.receive
    failures = [ConnectionRefusedError("database unreachable")]

    async def flaky(message: Any, now: datetime) -> Any:
        if failures:
            raise failures.pop()
        return await receive(message, now)

    monkeypatch.setattr(intake, "receive", flaky)
    before = await rig.snapshot()
    with caplog.at_level(logging.ERROR, logger="channels.voicemail.webhook"):
        response = await rig.post_json(transcript())
    assert response.status_code == 500
    assert "voicemail webhook failed" in caplog.text
    assert await rig.snapshot() == before

    retry = await rig.post_json(transcript())
    assert retry.status_code == 200 and retry.json()["created"] is True


async def test_a_twilio_callback_with_its_signature_opens_a_ticket_for_the_caller(rig: Rig) -> None:
    response = await rig.post_twilio(recorded.body("twilio_completed"))
    assert response.status_code == 200, response.text
    (ticket,) = await rig.tickets()
    assert (ticket.number, ticket.channel) == (response.json()["ticket"], "voicemail")
    async with rig.core.sessions() as session:
        identity = await session.get(LearnerIdentity, ticket.identity_id)
    # The caller is known by the number that called (to call back), not as a proven phone of a learner.
    assert identity is not None and identity.channel == "voicemail"
    assert rig.core.vault.decrypt(identity.address_enc) == CALLER


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(lambda form: twilio_signature(URL, form, token="another-token"), id="wrong-token"),
        pytest.param(lambda form: twilio_signature("https://elsewhere.example/vm", form), id="other-url"),
        pytest.param(lambda form: twilio_signature(URL, form | {"From": "+8613900001111"}), id="tampered"),
        pytest.param(lambda form: "not base64 at all", id="junk"),
    ],
)
async def test_a_twilio_callback_with_a_wrong_signature_gets_403(
    rig: Rig, signature: Callable[[dict[str, str]], str]
) -> None:
    before = await rig.snapshot()
    form = twilio_form()
    response = await rig.post_twilio(form, signature(form))
    assert response.status_code == 403
    assert await rig.snapshot() == before


async def test_a_twilio_callback_is_refused_when_twilio_is_not_configured(serve: Serve) -> None:
    rig = await serve(twilio_auth_token=None)
    before = await rig.snapshot()
    assert (await rig.post_twilio(twilio_form())).status_code == 403
    assert await rig.snapshot() == before


async def test_behind_a_proxy_the_public_url_is_what_twilio_signed(serve: Serve) -> None:
    public = "https://bot.school.example/hooks/voicemail"
    rig = await serve(public_url=public)
    form = twilio_form()
    assert (await rig.post_twilio(form)).status_code == 403  # signed for the inner URL: not what Twilio saw
    assert (await rig.post_twilio(form, twilio_signature(public, form))).status_code == 200
    # Twilio may sign an https URL with its default port written out.
    with_port = "https://bot.school.example:443/hooks/voicemail"
    again = await rig.post_twilio(form, twilio_signature(with_port, form))
    assert again.status_code == 200 and again.json()["duplicate"] is True


async def test_twilios_published_example_passes_the_signature_check(serve: Serve) -> None:
    """Twilio's documentation example (token 12345); not a transcription, so kept for staff: 422, not 403."""
    url, token = "https://mycompany.com/myapp.php?foo=1&bar=2", "12345"
    form = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    published = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert twilio_signature(url, form, token) == published  # the test's helper is the documented algorithm
    rig = await serve(twilio_auth_token=token, public_url="https://mycompany.com/myapp.php")
    response = await rig.post_twilio(form, published, path="/voicemail?foo=1&bar=2")
    assert response.status_code == 422
    assert "RecordingSid" in response.json()["error"]


async def test_a_form_signed_like_our_transcripts_is_accepted_too(rig: Rig) -> None:
    body = urlencode(twilio_form()).encode()
    headers = signed(body) | {"Content-Type": "application/x-www-form-urlencoded"}
    response = await rig.client.post("/voicemail", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["created"] is True


async def test_a_json_body_is_not_accepted_on_a_twilio_signature(rig: Rig) -> None:
    body = json.dumps(transcript()).encode()
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": twilio_signature(URL, {})}
    assert (await rig.client.post("/voicemail", content=body, headers=headers)).status_code == 403
    assert await rig.tickets() == []


async def test_the_same_voicemail_by_json_and_by_twilio_form_is_one_ticket(rig: Rig) -> None:
    by_json = await rig.post_json(transcript(source="twilio", external_id=RECORDING))
    by_form = await rig.post_twilio(twilio_form())
    assert by_json.status_code == by_form.status_code == 200, (by_json.text, by_form.text)
    ticket = by_json.json()["ticket"]
    assert by_form.json() == {"ok": True, "ticket": ticket, "created": False, "duplicate": True}
    assert len(await rig.tickets()) == 1


@pytest.mark.parametrize("route", ["json", "twilio"])
async def test_an_empty_failed_transcript_still_opens_a_ticket(rig: Rig, route: str) -> None:
    if route == "json":
        response = await rig.post_json(recorded.body("asterisk_failed"))
    else:
        response = await rig.post_twilio(recorded.body("twilio_failed"))
    assert response.status_code == 200, response.text
    assert response.json()["created"] is True
    (ticket,) = await rig.tickets()
    async with rig.core.sessions() as session:
        stages = set(await session.scalars(select(Clock.stage).where(Clock.ticket_id == ticket.id)))
    assert "callback" in stages  # staff must call back to learn what it is about


async def test_only_post_is_served(rig: Rig) -> None:
    assert (await rig.client.get("/voicemail")).status_code == 405


def test_a_webhook_with_no_secret_at_all_is_refused_at_start(intake: Intake, core: CoreContext) -> None:
    with pytest.raises(ValueError, match="secret or a Twilio auth token"):
        voicemail_webhook(intake, core, secret=None)


def test_a_twilio_auth_token_alone_configures_the_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith("COMPLAINTBOT_")]:
        monkeypatch.delenv(name)

    def reason(**voicemail: Any) -> str | None:
        return dict(channel_report(Settings(channels={"voicemail": voicemail})))["voicemail"]

    assert reason() == "no [channels.voicemail] spool_dir, secret or twilio_auth_token"
    assert reason(twilio_auth_token=TWILIO_TOKEN) is None
    assert reason(secret=SECRET) is None
    with pytest.raises(ValidationError, match="full URL Twilio calls"):
        Settings(channels={"voicemail": {"public_url": "bot.school.example/voicemail"}})
