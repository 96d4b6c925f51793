"""Key rotation: everything encrypted re-encrypted, and every blind index recomputed, under the first key.

Keys are listed newest first: the first encrypts, all decrypt, and blind indexes come from the last
(oldest), so that adding a key in front changes no stored index. To retire the old keys, `rotate`
re-encrypts every token with the first key and recomputes every index under a vault of the first key
alone, then records that key's fingerprint: from then on only a config whose oldest key is the new one
starts. It works in batches and can be run again after an interruption; the service must be stopped.

One thing cannot follow: a message erased before the rotation keeps its id only as a keyed hash, which
cannot be recomputed; were its platform to deliver it again, it would be taken as new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import KeyedColumnElement

from core.delivery.outbox import recipient_key
from core.privacy.keycheck import FINGERPRINT, fingerprint
from core.storage.contact_kinds import CONTACT_KINDS
from core.storage.delivery_models import ChannelState, OutboxRow, Unparsed
from core.storage.models import Base, Learner, LearnerIdentity, Message, Ticket
from core.storage.privacy import TOKEN_START, PrivacyKeyError, Vault
from core.storage.record_models import ClassificationCorrection

_BATCH = 500
_SEALED = "privacy:clear-text-sealed"
# Every encrypted column: re-encrypted as it is.
ENCRYPTED: tuple[tuple[type[Base], tuple[str, ...]], ...] = (
    (Learner, ("name_enc", "phone_enc", "email_enc")),
    (LearnerIdentity, ("address_enc",)),
    (Ticket, ("contact_enc",)),  # and `summary`, and the outbox's payload texts: `_sealed`
    (Message, ("text_enc", "raw_enc")),
    (OutboxRow, ("recipient_enc",)),
    (Unparsed, ("raw_enc",)),
    (ClassificationCorrection, ()),  # its `text`, like a ticket's summary: `_sealed`
)


@dataclass
class Rotation:
    tokens: int = 0  # values re-encrypted
    indexes: int = 0  # blind indexes recomputed
    unmatched: int = 0  # message sender indexes with no identity to recompute them from (left as they were)
    tables: dict[str, int] = field(default_factory=dict)


def new_vault(keys: Sequence[str]) -> Vault:
    """The vault the data will need after the rotation: the first key alone."""
    if len(keys) < 2:
        raise PrivacyKeyError(
            '[privacy] key holds one key: put a new one in front (key = "NEW,OLD"; '
            "`complaintbot privacy new-key` prints one) and run the rotation again"
        )
    return Vault(keys[:1])


async def rotate(
    sessions: async_sessionmaker[AsyncSession], vault: Vault, keys: Sequence[str], now: datetime
) -> Rotation:
    """Re-encrypt and re-index everything for `keys[0]` alone (`vault` holds all of `keys`)."""
    target = new_vault(keys)
    done = Rotation()
    senders = await _sender_addresses(sessions, vault, target)
    for model, columns in ENCRYPTED:
        count = 0
        async for rows in _batches(sessions, model):
            async with sessions() as session, session.begin():
                for row_id, values in rows:
                    changes: dict[str, Any] = {}
                    for name in columns:
                        token = values[name]
                        if token:
                            changes[name] = vault.rotate(token)
                            done.tokens += 1
                    changes |= _indexes(model, values, vault, target, senders, done)
                    changes |= _sealed(model, values, vault, done)
                    if changes:
                        await session.execute(update(model).where(_id(model) == row_id).values(**changes))
                    count += 1
        done.tables[model.__tablename__] = count
    async with sessions() as session, session.begin():
        await session.execute(
            update(ChannelState)
            .where(ChannelState.key == FINGERPRINT)
            .values(value=fingerprint(target), updated_at=now)
        )
    return done


def _sealed(model: type[Base], values: dict[str, Any], vault: Vault, done: Rotation) -> dict[str, Any]:
    """Texts kept encrypted in columns that may also hold clear text (written before they were
    encrypted, or placeholders): re-encrypted, or encrypted when in clear (`reseal`)."""
    if model is Ticket and values["summary"]:
        done.tokens += 1
        return {"summary": reseal(vault, values["summary"])}
    if model is ClassificationCorrection and values["text"]:
        done.tokens += 1
        return {"text": reseal(vault, values["text"])}
    if model is OutboxRow:
        payload = values["payload"]
        meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
        done.tokens += sum(
            1 for value in (payload.get("text"), payload.get("subject"), meta.get("summary")) if value
        )
        return {"payload": sealed_payload(vault, payload)}
    return {}


def reseal(vault: Vault, value: str) -> str:
    """`value` encrypted with the first key, whether it was encrypted (with any key) or in clear."""
    return vault.encrypt(vault.reveal(value))


def sealed_payload(vault: Vault, payload: dict[str, Any]) -> dict[str, Any]:
    """An outbox payload with its text, subject and summary encrypted with the first key."""
    sealed = dict(payload)
    for name in ("text", "subject"):
        if sealed.get(name):
            sealed[name] = reseal(vault, str(sealed[name]))
    meta = sealed.get("meta")
    if isinstance(meta, dict) and meta.get("summary"):
        sealed["meta"] = {**meta, "summary": reseal(vault, str(meta["summary"]))}
    return sealed


async def seal_clear_text(sessions: async_sessionmaker[AsyncSession], vault: Vault, now: datetime) -> int:
    """Once per database: summaries and outbox texts written in clear by earlier versions, encrypted.
    How many rows changed."""
    async with sessions() as session:
        if await session.scalar(select(ChannelState.value).where(ChannelState.key == _SEALED)):
            return 0
    changed = 0
    for model in (Ticket, OutboxRow):
        async for rows in _batches(sessions, model):
            async with sessions() as session, session.begin():
                for row_id, values in rows:
                    if model is Ticket and values["summary"] and not _is_token(values["summary"]):
                        update_values: dict[str, Any] = {"summary": vault.encrypt(values["summary"])}
                    elif model is OutboxRow and _clear_payload(values["payload"]):
                        update_values = {"payload": sealed_payload(vault, values["payload"])}
                    else:
                        continue
                    await session.execute(update(model).where(_id(model) == row_id).values(**update_values))
                    changed += 1
    async with sessions() as session, session.begin():
        session.add(ChannelState(key=_SEALED, value="1", updated_at=now))
    return changed


def _is_token(value: str) -> bool:
    return value.startswith(TOKEN_START)


def _clear_payload(payload: dict[str, Any]) -> bool:
    meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
    texts = [payload.get("text"), payload.get("subject"), (meta or {}).get("summary")]
    return any(value and not _is_token(str(value)) for value in texts)


def _indexes(
    model: type[Base],
    values: dict[str, Any],
    vault: Vault,
    target: Vault,
    senders: dict[tuple[str, str], str],
    done: Rotation,
) -> dict[str, Any]:
    """The row's blind indexes, recomputed from its decrypted values under `target`."""
    changes: dict[str, Any] = {}
    if model is Learner:
        for kind in CONTACT_KINDS:
            if values[f"{kind}_index"] and values[f"{kind}_enc"]:
                changes[f"{kind}_index"] = target.blind_index(kind, vault.decrypt(values[f"{kind}_enc"]))
    elif model is LearnerIdentity:
        changes["address_index"] = target.blind_index(values["channel"], vault.decrypt(values["address_enc"]))
    elif model is OutboxRow and values["recipient_key"]:
        recipient = vault.decrypt(values["recipient_enc"])
        changes["recipient_key"] = recipient_key(target, values["channel"], recipient)
    elif model is Message and values["sender_index"]:
        address = senders.get((values["channel"], values["sender_index"]))
        if address is None:
            done.unmatched += 1
        else:
            changes["sender_index"] = target.blind_index(values["channel"], address)
    done.indexes += len(changes)
    return changes


