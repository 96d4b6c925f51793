"""The one shape every channel has: a package under `channels/` with its own config model and a
`Channel` the application starts and stops (docs/adding-a-channel.md).

A channel imports `core` and itself only. What it needs from the application (the core, intake, the
metrics, the staff-command layer, the departments' settings) arrives in an `Offer` when it starts;
what it runs (web routes, background tasks, senders for the outbox lanes) it hands back in `Started`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from core.capabilities import Capabilities
from core.context import CoreContext
from core.delivery.outbox import Sender
from core.delivery.record import DeliveryObserver
from core.intake.intake import Intake
from core.tickets.staff_requests import StaffRooms

if TYPE_CHECKING:  # every command reads the config models here; only `run` needs the web framework
    from starlette.routing import BaseRoute

# How a channel answers a pressed button with a short notice: (the press's id, the text).
AnswerButton = Callable[[str, str], Awaitable[None]]
# The application's staff-command layer, for a channel staff give commands on: given where that
# channel's staff rooms are and how to answer a pressed button, the handler of each staff event.
StaffCommandsFactory = Callable[[StaffRooms, AnswerButton], Callable[[Any, datetime], Awaitable[None]]]


class ChannelError(Exception):
    """The channel cannot start; the message is the one-line reason `complaintbot run` prints."""


class ChannelConfig(BaseModel):
    """A channel's `[channels.<name>]` section. Unknown keys are refused, like everywhere in the file."""

    model_config = ConfigDict(extra="forbid")

    # The keys this channel adds to every `[departments.<key>]` section (a department's own address on
    # the channel), as pydantic's `create_model` takes them: name -> (type, default). The channel reads
    # them from `Offer.departments`.
    department_keys: ClassVar[dict[str, tuple[Any, Any]]] = {}
    # Those of them that are secrets (kept out of logs like the section's own `secrets()`).
    department_secrets: ClassVar[tuple[str, ...]] = ()

    def missing(self) -> str | None:
        """Why the channel cannot run as configured (the line `run` prints), or None: configured."""
        return None

    def secrets(self) -> list[str | None]:
        """The values that must never reach a log line or a stored error (None: not set)."""
        return []

    def file_roots(self) -> tuple[Path, ...]:
        """Directories whose files erasure may delete when a stored message names them."""
        return ()


@dataclass(frozen=True)
class Offer:
    """What the application offers a channel when it starts."""

    core: CoreContext
    intake: Intake
    observer: DeliveryObserver  # the metrics: told of deliveries the outbox never sees
    # Each `[departments.<key>]` section as written (its addresses on every channel), by key.
    departments: Mapping[str, Mapping[str, Any]]
    staff_commands: StaffCommandsFactory
    clock: Callable[[], datetime]
    # No channel listed before this one took the staff lane (cards and alerts): this one may.
    staff_free: bool = True


@dataclass
class Started:
    """What a started channel runs: `summary` follows "channel <name>: " in `run`'s output."""

    summary: str
    routes: list[BaseRoute] = field(default_factory=list)
    senders: dict[str, Sender] = field(default_factory=dict)  # outbox lanes by name
    staff: Sender | None = None  # the `staff` lane, taken only where no earlier channel took it


class Channel(ABC):
    """One channel. The class states what it is; an instance is built from its config section."""

    name: ClassVar[str]  # its `[channels.<name>]` section and the channel name rows store
    capabilities: ClassVar[Capabilities]
    config_model: ClassVar[type[ChannelConfig]]  # the section's model; `config` is one of these

    def __init__(self, config: ChannelConfig) -> None:
        if not isinstance(config, self.config_model):
            raise TypeError(f"channel {self.name} is built from a {self.config_model.__name__}")
        self.config = config

    def missing(self) -> str | None:
        """Why the channel is skipped, or None when it is configured to run."""
        return self.config.missing()

    @abstractmethod
    async def start(self, offer: Offer) -> Started:
        """Start taking messages in; raises `ChannelError` with everything it opened closed again."""

    async def stop(self) -> None:
        """Stop taking messages in (before the outbox stops: what came in still gets answered)."""
        return None  # a channel with nothing running in the background has nothing to stop

    async def close(self) -> None:
        """Let go of what the senders used, once the outbox has stopped."""
        return None  # most senders hold nothing open, or close themselves (`close()` on the sender)

    def fallback_staff(self, offer: Offer) -> tuple[Sender, str] | None:
        """A staff lane this channel offers even when it does not run, taken when no started channel
        took one, with the line `run` prints then (WeChat's WeCom robots)."""
        return None
