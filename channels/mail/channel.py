"""The e-mail channel inside `complaintbot run`: senders built from `[channels.email]` and
`[departments.*]`, and the mailbox reader (IMAP or a Maildir) running in the background."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from email.utils import getaddresses
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.base import Channel, ChannelError, Offer, Started
from channels.mail.capabilities import CAPABILITIES
from channels.mail.config import EmailConfig
from channels.mail.imap import ImapSource
from channels.mail.imap_connection import ImapAccount
from channels.mail.maildir import MaildirSource
from channels.mail.reader import MailReader
from channels.mail.sender import MailSender, MailStaffSink, ManagerAddresses, SmtpServer
from core.delivery.outbox import Sender
from core.storage.models import Staff
from core.tickets.workflow import MANAGER

FIRST_CONTACT = "service"  # its address stands in for a department without one, and for absent managers


def smtp_server(config: EmailConfig) -> SmtpServer:
    assert config.smtp_host is not None  # the caller checked the channel is configured
    return SmtpServer(
        host=config.smtp_host,
        port=config.smtp_port,
        security=config.smtp_tls,
        username=config.smtp_user,
        password=config.smtp_password,
    )


def _addresses(value: str | None, key: str) -> list[str]:
    """`a@school.cn, b@school.cn` (display names allowed) as bare addresses; a bad one is refused now."""
    found = [addr for _, addr in getaddresses([value or ""]) if addr]
    bad = [addr for addr in found if "@" not in addr or any(c.isspace() for c in addr)]
    if bad or (value and value.strip() and not found):
        raise ChannelError(f"{key}: not an e-mail address: {', '.join(bad) or value!r}")
    return found


def manager_addresses(sessions: async_sessionmaker[AsyncSession]) -> ManagerAddresses:
    """The e-mail of every active manager in the staff directory (`staff add --role manager --email A`)."""

    async def lookup() -> Sequence[str]:
        async with sessions() as session:
            query = select(Staff.email).where(
                Staff.role == MANAGER, Staff.active.is_(True), Staff.email.is_not(None)
            )
            return [email for email in await session.scalars(query.order_by(Staff.id)) if email]

    return lookup


def email_senders(
    config: EmailConfig,
    departments: Mapping[str, Mapping[str, Any]],
    department_names: Mapping[str, str],
    *,
    locale: str = "zh",
    staff_sessions: async_sessionmaker[AsyncSession] | None = None,
    id_secret: bytes | None = None,
) -> dict[str, Sender]:
    """`email` when SMTP is configured (`smtp_host` and `from_address`); `staff` too when
    `staff_sessions` is given, for a school whose staff read mail instead of a Telegram chat.

    The From display name is `[channels.email] from_name`, else the name of the first-contact
    department (学员服务部), which is who answers the complaint mailbox.
    """
    if not (config.smtp_host and config.from_address):
        return {}
    from_name = config.from_name or department_names.get(FIRST_CONTACT)
    try:
        mail = MailSender(smtp_server(config), config.from_address, from_name=from_name, id_secret=id_secret)
    except (ValueError, IndexError) as exc:
        raise ChannelError(f"channels.email.from_address: not an e-mail address: {exc}") from None
    senders: dict[str, Sender] = {"email": mail}
    if staff_sessions is not None:
        desks = {
            key: _addresses(section.get("email"), f"departments.{key}.email")
            for key, section in departments.items()
        }
        desk = MailSender(smtp_server(config), config.from_address, from_name=from_name, id_secret=id_secret)
        senders["staff"] = MailStaffSink(
            desk,
            {key: found for key, found in desks.items() if found},
            manager_addresses(staff_sessions),
            default=desks.get(FIRST_CONTACT, []),
            locale=locale,
        )
    return senders


class MailChannel(Channel):
    name = "email"
    capabilities = CAPABILITIES
    config_model = EmailConfig
    config: EmailConfig

    def __init__(self, config: EmailConfig) -> None:
        super().__init__(config)
        self.source: ImapSource | MaildirSource | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, offer: Offer) -> Started:
        """The senders (the staff e-mail desk only where no Telegram staff chat took `staff`), and the
        mailbox (IMAP, or a Maildir) read in the background."""
        config = self.config
        core = offer.core
        senders = email_senders(
            config,
            offer.departments,
            core.department_names,
            locale=core.staff_locale,
            staff_sessions=core.sessions if offer.staff_free else None,
            id_secret=core.vault.derived_key("message-id"),
        )
        reader = MailReader(
            offer.intake,
            core,
            per_sender_per_hour=config.ack_per_sender_per_hour,
            workers=config.intake_workers,
            own_addresses=[config.from_address or ""],
            authserv_id=config.authserv_id,
            clock=offer.clock,
        )
        source: ImapSource | MaildirSource
        if config.maildir is not None:
            source = MaildirSource(config.maildir, reader, poll_seconds=min(config.imap_poll_seconds, 5.0))
            try:  # a directory that cannot be made is an error at start, not a silent skip
                source.ensure_dirs()
            except OSError as exc:
                raise ChannelError(str(exc)) from exc
            where = f"maildir {config.maildir}"
        else:
            assert config.imap_host is not None  # the caller checked the channel is configured
            account = ImapAccount(
                config.imap_host,
                config.imap_port,
                config.imap_user or "",
                config.imap_password or "",
                config.imap_folder,
                config.imap_tls,
                config.imap_done_folder,
            )
            source = ImapSource(account, reader, poll_seconds=config.imap_poll_seconds)
            where = f"imap{'s' if config.imap_tls else ''}://{config.imap_host}:{config.imap_port}/{config.imap_folder}"
        summary = f"reading {where}, sending via {config.smtp_host}:{config.smtp_port}"
        staff = senders.pop("staff", None)
        if staff is not None:
            summary += " (staff cards and alerts by e-mail)"
        self.source = source
        self._task = asyncio.create_task(source.run(self._stop), name="email-reader")
        return Started(summary, senders=senders, staff=staff)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if isinstance(self.source, ImapSource):
            await self.source.close()
