"""The database remembers which privacy key it was written with, so a wrong key is refused at start.

Without this, an instance started with another key (a lost key file regenerated, two instances
configured apart) would run: it would write data the others cannot read and find no learner by its
blind index, silently splitting every learner in two. The fingerprint is a keyed hash of a constant
under the blind-index key (the oldest key, which rotation keeps): it reveals nothing of the key.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.storage.delivery_models import ChannelState
from core.storage.models import LearnerIdentity
from core.storage.privacy import PrivacyKeyError, Vault

FINGERPRINT = "privacy:key-fingerprint"


def fingerprint(vault: Vault) -> str:
    return hmac.new(vault.derived_key("fingerprint"), b"complaintbot", hashlib.sha256).hexdigest()[:16]


async def check_key(sessions: async_sessionmaker[AsyncSession], vault: Vault, now: datetime) -> None:
    """Raise `PrivacyKeyError` when the configured keys are not the ones this database was written
    with; record the fingerprint on first use."""
    mine = fingerprint(vault)
    async with sessions() as session:
        stored = await session.scalar(select(ChannelState.value).where(ChannelState.key == FINGERPRINT))
        if stored is None:
            # A database from before the fingerprint: the key must at least read what is there.
            token = await session.scalar(select(LearnerIdentity.address_enc).limit(1))
    if stored is None:
        if token is not None:
            try:
                vault.decrypt(token)
            except PrivacyKeyError:
                raise PrivacyKeyError(_refusal("cannot decrypt the data already stored")) from None
        try:
            async with sessions() as session, session.begin():
                await session.execute(
                    insert(ChannelState).values(key=FINGERPRINT, value=mine, updated_at=now)
                )
            return
        except IntegrityError:  # another instance recorded its key first: compare with that one
            async with sessions() as session:
                stored = await session.scalar(
                    select(ChannelState.value).where(ChannelState.key == FINGERPRINT)
                )
    if stored != mine:
        raise PrivacyKeyError(_refusal(f"the database was written with key {stored}, this one is {mine}"))


def _refusal(why: str) -> str:
    return (
        f"the [privacy] key cannot read this database ({why}): configure the key it was written with "
        "(a restored privacy.key or [privacy] key), never a new one"
    )
