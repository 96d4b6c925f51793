"""Durable channel state (poll offsets) and leases for singleton jobs (one poller among instances)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.storage.delivery_models import ChannelState, Lease


async def get_state(sessions: async_sessionmaker[AsyncSession], key: str) -> str | None:
    async with sessions() as session:
        return await session.scalar(select(ChannelState.value).where(ChannelState.key == key))


async def set_state(sessions: async_sessionmaker[AsyncSession], key: str, value: str, now: datetime) -> None:
    """Store `value` under `key`, last writer wins."""
    async with sessions() as session, session.begin():
        await put_state(session, key, value, now)


async def put_state(session: AsyncSession, key: str, value: str, now: datetime) -> None:
    """`set_state` in the caller's transaction. One statement (an upsert), so that two instances storing
    the same new key at once both succeed instead of one failing on the primary key."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(ChannelState).values(key=key, value=value, updated_at=now)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[ChannelState.key], set_={"value": value, "updated_at": now}
        )
    )


async def swap_state(
    sessions: async_sessionmaker[AsyncSession], key: str, expected: str, value: str, now: datetime
) -> bool:
    """Set `key` to `value` only if it holds `expected`, in one statement: of several messages or
    instances racing for the same state, exactly one wins."""
    async with sessions() as session, session.begin():
        changed = await session.execute(
            update(ChannelState)
            .where(ChannelState.key == key, ChannelState.value == expected)
            .values(value=value, updated_at=now)
        )
        return bool(getattr(changed, "rowcount", 0))


async def hold_lease(
    sessions: async_sessionmaker[AsyncSession], name: str, holder: str, now: datetime, ttl: timedelta
) -> bool:
    """Take or renew the lease `name` for `holder` until now + ttl; False while another holds it."""
    until = now + ttl
    async with sessions() as session, session.begin():
        taken = await session.execute(
            update(Lease)
            .where(Lease.name == name, (Lease.holder == holder) | (Lease.until <= now))
            .values(holder=holder, until=until)
        )
        if getattr(taken, "rowcount", 0):
            return True
        if await session.scalar(select(Lease.name).where(Lease.name == name)) is not None:
            return False
    try:
        async with sessions() as session, session.begin():
            await session.execute(insert(Lease).values(name=name, holder=holder, until=until))
        return True
    except IntegrityError:  # another instance created it first
        return False


async def release_lease(
    sessions: async_sessionmaker[AsyncSession], name: str, holder: str, now: datetime
) -> None:
    """Give the lease up at once (on shutdown), so another instance need not wait for it to run out."""
    async with sessions() as session, session.begin():
        await session.execute(
            update(Lease).where(Lease.name == name, Lease.holder == holder).values(until=now)
        )
