"""Handing mail to the SMTP server (aiosmtplib) over a few connections kept open between messages.

A burst of acknowledgements is hundreds of messages: a connection (and TLS handshake, and login) per
message would cost more than the messages. `SmtpConnections` keeps up to `size` connections; a message
takes one, and gives it back for the next once the server has accepted it. A connection idle for longer
than `idle_seconds` is closed before it is used again (servers drop idle clients after a while), and a
kept connection that turns out to be gone when a message starts on it is replaced once, at once (had the
link dropped only after the message's data, the server may have it: that is sending once more, as a
retry after a crash does). After any other failure the connection is dropped, never reused in
an unknown state.

Failures, as the outbox wants them: a 4xx reply, a refused connection, a timeout, a TLS failure and a
refused login (our configuration, which an operator fixes) are `TemporarySendError`; a 5xx refusal of
this message or its recipient (550, 553, 554) is `PermanentSendError`, with the server's own words and
the address masked.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Literal

import aiosmtplib

from core.delivery.outbox import PermanentSendError, TemporarySendError
from core.storage.privacy import mask, redact

log = logging.getLogger(__name__)

# Replies about our login, not about the message: fixing the configuration lets the message through.
_LOGIN_CODES = frozenset({530, 534, 535, 538})


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to hand mail over (`[channels.email] smtp_*`)."""

    host: str
    port: int = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0  # per SMTP command: a hung server must not hold a dispatcher slot for long
    tls_context: ssl.SSLContext | None = None  # a private CA's; default: the system's trust store

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def _refusal(code: int, text: str, what: str) -> TemporarySendError | PermanentSendError:
    reason = redact(f"{what}: {code} {text}")  # servers often quote the address they refused
    if 500 <= code < 600 and code not in _LOGIN_CODES:
        return PermanentSendError(reason)
    return TemporarySendError(reason)


def as_send_error(exc: Exception, where: str) -> TemporarySendError | PermanentSendError:
    """An aiosmtplib (or socket) failure as the outbox's retry-or-give-up."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        # The server's answer without the address: error texts are logged and shown on staff screens.
        detail = redact(
            "; ".join(f"{r.code} {r.message} ({mask('email', r.recipient)})" for r in exc.recipients)
        )
        if all(500 <= r.code < 600 for r in exc.recipients):
            return PermanentSendError(f"recipient refused by {where}: {detail}")
        return TemporarySendError(f"recipient refused for now by {where}: {detail}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return TemporarySendError(
            f"SMTP login refused by {where} ({exc.code} {exc.message}): check smtp_user and smtp_password"
        )
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return _refusal(exc.code, exc.message, f"sender {exc.sender} refused by {where}")
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return _refusal(exc.code, exc.message, f"message refused by {where}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):  # at the greeting or HELO: the server's state
        return TemporarySendError(f"SMTP server {where} refused the session: {exc.code} {exc.message}")
    # Refused, timed out, TLS failed, no STARTTLS/AUTH offered, the connection dropped.
    return TemporarySendError(f"SMTP server {where} unreachable: {type(exc).__name__}: {exc}")


class SmtpConnections:
    """Up to `size` open connections to one server, shared by the messages of one outbox lane."""

    def __init__(self, server: SmtpServer, *, size: int = 4, idle_seconds: float = 20.0) -> None:
        self.server = server
        self.size = size
        self.idle_seconds = idle_seconds
        self._slots = asyncio.Semaphore(size)
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []  # connection, when it was last given back

    async def transmit(self, mail: Message, envelope_from: str, to: Sequence[str]) -> dict[str, str]:
        """Hand one mail to the server. Returns the recipients it refused while taking the others
        (only possible with several); raises when nobody got it."""
        async with self._slots:
            client, kept = await self._take()
            try:
                try:
                    refused, _ = await client.send_message(mail, sender=envelope_from, recipients=list(to))
                except aiosmtplib.SMTPServerDisconnected:
                    if not kept:
                        raise
                    # The server closed a kept connection meanwhile (almost always before this mail).
                    _discard(client)
                    client = await self._connect()
                    refused, _ = await client.send_message(mail, sender=envelope_from, recipients=list(to))
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                _discard(client)
                raise as_send_error(exc, self.server.where) from exc
            except BaseException:
                _discard(client)
                raise
            self._idle.append((client, time.monotonic()))
        return {recipient: f"{answer.code} {answer.message}" for recipient, answer in refused.items()}

    async def _take(self) -> tuple[aiosmtplib.SMTP, bool]:
        """A kept connection (True) not idle for too long, else a new one (False)."""
        while self._idle:
            client, since = self._idle.pop()
            if client.is_connected and time.monotonic() - since < self.idle_seconds:
                return client, True
            await _quit(client)
        try:
            return await self._connect(), False
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise as_send_error(exc, self.server.where) from exc

    async def _connect(self) -> aiosmtplib.SMTP:
        server = self.server
        client = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            username=server.username or None,
            password=server.password if server.username else None,
            use_tls=server.security == "tls",
            # False rather than aiosmtplib's "if offered" for "none": the operator chose no TLS.
            start_tls=server.security == "starttls",
            timeout=server.timeout,
            tls_context=server.tls_context,
        )
        await client.connect()
        return client

    async def close(self) -> None:
        """QUIT every kept connection (at shutdown)."""
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(client) for client, _ in idle))


def _discard(client: aiosmtplib.SMTP) -> None:
    if client.is_connected:
        client.close()


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await client.quit(timeout=5)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        log.debug("SMTP connection closed uncleanly: %s", exc)
        _discard(client)
