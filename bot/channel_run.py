"""Starting and stopping the listed channels inside `complaintbot run`, the same way for each.

Each configured channel starts in the list's order and says one line; its routes go to the web app
and its senders to the outbox. The `staff` lane (cards and alerts) goes to the first channel that
brings one; when none does, to the first channel offering a fallback (WeCom robots).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from starlette.routing import BaseRoute

from bot.app import Application
from bot.channel_list import build_channels
from bot.staff_commands import StaffCommands
from channels.base import AnswerButton, Channel, ChannelError, Offer, Started
from core.delivery.dispatch import Dispatcher
from core.tickets.staff_requests import StaffRooms

Say = Callable[[str], None]


def utc_now() -> datetime:
    return datetime.now(UTC)


def offer(application: Application) -> Offer:
    """What the application offers every channel it starts."""

    def staff_commands(rooms: StaffRooms, answer: AnswerButton) -> StaffCommands:
        return StaffCommands(application.core, rooms, answer, application.intake)

    return Offer(
        core=application.core,
        intake=application.intake,
        observer=application.metrics,
        departments={key: d.model_dump() for key, d in application.settings.departments.items()},
        staff_commands=staff_commands,
        clock=utc_now,
    )


async def start_channel(channel: Channel, application: Application, given: Offer) -> Started:
    """Start one channel and register its senders with the outbox. Raises `ChannelError`."""
    dispatcher = application.dispatcher
    started = await channel.start(replace(given, staff_free="staff" not in dispatcher.senders))
    dispatcher.senders.update(started.senders)
    if started.staff is not None and "staff" not in dispatcher.senders:
        dispatcher.senders["staff"] = started.staff
    return started


@dataclass
class RunningChannels:
    """The channels `run` started, and the web routes they brought."""

    started: list[Channel] = field(default_factory=list)
    routes: list[BaseRoute] = field(default_factory=list)

    async def stop(self) -> None:
        """What comes in stops first, the last started first."""
        for channel in reversed(self.started):
            await channel.stop()

    async def close(self) -> None:
        """Once the outbox stopped: what the senders used."""
        for channel in self.started:
            await channel.close()


async def start_channels(
    application: Application, say: Say, channels: Sequence[Channel] | None = None
) -> RunningChannels:
    """Start every configured channel (by default the listed ones, built from the settings), saying a
    line for each: started, or skipped and why."""
    running = RunningChannels()
    given = offer(application)
    if channels is None:
        channels = build_channels(application.settings.channels)
    for channel in channels:
        missing = channel.missing()
        if missing:
            say(f"channel {channel.name}: skipped ({missing})")
            continue
        try:
            started = await start_channel(channel, application, given)
        except ChannelError as exc:  # a wrong token, a directory that cannot be made, a bad address
            say(f"channel {channel.name}: skipped ({exc})")
            continue
        say(f"channel {channel.name}: {started.summary}")
        running.started.append(channel)
        running.routes.extend(started.routes)
    _fallback_staff(application.dispatcher, channels, given, say)
    return running


def _fallback_staff(dispatcher: Dispatcher, channels: Sequence[Channel], given: Offer, say: Say) -> None:
    for channel in channels:
        if "staff" in dispatcher.senders:
            return
        fallback = channel.fallback_staff(given)
        if fallback is not None:
            dispatcher.senders["staff"], line = fallback
            say(line)
