"""The composition root: builds every part from the settings, explicitly, in one place."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.channel_list import CAPABILITIES
from bot.config import Settings
from bot.metrics import Metrics
from core.capabilities import ChannelBook
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import Sender
from core.intake.intake import Intake
from core.rules.policy import load_policy
from core.rules.templates import Templates
from core.storage.db import create_engine, session_factory
from core.storage.privacy import Vault, generate_key
from core.storage.redaction import Redactor

log = logging.getLogger(__name__)


def privacy_keys(settings: Settings, *, create: bool) -> tuple[list[str], str | None]:
    """The configured keys, else the key file under var/ (made on first run when `create`).

    Returns the keys and, when a key was just generated, a line to tell the operator.
    """
    keys = settings.privacy.keys()
    if keys:
        return keys, None
    path = settings.service.var_dir / "privacy.key"
    if path.exists():
        return [k.strip() for k in path.read_text(encoding="ascii").split(",") if k.strip()], None
    if not create:
        raise FileNotFoundError(
            f"no [privacy] key and no {path}: run `complaintbot init` or `complaintbot run`"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    # Written before any personal data is, and readable by the owner only: losing it loses the data.
    path.touch(mode=0o600)
    path.write_text(key + "\n", encoding="ascii")
    return [
        key
    ], f"no [privacy] key configured: generated one in {path} (back it up; losing it loses the data)"


def channel_book() -> ChannelBook:
    """What the composed channels can do, as the core asks it (`bot.channel_list`)."""
    return ChannelBook(CAPABILITIES)


@dataclass
class Application:
    settings: Settings
    engine: AsyncEngine
    core: CoreContext
    intake: Intake
    dispatcher: Dispatcher
    metrics: Metrics = field(default_factory=Metrics)
    senders: dict[str, Sender] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)

    async def close(self) -> None:
        await self.core.close()
        await self.engine.dispose()


def build(
    settings: Settings, *, senders: Mapping[str, Sender] | None = None, create_key: bool = True
) -> Application:
    notices: list[str] = []
    keys, notice = privacy_keys(settings, create=create_key)
    if notice:
        notices.append(notice)
    engine = create_engine(settings.database_url())
    sessions = session_factory(engine)
    policy_path: Path | None = settings.policy.file
    core = CoreContext(
        sessions=sessions,
        policy=load_policy(policy_path),
        vault=Vault(keys),
        templates=Templates(settings.templates.dir),
        channels=channel_book(),
        prefix=settings.tickets.prefix.upper(),
        department_names=settings.department_names(),
        staff_locale=settings.staff.locale,
        file_roots=tuple(root for section in settings.channels.sections() for root in section.file_roots()),
        # The key file's keys too: they are secrets whether configured or generated.
        redact=Redactor([*settings.secrets(), *keys]),
    )
    all_senders: dict[str, Sender] = dict(senders or {})
    metrics = Metrics()
    dispatcher = Dispatcher(sessions, core.vault, all_senders, observer=metrics, redact=core.redact)
    return Application(
        settings=settings,
        engine=engine,
        core=core,
        intake=Intake(core, observe=metrics.received),
        dispatcher=dispatcher,
        metrics=metrics,
        senders=all_senders,
        notices=notices,
    )


def channel_report(settings: Settings) -> list[tuple[str, str | None]]:
    """Each channel with the reason it is skipped (None: configured)."""
    channels = settings.channels
    return [(name, channels.section(name).missing()) for name in type(channels).model_fields]
