"""Sending e-mail over SMTP (aiosmtplib): mail to learners, and staff mail for schools without a staff chat.

The outbox owns retries, so nothing is retried here. What may pass later is a `TemporarySendError`:
a 4xx reply, a refused connection, a timeout, a TLS failure, and also a refused login (a fault of our
configuration, which an operator fixes; the row's growing attempts show it meanwhile). What cannot pass
is a `PermanentSendError`: a 5xx refusal of this message or its recipient (550 mailbox unavailable,
553 bad address, 554 rejected), kept on the dead row with the server's own words for `tickets show`.

One connection per message: the outbox sends a few rows at a time, and a connection held open
between batches would only be closed by the server and fail the next send.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Literal

import aiosmtplib

from channels.mail.compose import as_message_id, compose
from core.messages import OutboundMessage, SendResult
from core.outbox import PermanentSendError, TemporarySendError
from core.privacy import mask, redact

log = logging.getLogger(__name__)

# Replies about our login, not about the message: fixing the configuration lets the message through.
_LOGIN_CODES = frozenset({530, 534, 535, 538})

ManagerAddresses = Callable[[], Awaitable[Sequence[str]]]


def utc_now() -> datetime:
    return datetime.now(UTC)


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


def address(text: str) -> Address:
    """One e-mail address (no display name), or `PermanentSendError`: resending cannot fix it."""
    try:
        return Address(addr_spec=text.strip())
    except (ValueError, IndexError, HeaderParseError) as exc:  # IndexError: the empty string
        raise PermanentSendError(
            f"not a usable e-mail address {mask('email', text)!r}: {exc or 'empty'}"
        ) from exc


def _refusal(code: int, text: str, what: str) -> TemporarySendError | PermanentSendError:
    reason = redact(f"{what}: {code} {text}")  # servers often quote the address they refused
    if 500 <= code < 600 and code not in _LOGIN_CODES:
        return PermanentSendError(reason)
    return TemporarySendError(reason)


async def transmit(
    server: SmtpServer, mail: EmailMessage, envelope_from: str, to: Sequence[str]
) -> dict[str, str]:
    """Hand one mail to the server. Returns the recipients it refused while taking the others
    (only possible with several); raises when nobody got it."""
    where = f"{server.host}:{server.port}"
    try:
        refused, _ = await aiosmtplib.send(
            mail,
            sender=envelope_from,
            recipients=list(to),
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
    except aiosmtplib.SMTPRecipientsRefused as exc:
        # The server's answer without the address: error texts are logged and shown on staff screens.
        detail = redact(
            "; ".join(f"{r.code} {r.message} ({mask('email', r.recipient)})" for r in exc.recipients)
        )
        if all(500 <= r.code < 600 for r in exc.recipients):
            raise PermanentSendError(f"recipient refused by {where}: {detail}") from exc
        raise TemporarySendError(f"recipient refused for now by {where}: {detail}") from exc
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise TemporarySendError(
            f"SMTP login refused by {where} ({exc.code} {exc.message}): check smtp_user and smtp_password"
        ) from exc
    except aiosmtplib.SMTPSenderRefused as exc:
        raise _refusal(exc.code, exc.message, f"sender {exc.sender} refused by {where}") from exc
    except aiosmtplib.SMTPDataError as exc:
        raise _refusal(exc.code, exc.message, f"message refused by {where}") from exc
    except aiosmtplib.SMTPResponseException as exc:  # at the greeting or HELO: the server's state, not ours
        raise TemporarySendError(
            f"SMTP server {where} refused the session: {exc.code} {exc.message}"
        ) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:  # refused, timed out, TLS failed, no STARTTLS/AUTH
        raise TemporarySendError(f"SMTP server {where} unreachable: {type(exc).__name__}: {exc}") from exc
    return {recipient: f"{answer.code} {answer.message}" for recipient, answer in refused.items()}


class MailSender:
    """The `email` channel: mail to a learner (recipient = their address), threaded under their mail.

    `SendResult.external_ref` is our Message-ID, kept on the outbox row: the learner's answer names
    it in In-Reply-To, and that is how intake finds the ticket it continues.
    """

    def __init__(
        self,
        server: SmtpServer,
        from_address: str,
        *,
        from_name: str | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.server = server
        # Checked here, at start-up: a bad From would otherwise fail every message one by one.
        self.sender = Address(display_name=from_name or "", addr_spec=from_address)
        self.clock = clock

    async def send(self, message: OutboundMessage) -> SendResult:
        to = address(message.recipient)
        mail = compose(message, sender=self.sender, to=[to], now=self.clock())
        await self.deliver(mail, [to])
        return SendResult(external_ref=str(mail["Message-ID"]))

    async def deliver(self, mail: EmailMessage, to: Sequence[Address]) -> dict[str, str]:
        return await transmit(self.server, mail, self.sender.addr_spec, [a.addr_spec for a in to])


class MailStaffSink:
    """The `staff` channel by e-mail, for schools whose staff have no Telegram chat.

    A department key goes to `departments[key]` (from `[departments.<key>] email`), else to `default`;
    "managers" to `managers()`, asked at every send so that a manager added with `staff add --email`
    gets the next alert, else to `default` as well. A recipient with no address at all is a
    `TemporarySendError` naming what to configure, as on Telegram: the message waits for it.
    Everything about a ticket is threaded under its card (In-Reply-To the card's Message-ID), so a
    mail client shows one conversation per ticket. Cards carry no buttons here: staff act from the CLI.
    A card edit (every move edits the card) is not mailed unless `card_updates`: a mail for each move
    would teach people to ignore the desk's mail, and what needs someone gets a notice or alert of its own.
    """

    def __init__(
        self,
        mail: MailSender,
        departments: Mapping[str, Sequence[str]],
        managers: ManagerAddresses,
        *,
        default: Sequence[str] = (),
        locale: str = "zh",
        card_updates: bool = False,
    ) -> None:
        self.mail = mail
        self.departments = {key: list(addresses) for key, addresses in departments.items()}
        self.managers = managers
        self.default = list(default)
        self.locale = locale
        self.card_updates = card_updates

    async def send(self, message: OutboundMessage) -> SendResult:
        card_ref = as_message_id(str(message.meta.get("card_ref") or ""))
        if message.kind == "card-edit" and not self.card_updates:
            return SendResult(external_ref=card_ref)
        to = [address(a) for a in await self._addresses(message.recipient)]
        if not to:
            where = f"[departments.{message.recipient}] email"
            if message.recipient == "managers":
                where = "a manager with an e-mail to the staff directory"
            raise TemporarySendError(f"no e-mail address for staff {message.recipient!r}: add {where}")
        if card_ref is not None and message.kind != "card":
            message = replace(message, reply_to=card_ref)
        mail = compose(message, sender=self.mail.sender, to=to, now=self.mail.clock(), locale=self.locale)
        refused = await self.mail.deliver(mail, to)
        if refused:
            log.warning(
                "staff mail %s (%s) not delivered to %s", message.key, message.ticket_number or "-", refused
            )
        return SendResult(external_ref=str(mail["Message-ID"]))

    async def _addresses(self, recipient: str) -> list[str]:
        found = (
            list(await self.managers()) if recipient == "managers" else self.departments.get(recipient, [])
        )
        return list(dict.fromkeys(found or self.default))  # once each, in order
