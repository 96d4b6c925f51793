"""What a staff member asks of the bot, whichever channel they work from: who, where, what, and the
message it came in, so that a command, a pressed button or words in a ticket's thread read the same
from a Telegram group as from any other channel that lets staff talk to the bot.

A channel turns its own events into a `StaffRequest`; the staff-command layer acts on that alone.
Which ticket a request is about: the number first in its words, else the card it replies to
(`reply_to`), else the ticket whose thread it was said in (`Place.thread`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.storage.models import Staff
from core.tickets.workflow import MANAGER


@dataclass(frozen=True)
class Place:
    """Where something was said: a chat on a channel and, where chats have threads (forum topics),
    the thread. Ids are the channel's own, as text."""

    channel: str
    chat: str
    thread: str | None = None

    @property
    def room(self) -> Place:
        """The chat itself, whichever of its threads this is."""
        return Place(self.channel, self.chat)

    @property
    def thread_ref(self) -> str | None:
        """The thread as a staff lane records where it posted a card (`SendResult.thread_ref`)."""
        return None if self.thread is None else f"{self.chat}:{self.thread}"

    @property
    def label(self) -> str:
        """The place as the audit trail names it: "Telegram chat -1001"."""
        return f"{self.channel.capitalize()} chat {self.chat}"


@dataclass(frozen=True)
class StaffAddress:
    """Who acts: their address on the channel they used, the value the staff directory holds in the
    field that channel names (`Capabilities.staff_address`); `name` as the platform shows them."""

    channel: str
    address: str
    name: str


@dataclass(frozen=True)
class Command:
    """A command: its name without the "/" and the words after it."""

    name: str
    args: str = ""


@dataclass(frozen=True)
class Press:
    """A button pressed under one of our messages, with the action the card gave it ("claim:TS-…"),
    and the press's id, for the channel to answer the press with a short notice."""

    action: str
    press_id: str

    @property
    def command(self) -> Command:
        """The command the button stands for: a card's action is "<command>:<its words>"
        (`core.tickets.cards`)."""
        name, _, args = self.action.partition(":")
        return Command(name, args)


@dataclass(frozen=True)
class Said:
    """Plain words, no command: in a ticket's thread they are a reply to the learner."""

    text: str


@dataclass(frozen=True)
class StaffRequest:
    """One thing a staff member said or pressed.

    `key`: the platform's id of it, unique on the channel and the same when it is delivered again
    (Telegram's update id): answers and moves are keyed by it, so a redelivery changes nothing.
    `message_ref`: the message's own reference, as the channel's sender returns references
    (`SendResult.external_ref`), for the answer to thread under it; None for a press.
    `reply_to`: the reference of the message it replies to (a ticket's card), if any.
    """

    who: StaffAddress
    where: Place
    what: Command | Press | Said
    key: str
    message_ref: str | None = None
    reply_to: str | None = None

    def outbox_key(self, what: str) -> str:
        """The key of a message this request causes: once per request, whatever redelivers it."""
        return f"{self.where.channel}:{self.key}:{what}"


@dataclass(frozen=True)
class StaffRooms:
    """Which chats staff act in: each department's, the default one (departments without their own),
    the managers'. A member acts in their department's chat; a manager in any of them."""

    departments: Mapping[str, Place]
    default: Place | None
    managers: Place | None

    @classmethod
    def on(
        cls,
        channel: str,
        departments: Mapping[str, int | str],
        default: int | str | None,
        managers: int | str | None,
    ) -> StaffRooms:
        """The rooms of one channel, from its chat ids."""

        def place(chat: int | str | None) -> Place | None:
            return None if chat is None else Place(channel, str(chat))

        own = {key: Place(channel, str(chat)) for key, chat in departments.items()}
        return cls(own, place(default), place(managers))

    def allowed(self, staff: Staff, place: Place) -> bool:
        room = place.room  # a ticket's thread is inside its department's chat
        if staff.role == MANAGER:
            return room in {*self.departments.values(), self.default, self.managers}
        return room == self.departments.get(staff.department, self.default)
