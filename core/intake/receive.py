"""Receive a message, or keep it aside for staff: the one way every channel adapter hands input in.

An adapter has either a message (`InboundMessage`) or input it could not turn into one, or gave up on
(`Aside`: raw, with the reason). `receive_or_keep` takes either. A learner's command (`/status`,
查询进度...) is carried out and answered (`core.intake.learner_commands`); any other message goes through
intake. What intake will not make part of a complaint (an id reused by another sender, machine-written
mail about no ticket: `core.intake.kept_aside`), and every `Aside`, is kept as unparsed with its reason, and
staff are told. Whatever it answers, the input is stored: the adapter may acknowledge it to the
platform (mark the mail read, move the file, answer 200), and receiving it again changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from core.intake.intake import Intake, IntakeResult
from core.intake.kept_aside import KeptAside
from core.intake.learner_commands import carry_out, command_of, receive_message
from core.intake.unparsed import keep_unparsed
from core.messages import InboundMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Aside:
    """Input of `channel` that is no message: kept raw once per `key`, with `reason` for staff."""

    channel: str
    key: str
    raw: str | bytes
    reason: str


@dataclass(frozen=True)
class Kept:
    """What became of input kept aside: its unparsed row, and why (for the log, a reason file, staff)."""

    unparsed_id: int
    reason: str

    def __str__(self) -> str:
        return self.reason


async def receive_or_keep(
    intake: Intake, item: InboundMessage | Aside, now: datetime, *, locale: str | None = None
) -> IntakeResult | Kept:
    """Intake's result for a message it took (or had taken before), or for a learner's command
    (`core.intake.learner_commands`: its answer is the one reply); `Kept` for what is kept aside.
    `locale`: the language the platform says the sender reads, when it says (for a command's answer)."""
    if isinstance(item, Aside):
        # keep_unparsed logs it and tells the first-contact desk
        unparsed_id = await keep_unparsed(intake.core, item.channel, item.key, item.raw, item.reason, now)
        return Kept(unparsed_id, item.reason)
    try:
        command = command_of(intake.core.channels, item)
        if command is not None:
            return await carry_out(intake, item, command, now, locale=locale)
        return await receive_message(intake, item, now)
    except KeptAside as exc:  # intake kept it as unparsed and told staff already
        log.warning("%s message %s kept aside: %s", item.channel, item.external_id, exc)
        return Kept(exc.unparsed_id, str(exc))
