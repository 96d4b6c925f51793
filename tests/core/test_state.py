"""Durable channel state and the single-poller lease."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from core.context import CoreContext
from core.storage.db import create_engine, session_factory
from core.storage.state import get_state, hold_lease, release_lease, set_state
from tests.conftest import Database, at

NOW = at("2026-11-23 10:00")


async def test_state_survives_and_is_overwritten(core: CoreContext) -> None:
    assert await get_state(core.sessions, "telegram:offset") is None
    await set_state(core.sessions, "telegram:offset", "101", NOW)
    await set_state(core.sessions, "telegram:offset", "102", NOW)
    assert await get_state(core.sessions, "telegram:offset") == "102"


async def test_instances_storing_the_same_new_key_at_once_all_succeed(db: Database) -> None:
    # Each its own engine, as separate processes have: on PostgreSQL they really run side by side, and
    # two that both find no row must not both try to insert it (one would fail on the primary key).
    engines = [create_engine(db.url) for _ in range(4)]
    try:
        for round_ in range(5):
            key = f"wechat:app:token:{round_}"
            await asyncio.gather(
                *(set_state(session_factory(e), key, f"v{n}", NOW) for n, e in enumerate(engines))
            )
            assert await get_state(db.sessions, key) in {"v0", "v1", "v2", "v3"}
    finally:
        for engine in engines:
            await engine.dispose()


async def test_only_one_instance_holds_a_lease_until_it_runs_out_or_is_released(core: CoreContext) -> None:
    ttl = timedelta(seconds=60)
    assert await hold_lease(core.sessions, "telegram-poller", "a", NOW, ttl)
    assert not await hold_lease(core.sessions, "telegram-poller", "b", NOW + timedelta(seconds=30), ttl)
    assert await hold_lease(
        core.sessions, "telegram-poller", "a", NOW + timedelta(seconds=30), ttl
    )  # renewed
    assert not await hold_lease(core.sessions, "telegram-poller", "b", NOW + timedelta(seconds=80), ttl)
    # "a" died: its last renewal runs out at +90 s, then "b" takes over.
    assert await hold_lease(core.sessions, "telegram-poller", "b", NOW + timedelta(seconds=91), ttl)
    await release_lease(core.sessions, "telegram-poller", "b", NOW + timedelta(seconds=95))
    assert await hold_lease(core.sessions, "telegram-poller", "a", NOW + timedelta(seconds=96), ttl)
