"""Everything the core's services need, wired once by the application (the composition root)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.capabilities import ChannelBook
from core.classification.classify import ClassificationRules
from core.classification.rules import rules_of
from core.rules.calendar import BusinessCalendar
from core.rules.clocks import ClockKeeper
from core.rules.policy import Policy
from core.rules.templates import Templates
from core.storage.db import outbox_signal
from core.storage.models import Staff
from core.storage.privacy import Vault
from core.storage.redaction import Redactor
from core.storage.wakeup import SIGNAL
from core.storage.writer import Writer


@dataclass
class CoreContext:
    sessions: async_sessionmaker[AsyncSession]
    policy: Policy
    vault: Vault
    templates: Templates
    # What each composed channel can do: the core asks it instead of naming platforms.
    channels: ChannelBook
    prefix: str = "TS"
    department_names: Mapping[str, str] = field(default_factory=dict)
    staff_locale: str = "zh"
    # Directories whose files erasure may delete when a message names them (recordings); nothing else.
    file_roots: tuple[Path, ...] = ()
    # Applied to every error text before it is stored: the configured secrets, identifiers
    # (core.storage.redaction).
    redact: Callable[[str], str] = field(default_factory=Redactor)
    calendar: BusinessCalendar = field(init=False)
    clocks: ClockKeeper = field(init=False)
    rules: ClassificationRules = field(init=False)
    writer: Writer = field(init=False)

    def __post_init__(self) -> None:
        self.channels.check_staff_fields(Staff.__table__.columns.keys())
        self.calendar = BusinessCalendar(self.policy.calendar.settings())
        self.clocks = ClockKeeper(self.policy, self.calendar)
        self.rules = rules_of(self.policy)
        engine = self.sessions.kw["bind"]
        if not isinstance(engine, AsyncEngine):
            raise TypeError("CoreContext.sessions must be bound to an AsyncEngine")
        # The writer's sessions fire the same outbox signal as ours (`core.storage.wakeup`).
        self.writer = Writer(engine, info={SIGNAL: outbox_signal(self.sessions)})

    async def close(self) -> None:
        await self.writer.close()

    def department_name(self, key: str) -> str:
        return self.department_names.get(key, key)

    def local_text(self, at: datetime) -> str:
        """A time as learners and staff read it: local, to the minute."""
        return at.astimezone(self.calendar.tz).strftime("%Y-%m-%d %H:%M")

    def limits(self, *, major: bool) -> dict[str, dict[str, Any]]:
        """Each stage's effective duration, for the texts that promise them."""
        out: dict[str, dict[str, Any]] = {}
        for name, rule in self.policy.stages.items():
            hours = rule.major_hours if major and rule.major_hours is not None else rule.hours
            days = (
                rule.major_working_days
                if major and rule.major_working_days is not None
                else rule.working_days
            )
            out[name] = {"hours": hours, "working_days": days, "round_the_clock": rule.round_the_clock}
        return out
