"""Sending e-mail over SMTP (aiosmtplib): mail to learners, and staff mail for schools without a staff chat.

The outbox owns retries, so nothing is retried here. What may pass later is a `TemporarySendError`:
a 4xx reply, a refused connection, a timeout, a TLS failure, and also a refused login (a fault of our
configuration, which an operator fixes; the row's growing attempts show it meanwhile). What cannot pass
is a `PermanentSendError`: a 5xx refusal of this message or its recipient (550 mailbox unavailable,
553 bad address, 554 rejected), kept on the dead row with the server's own words for `tickets show`.

Each sender keeps its own few SMTP connections open between messages (`channels.mail.smtp`), so a burst
of acknowledgements costs one handshake per connection, not per message, and the staff desk's mail
(`MailStaffSink`, its own lane) never waits for the learners' connections or they for it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import Message

from channels.mail.compose import as_message_id, compose, envelope_address
from channels.mail.smtp import SmtpConnections, SmtpServer
from core.delivery.outbox import LaneLimits, NotConfiguredError, PermanentSendError
from core.messages import OutboundMessage, SendResult
from core.storage.privacy import mask

__all__ = ["MailSender", "MailStaffSink", "ManagerAddresses", "SmtpServer", "address"]

log = logging.getLogger(__name__)

ManagerAddresses = Callable[[], Awaitable[Sequence[str]]]
MAIL_LIMITS = LaneLimits(batch=64, concurrency=4)  # one SMTP connection per message in flight


def utc_now() -> datetime:
    return datetime.now(UTC)


def address(text: str) -> Address:
    """One e-mail address (no display name) we can write to, or `PermanentSendError`: resending cannot
    fix it."""
    try:
        parsed = Address(addr_spec=text.strip())
        envelope_address(parsed)
        return parsed
    except (ValueError, IndexError, HeaderParseError) as exc:  # IndexError: the empty string
        raise PermanentSendError(
            f"not a usable e-mail address {mask('email', text)!r}: {exc or 'empty'}"
        ) from exc


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
        limits: LaneLimits = MAIL_LIMITS,
        id_secret: bytes | None = None,
    ) -> None:
        self.server = server
        # Keys our Message-IDs, so that a reply naming one proves it answers our mail to that address.
        self.id_secret = id_secret
        # Checked here, at start-up: a bad From would otherwise fail every message one by one.
        self.sender = Address(display_name=from_name or "", addr_spec=from_address)
        envelope_address(self.sender)
        self.clock = clock
        self.limits = limits
        self.connections = SmtpConnections(server, size=limits.concurrency)

    async def send(self, message: OutboundMessage) -> SendResult:
        to = address(message.recipient)
        mail = compose(message, sender=self.sender, to=[to], now=self.clock(), id_secret=self.id_secret)
        await self.deliver(mail, [to])
        return SendResult(external_ref=str(mail["Message-ID"]))

    async def deliver(self, mail: Message, to: Sequence[Address]) -> dict[str, str]:
        recipients = [envelope_address(a) for a in to]
        return await self.connections.transmit(mail, envelope_address(self.sender), recipients)

    async def close(self) -> None:
        await self.connections.close()


class MailStaffSink:
    """The `staff` channel by e-mail, for schools whose staff have no Telegram chat.

    A department key goes to `departments[key]` (from `[departments.<key>] email`), else to `default`;
    "managers" to `managers()`, asked at every send so that a manager added with `staff add --email`
    gets the next alert, else to `default` as well. A recipient with no address at all is a
    `NotConfiguredError` naming what to configure, as on Telegram: the message is parked until then.
    `mail` should be a sender of its own (its own connections), so that the desk's lane and the
    learners' never wait for each other.
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
        self.limits = mail.limits

    async def send(self, message: OutboundMessage) -> SendResult:
        card_ref = as_message_id(str(message.meta.get("card_ref") or ""))
        if message.kind == "card-edit" and not self.card_updates:
            return SendResult(external_ref=card_ref)
        to = [address(a) for a in await self._addresses(message.recipient)]
        if not to:
            where = f"[departments.{message.recipient}] email"
            if message.recipient == "managers":
                where = "a manager with an e-mail to the staff directory"
            raise NotConfiguredError(f"no e-mail address for staff {message.recipient!r}: add {where}")
        if card_ref is not None and message.kind != "card":
            message = replace(message, reply_to=card_ref)
        mail = compose(
            message,
            sender=self.mail.sender,
            to=to,
            now=self.mail.clock(),
            locale=self.locale,
            id_secret=self.mail.id_secret,
        )
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

    async def close(self) -> None:
        await self.mail.close()
