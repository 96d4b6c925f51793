"""`POST /voicemail`: a signed transcript (INTERFACES.md, "Voicemail transcripts") or Twilio's
transcription callback, committed as a ticket before the sender hears 2xx.

Two ways to prove who sent it. Our own producers sign `timestamp + "." + body` with the shared secret
(`X-Voicemail-Signature`, `X-Voicemail-Timestamp`); Twilio signs its form with the account's auth token
(`X-Twilio-Signature`). Either way the check comes before anything is parsed or stored, and a request
that fails it gets 403 and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from channels.http import BodyTooLarge, read_body
from channels.voicemail.parse import MAX_BYTES, VoicemailError, parse_transcript, parse_twilio
from core.context import CoreContext
from core.intake.intake import Intake
from core.intake.receive import Aside, Kept, receive_or_keep
from core.messages import InboundMessage

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Voicemail-Signature"
TIMESTAMP_HEADER = "X-Voicemail-Timestamp"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
MAX_SKEW_S = 5 * 60  # a signed request older (or newer) than this is a replay, or a clock to fix
FORM = "application/x-www-form-urlencoded"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def voicemail_webhook(
    intake: Intake,
    core: CoreContext,
    *,
    secret: str | None,
    twilio_auth_token: str | None = None,
    public_url: str | None = None,
    clock: Callable[[], datetime] = _utc_now,
    path: str = "/voicemail",
) -> Route:
    """The route; `public_url` is the URL Twilio calls, when a proxy makes it differ from ours.

    Answers: 200 once the transcript is committed (or was already: a redelivery); 403 unsigned or
    stale; 413 too large; 422 signed but unusable (kept for staff, a retry cannot help); 409 the
    voicemail id belongs to another caller (kept too); 500 anything else, so the sender retries.
    """
    if not (secret or twilio_auth_token):
        raise ValueError("a voicemail webhook needs a secret or a Twilio auth token")

    async def receive(request: Request) -> Response:
        now = clock()
        headers = request.headers
        timestamp, signature = headers.get(TIMESTAMP_HEADER, ""), headers.get(SIGNATURE_HEADER, "")
        signed = bool(secret and signature and _fresh(timestamp, now))
        twilio_signature = headers.get(TWILIO_SIGNATURE_HEADER, "") if twilio_auth_token else ""
        if not (signed or twilio_signature):  # refused before a byte of the body is read
            return JSONResponse({"ok": False}, status_code=403)
        try:
            body = await read_body(request, MAX_BYTES)
        except BodyTooLarge:
            return JSONResponse({"ok": False, "error": "body too large"}, status_code=413)
        is_form = headers.get("content-type", "").split(";")[0].strip().lower() == FORM
        form = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True) if is_form else []
        authentic = (secret and signed and _signature_ok(secret, timestamp, signature, body)) or (
            # Only a form is Twilio's: its signature covers the parameters, not a JSON body.
            is_form
            and twilio_auth_token
            and twilio_signature
            and _twilio_ok(twilio_auth_token, _called_url(request, public_url), form, twilio_signature)
        )
        if not authentic:
            return JSONResponse({"ok": False}, status_code=403)

        try:
            try:
                # Twilio's callback carries no time of the call: it arrives a few minutes after it, and
                # now is the closest we know. A replayed callback is harmless without a timestamp check:
                # its RecordingSid is the dedupe key, so it can only find the ticket it opened.
                message = parse_twilio(dict(form), now) if is_form else parse_transcript(body)
            except VoicemailError as exc:
                return await _unusable(intake, body, str(exc), now)
            return await _deliver(intake, message, now)
        except Exception:  # the database, most likely: not committed, so the sender must try again
            log.exception("voicemail webhook failed; answered 500 for a retry")
            return JSONResponse({"ok": False}, status_code=500)

    return Route(path, receive, methods=["POST"])


async def _unusable(intake: Intake, body: bytes, reason: str, now: datetime) -> Response:
    # Keyed by the body's hash: the producer's retries of the same bytes are kept once.
    key = f"webhook:{hashlib.sha256(body).hexdigest()}"
    await receive_or_keep(intake, Aside("voicemail", key, body, reason), now)
    return JSONResponse({"ok": False, "error": reason}, status_code=422)


async def _deliver(intake: Intake, message: InboundMessage, now: datetime) -> Response:
    result = await receive_or_keep(intake, message, now)
    if isinstance(result, Kept):  # an id reused: kept as unparsed and shown to staff; a retry changes nothing
        return JSONResponse({"ok": False, "error": result.reason}, status_code=409)
    log.info(
        "ticket %s: voicemail %s %s",
        result.ticket_number,
        message.external_id,
        "was a redelivery" if result.duplicate else "received",
    )
    return JSONResponse(
        {"ok": True, "ticket": result.ticket_number, "created": result.created, "duplicate": result.duplicate}
    )


def _fresh(timestamp: str, now: datetime) -> bool:
    """Unix seconds within `MAX_SKEW_S` of now, either side: an old request is refused as a replay."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    return abs(now.timestamp() - int(timestamp)) <= MAX_SKEW_S


def _signature_ok(secret: str, timestamp: str, given: str, body: bytes) -> bool:
    """Our producers' signature: hex HMAC-SHA256 of `timestamp + "." + body` with the shared secret."""
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode())


def _called_url(request: Request, public_url: str | None) -> str:
    if not public_url:
        return str(request.url)
    # Twilio signs the URL it called, query string included (a callback URL may carry one).
    query = request.url.query
    return f"{public_url}?{query}" if query and "?" not in public_url else public_url


def _twilio_ok(token: str, url: str, form: list[tuple[str, str]], given: str) -> bool:
    """Twilio's documented check: base64 HMAC-SHA1 over the URL, then each parameter's name and value
    in name order. Twilio may have signed the URL with or without the scheme's default port, so both
    spellings are tried, as its own libraries do."""
    params = "".join(name + value for name, value in sorted(set(form)))
    for candidate in _port_variants(url):
        digest = hmac.new(token.encode(), (candidate + params).encode(), hashlib.sha1).digest()
        if hmac.compare_digest(base64.b64encode(digest), given.strip().encode()):
            return True
    return False


def _port_variants(url: str) -> list[str]:
    """The URL as given, and spelled the other way: with its default port left out or written."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:  # not a port at all: only the URL as given can match
        return [url]
    if default is None or port not in (None, default):
        return [url]
    netloc = parts.netloc.rsplit(":", 1)[0] if port else f"{parts.netloc}:{default}"
    return [url, parts._replace(netloc=netloc).geturl()]
