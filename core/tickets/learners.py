"""Learner identities: one learner, many addresses (a Telegram chat, a WeChat OpenID, an e-mail, a phone).

Addresses are stored encrypted and found through keyed hashes. A new address is linked to an
existing learner only by proof: when a message the platform vouches for (a Telegram contact shared by
its own account, an e-mail our mail server or our own thread vouches for) carries a phone number or
e-mail address already known for one. A caller ID or a From header alone links nothing: anyone can
set them, and a link would send that learner's replies where the impostor wants.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.orm import Session, make_transient_to_detached

from core.capabilities import ChannelBook
from core.context import CoreContext
from core.messages import InboundMessage
from core.storage.contact_kinds import EMAIL, PHONE, contact_kind
from core.storage.models import Learner, LearnerIdentity
from core.storage.privacy import Vault, mask, normalize

log = logging.getLogger(__name__)


def _index(vault: Vault, kind: str, value: str | None) -> str | None:
    if not value or not normalize(kind, value):
        return None
    return vault.blind_index(kind, value)


# Built once: intake asks it for every message.
_IDENTITY = select(LearnerIdentity).where(
    LearnerIdentity.channel == bindparam("channel"),
    LearnerIdentity.address_index == bindparam("address_index"),
)
_INSERT_LEARNER = insert(Learner).returning(Learner.id)
_INSERT_IDENTITY = insert(LearnerIdentity).returning(LearnerIdentity.id)
T = TypeVar("T", Learner, LearnerIdentity)


def find_or_create(
    session: Session,
    vault: Vault,
    message: InboundMessage,
    locale: str,
    now: datetime,
    *,
    proven: bool = True,
) -> tuple[Learner, LearnerIdentity, bool]:
    """The learner behind the message's sender and that address's identity, created when new; and
    whether the learner is new (no tickets to continue, nothing to look up). Unless `proven` (the
    sender is who they say), the phone or e-mail the message carries neither links nor is recorded."""
    address_index = vault.blind_index(message.channel, message.sender_id)
    identity = session.scalar(_IDENTITY, {"channel": message.channel, "address_index": address_index})
    phone_index = _index(vault, PHONE, message.phone) if proven else None
    email_index = _index(vault, EMAIL, message.email) if proven else None
    new = False
    if identity is not None:
        learner = session.get_one(Learner, identity.learner_id)
    else:
        known = _known_learner(session, phone_index, email_index)
        if known is not None:
            learner = known
        else:
            new = True
            values: dict[str, Any] = {
                "name_enc": vault.encrypt_opt(message.sender_name or None),
                "phone_enc": vault.encrypt_opt(message.phone) if phone_index else None,
                "phone_index": phone_index,
                "email_enc": vault.encrypt_opt(message.email) if email_index else None,
                "email_index": email_index,
                "locale": locale,
                "created_at": now,
                "erased_at": None,
            }
            learner = _inserted(session, Learner, _INSERT_LEARNER, values)
        values = {
            "learner_id": learner.id,
            "channel": message.channel,
            "address_enc": vault.encrypt(message.sender_id),
            "address_index": address_index,
            "created_at": now,
        }
        identity = _inserted(session, LearnerIdentity, _INSERT_IDENTITY, values)
    # What the learner tells us fills gaps; it never silently overwrites what they said before.
    if message.sender_name and not learner.name_enc:
        learner.name_enc = vault.encrypt(message.sender_name)
    if phone_index and not learner.phone_index:
        learner.phone_enc, learner.phone_index = vault.encrypt_opt(message.phone), phone_index
    if email_index and not learner.email_index:
        learner.email_enc, learner.email_index = vault.encrypt_opt(message.email), email_index
    return learner, identity, new


def capped(
    session: Session, channels: ChannelBook, message: InboundMessage, cap: int, now: datetime
) -> InboundMessage:
    """An unproven sender's first message, left unanswered when more than `cap` unknown addresses of
    its channel wrote this hour: a forged From would make us write to strangers in bulk (backscatter).
    Staff see the rest. Only for channels we answer in writing."""
    if not cap or not channels.of(message.channel).writes_back:
        return message
    since = now - timedelta(hours=1)
    seen = session.scalar(
        select(func.count(LearnerIdentity.id)).where(
            LearnerIdentity.channel == message.channel, LearnerIdentity.created_at >= since
        )
    )
    if (seen or 0) <= cap:  # this message's own new identity is among them
        return message
    log.warning("intake %s: %d new addresses this hour, not answered", message.external_id, seen)
    return replace(message, unanswered=f"held for staff review: over {cap} new addresses in an hour")


def _inserted(session: Session, model: type[T], statement: Any, values: dict[str, Any]) -> T:
    """A row inserted with one plain statement, then made a persistent object of the session as if it
    had been loaded: the ORM's unit of work costs several times the INSERT on intake's path."""
    row = model(id=session.connection().execute(statement, values).scalar_one(), **values)
    make_transient_to_detached(row)
    session.add(row)
    return row


def _known_learner(session: Session, phone_index: str | None, email_index: str | None) -> Learner | None:
    for column, value in ((Learner.phone_index, phone_index), (Learner.email_index, email_index)):
        if value is not None:
            learner = session.scalar(select(Learner).where(column == value).order_by(Learner.id).limit(1))
            if learner is not None:
                return learner
    return None


def masked_label(core: CoreContext, learner: Learner, identity: LearnerIdentity | None) -> str:
    """How staff see a learner: name, else phone, else e-mail, else the channel address, always masked
    as the kind of address the channel's sender ids are."""
    vault = core.vault
    for kind, token in (
        ("name", learner.name_enc),
        (PHONE, learner.phone_enc),
        (EMAIL, learner.email_enc),
    ):
        if token:
            return mask(kind, vault.decrypt(token))
    if identity is not None:
        kind = contact_kind(core.channels.of(identity.channel).address)
        return mask(kind, vault.decrypt(identity.address_enc))
    return "—"
