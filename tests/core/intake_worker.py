"""Run intakes from a separate process: `python -m tests.core.intake_worker URL KEY WRITERS COUNT TAG`.

Used by the concurrency test so that two processes, each with its own engine, allocate numbers
against one PostgreSQL database at the same time.
"""

from __future__ import annotations

import asyncio
import sys

from bot.app import channel_book
from core.context import CoreContext
from core.intake.intake import Intake
from core.messages import InboundMessage
from core.rules.policy import parse_policy
from core.rules.templates import Templates
from core.storage.db import create_engine, session_factory
from core.storage.privacy import Vault
from tests.conftest import at


async def writer(intake: Intake, tag: str, writer_id: int, count: int) -> None:
    now = at("2026-11-23 10:00")
    for i in range(count):
        sender = f"{tag}-{writer_id}-{i}"
        await intake.receive(
            InboundMessage(
                channel="telegram",
                external_id=sender,
                sender_id=sender,
                text=f"老师上课迟到 {i}",
                received_at=now,
            ),
            now,
        )


async def main(url: str, key: str, writers: int, count: int, tag: str) -> None:
    engine = create_engine(url)
    core = CoreContext(
        sessions=session_factory(engine),
        policy=parse_policy(),
        vault=Vault([key]),
        templates=Templates(),
        channels=channel_book(),
    )
    intake = Intake(core)
    await asyncio.gather(*(writer(intake, tag, w, count) for w in range(writers)))
    await core.close()
    await engine.dispose()


if __name__ == "__main__":
    url, key, writers, count, tag = sys.argv[1:6]
    asyncio.run(main(url, key, int(writers), int(count), tag))
