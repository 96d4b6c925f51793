"""`run` starts the listed channels the same way for each: a line per channel, their senders on the
outbox, the staff lane to the first channel that brings one, and a fallback only when none does."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from bot.app import Application
from bot.channel_list import CAPABILITIES, channel_classes
from bot.channel_run import start_channels
from bot.config import Settings
from channels.base import Channel, ChannelConfig, ChannelError, Offer, Started
from channels.fake import FakeChannel
from core.capabilities import Capabilities
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import Sender
from core.intake.intake import Intake
from tests.conftest import Database


class _Config(ChannelConfig):
    token: str | None = None

    def missing(self) -> str | None:
        return None if self.token else "no token"


class _Stub(Channel):
    """A channel that brings a learner lane and, when `brings_staff`, a staff sink; it records what
    happened to it in `events`, shared by every stub of a test."""

    name = "stub"
    capabilities = Capabilities(name="stub")
    config_model = _Config
    brings_staff: ClassVar[bool] = False
    refuses: ClassVar[bool] = False
    events: ClassVar[list[str]] = []

    async def start(self, offer: Offer) -> Started:
        self.events.append(f"{self.name} start, staff free: {offer.staff_free}")
        if self.refuses:
            raise ChannelError("the provider refused the token")
        staff = FakeChannel(f"{self.name}-staff") if self.brings_staff else None
        return Started(f"{self.name} listening", senders={self.name: FakeChannel(self.name)}, staff=staff)

    async def stop(self) -> None:
        self.events.append(f"{self.name} stop")

    async def close(self) -> None:
        self.events.append(f"{self.name} close")

    def fallback_staff(self, offer: Offer) -> tuple[Sender, str] | None:
        return (FakeChannel(f"{self.name}-robots"), f"staff chats: {self.name} robots")


def _stub(name: str, *, staff: bool = False, refuses: bool = False, token: str | None = "t") -> _Stub:
    kind = type(f"Stub_{name}", (_Stub,), {"name": name, "brings_staff": staff, "refuses": refuses})
    return kind(_Config(token=token))


def _application(db: Database, core: CoreContext) -> Application:
    dispatcher = Dispatcher(core.sessions, core.vault, {})
    return Application(Settings(), db.engine, core, Intake(core), dispatcher)


async def test_each_channel_says_a_line_and_the_first_staff_sink_wins(
    db: Database, core: CoreContext
) -> None:
    _Stub.events = []
    application = _application(db, core)
    lines: list[str] = []
    channels = [
        _stub("alpha", token=None),  # not configured: skipped with its reason
        _stub("beta", refuses=True),  # cannot start: skipped with the channel's reason
        _stub("gamma", staff=True),
        _stub("delta", staff=True),
    ]
    running = await start_channels(application, lines.append, channels)

    assert lines == [
        "channel alpha: skipped (no token)",
        "channel beta: skipped (the provider refused the token)",
        "channel gamma: gamma listening",
        "channel delta: delta listening",
    ]
    senders = application.dispatcher.senders
    assert set(senders) == {"gamma", "delta", "staff"}
    assert isinstance(senders["staff"], FakeChannel) and senders["staff"].name == "gamma-staff"
    # The later channel knew the staff lane was taken when it started.
    assert _Stub.events == [
        "beta start, staff free: True",
        "gamma start, staff free: True",
        "delta start, staff free: False",
    ]

    await running.stop()
    await running.close()
    assert _Stub.events[3:] == ["delta stop", "gamma stop", "gamma close", "delta close"]


async def test_a_fallback_staff_lane_is_taken_only_when_no_channel_brought_one(
    db: Database, core: CoreContext
) -> None:
    application = _application(db, core)
    lines: list[str] = []
    # The fallback is offered even by a channel that does not run (WeCom robots without the Official Account).
    await start_channels(application, lines.append, [_stub("alpha"), _stub("beta", token=None)])
    staff = application.dispatcher.senders["staff"]
    assert isinstance(staff, FakeChannel) and staff.name == "alpha-robots"
    assert lines[-1] == "staff chats: alpha robots"


def test_every_listed_channel_has_its_own_section_and_capabilities() -> None:
    """A channel added to the list without its `[channels.<name>]` section (or the other way) fails here."""
    config = Settings().channels
    channels = channel_classes()
    assert list(type(config).model_fields) == [c.name for c in channels]
    assert all(type(config.section(c.name)) is c.config_model for c in channels)
    assert list(CAPABILITIES) == [c.capabilities for c in channels]
    assert all(config.of(c.config_model) is config.section(c.name) for c in channels)


async def test_a_channel_that_cannot_start_is_skipped_with_its_reason(
    db: Database, core: CoreContext, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    settings = Settings(
        channels={
            "wechat": {"token": "t", "app_id": "wx1", "app_secret": "s", "encoding_aes_key": "short"},
            "email": {"maildir": str(tmp_path / "mail"), "smtp_host": "smtp.x.cn", "from_address": "c@x.cn"},
            "voicemail": {"spool_dir": str(blocker / "spool")},
        },
        departments={"finance": {"email": "finance at school"}},
    )
    application = Application(
        settings, db.engine, core, Intake(core), Dispatcher(core.sessions, core.vault, {})
    )
    lines: list[str] = []
    running = await start_channels(application, lines.append)
    assert lines[1:3] == [
        "channel wechat: skipped (channels.wechat.encoding_aes_key must be the 43 characters WeChat shows)",
        "channel email: skipped (departments.finance.email: not an e-mail address: 'finance')",
    ]
    assert lines[3].startswith(f"channel voicemail: skipped ([Errno 20] Not a directory: '{blocker}")
    assert running.started == [] and application.dispatcher.senders == {}