async def _sender_addresses(
    sessions: async_sessionmaker[AsyncSession], vault: Vault, target: Vault
) -> dict[tuple[str, str], str]:
    """Each sender's address by its index, old and new: a message keeps only the keyed hash of who sent
    it, and that sender is one of the identities (both, so a second run after an interruption works)."""
    found: dict[tuple[str, str], str] = {}
    async with sessions() as session:
        rows = await session.execute(select(LearnerIdentity.channel, LearnerIdentity.address_enc))
        for channel, token in rows:
            address = vault.decrypt(token)
            found[(channel, vault.blind_index(channel, address))] = address
            found[(channel, target.blind_index(channel, address))] = address
    return found


def _id(model: type[Base]) -> KeyedColumnElement[Any]:
    return model.__table__.c.id


async def _batches(sessions: async_sessionmaker[AsyncSession], model: type[Base]) -> Any:
    """The rows of `model` by id, a batch at a time, as (id, {column: value})."""
    table = model.__table__
    last = 0
    while True:
        async with sessions() as session:
            result = await session.execute(
                select(table).where(_id(model) > last).order_by(_id(model)).limit(_BATCH)
            )
            rows = [(row.id, dict(row._mapping)) for row in result]
        if not rows:
            return
        yield rows
        last = rows[-1][0]
