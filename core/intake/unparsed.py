"""Input a channel could not turn into a message: kept raw with the reason, and staff are told.

Nothing received is dropped. The platform is acknowledged only after this row commits, and a
redelivery of the same unusable input (same `(channel, external_id)`) is recorded once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.delivery.outbox import enqueue
from core.messages import storage_key
from core.storage.db import transaction
from core.storage.delivery_models import Unparsed

log = logging.getLogger(__name__)
RAW_LIMIT = 1_000_000  # characters kept of one raw payload; the reason says when it was cut


async def keep_unparsed(
    core: CoreContext,
    channel: str,
    external_id: str,
    raw: str | bytes,
    reason: str,
    now: datetime,
    *,
    notify: bool = True,
) -> int:
    """Store the raw input with the reason and (unless `notify` is false) tell the first-contact desk;
    returns the row id. Machine-written mail is kept without a notice: a notice mailed to a desk whose
    address is the complaint mailbox would come back as machine-written mail, for ever."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    reason = core.redact(reason)  # an exception's words may quote a secret; the raw input is encrypted
    if len(text) > RAW_LIMIT:
        reason = f"{reason} (raw input cut to {RAW_LIMIT} of {len(text)} characters)"
        text = text[:RAW_LIMIT]
    async with transaction(core.sessions) as session:
        existing = await _find(session, channel, storage_key(external_id))
        if existing is not None:
            return existing.id
        row = Unparsed(
            channel=channel,
            external_id=storage_key(external_id),
            reason=reason,
            raw_enc=core.vault.encrypt(text),
            received_at=now,
        )
        session.add(row)
        await session.flush()
        if notify:
            notice = core.templates.render(
                core.staff_locale, "notice_unparsed.txt", channel=channel, reason=reason, id=row.id
            )
            desk = core.policy.departments.first_contact
            enqueue(
                session,
                core.vault,
                key=f"unparsed:{row.id}",
                channel="staff",
                recipient=desk,
                kind="notice-staff",
                text=notice,
                now=now,
                meta={"unparsed_id": row.id, "department": desk},
            )
        log.warning("unparsed %s input %s kept as #%d: %s", channel, external_id, row.id, reason)
        return row.id


async def _find(session: AsyncSession, channel: str, external_id: str) -> Unparsed | None:
    return await session.scalar(
        select(Unparsed).where(Unparsed.channel == channel, Unparsed.external_id == external_id)
    )
