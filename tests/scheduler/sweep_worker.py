"""One scheduler instance for the exactly-once test: sweeps simulated time from START to END in STEP
minutes against the database at URL.

    python -m tests.scheduler.sweep_worker URL KEY START END STEP
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta

from bot.app import channel_book
from core.context import CoreContext
from core.rules.policy import parse_policy
from core.rules.templates import Templates
from core.storage.db import create_engine, session_factory
from core.storage.privacy import Vault
from scheduler.sweep import sweep


async def main(url: str, key: str, start: str, end: str, step_minutes: int) -> int:
    engine = create_engine(url)
    core = CoreContext(
        sessions=session_factory(engine),
        policy=parse_policy(),
        vault=Vault([key]),
        templates=Templates(),
        channels=channel_book(),
    )
    now, stop, actions = datetime.fromisoformat(start), datetime.fromisoformat(end), 0
    try:
        while now <= stop:
            actions += sum(report.count for report in await sweep(core, now))
            now += timedelta(minutes=step_minutes)
    finally:
        await core.close()
        await engine.dispose()
    return actions


if __name__ == "__main__":
    url, key, start, end, step = sys.argv[1:6]
    print(asyncio.run(main(url, key, start, end, int(step))))
