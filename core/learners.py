"""Learner identities: one learner, many addresses (a Telegram chat, a WeChat OpenID, an e-mail, a phone).

Addresses are stored encrypted and found through keyed hashes. A new address is linked to an
existing learner when the message carries a phone number or e-mail address already known for one,
so a caller who complained on WeChat before is recognised on the hotline.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.messages import InboundMessage
from core.models import Learner, LearnerIdentity
from core.privacy import Vault, mask, normalize


def _index(vault: Vault, kind: str, value: str | None) -> str | None:
    if not value or not normalize(kind, value):
        return None
    return vault.blind_index(kind, value)


def find_or_create(
    session: Session, vault: Vault, message: InboundMessage, locale: str, now: datetime
) -> tuple[Learner, LearnerIdentity]:
    address_index = vault.blind_index(message.channel, message.sender_id)
    identity = session.scalar(
        select(LearnerIdentity).where(
            LearnerIdentity.channel == message.channel, LearnerIdentity.address_index == address_index
        )
    )
    phone_index = _index(vault, "phone", message.phone)
    email_index = _index(vault, "email", message.email)
    if identity is not None:
        learner = session.get_one(Learner, identity.learner_id)
    else:
        known = _known_learner(session, phone_index, email_index)
        learner = known if known is not None else Learner(locale=locale, created_at=now)
        session.add(learner)
        identity = LearnerIdentity(
            learner=learner,
            channel=message.channel,
            address_enc=vault.encrypt(message.sender_id),
            address_index=address_index,
            created_at=now,
        )
        session.add(identity)
    # What the learner tells us fills gaps; it never silently overwrites what they said before.
    if message.sender_name and not learner.name_enc:
        learner.name_enc = vault.encrypt(message.sender_name)
    if phone_index and not learner.phone_index:
        learner.phone_enc, learner.phone_index = vault.encrypt_opt(message.phone), phone_index
    if email_index and not learner.email_index:
        learner.email_enc, learner.email_index = vault.encrypt_opt(message.email), email_index
    return learner, identity


def _known_learner(session: Session, phone_index: str | None, email_index: str | None) -> Learner | None:
    for column, value in ((Learner.phone_index, phone_index), (Learner.email_index, email_index)):
        if value is not None:
            learner = session.scalar(select(Learner).where(column == value).order_by(Learner.id).limit(1))
            if learner is not None:
                return learner
    return None


def masked_label(vault: Vault, learner: Learner, identity: LearnerIdentity | None) -> str:
    """How staff see a learner: name, else phone, else e-mail, else the channel address, always masked."""
    for kind, token in (
        ("name", learner.name_enc),
        ("phone", learner.phone_enc),
        ("email", learner.email_enc),
    ):
        if token:
            return mask(kind, vault.decrypt(token))
    if identity is not None:
        kind = (
            "email" if identity.channel == "email" else "phone" if identity.channel == "voicemail" else "id"
        )
        return mask(kind, vault.decrypt(identity.address_enc))
    return "—"
