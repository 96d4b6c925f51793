"""What a channel can do, as the core asks it: each channel package states its `Capabilities`, the
application hands the list to the core (the composition root), and the core never names a platform.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from core.text_limits import TextLimit

# What a learner's address on a channel is: a platform id (a chat id, an OpenID), an e-mail address
# ("mailbox") or a phone number. The kind decides how it is indexed for finding the learner again
# and how it is masked.
AddressKind = Literal["id", "mailbox", "phone"]


@dataclass(frozen=True)
class Capabilities:
    """One channel's answers to the core's questions.

    `name` is the channel's name as rows store it (tickets, identities, outbox lanes).
    `writes_back`: a learner who wrote here can be answered here (a voicemail cannot).
    `address`: what a sender id on this channel is (`AddressKind`).
    `buttons`: a message can carry buttons the learner presses (a survey's scores).
    `subjects`: messages carry a subject and thread as mail does (a ticket number in brackets, the
    message they answer): a question or notice about a ticket says its number and joins its thread.
    `calls_back`: a message here is a call to return: the call-back clock runs for it.
    `staff_address`: the staff directory's field holding a member's private address on this channel,
    if staff can be told privately here (escalation alerts, a call-back number on claim).
    `reply_window`: how long after the learner's last message they can still be written to, if limited
    (for the reader: the channel's sender reports a closed window when it meets one).
    `text_limit`: how long one message may be; the channel's sender states the same limit to the
    dispatcher, which sends longer texts in parts.
    """

    name: str
    writes_back: bool = True
    address: AddressKind = "id"
    buttons: bool = False
    subjects: bool = False
    calls_back: bool = False
    staff_address: str | None = None
    reply_window: timedelta | None = None
    text_limit: TextLimit | None = None


class ChannelBook(Mapping[str, Capabilities]):
    """The channels the application composed, by name, in the order it listed them."""

    def __init__(self, channels: Iterable[Capabilities] = ()) -> None:
        self._by_name: dict[str, Capabilities] = {}
        for capabilities in channels:
            if capabilities.name in self._by_name:
                raise ValueError(f"channel {capabilities.name!r} is listed twice")
            self._by_name[capabilities.name] = capabilities

    def __getitem__(self, name: str) -> Capabilities:
        return self._by_name[name]

    def of(self, name: str) -> Capabilities:
        """What the channel a row names can do. A name not listed (the "staff" channel of complaints
        staff log on a learner's behalf, a channel no longer composed) can do nothing: it is not
        written back to, and its addresses are plain ids."""
        found = self._by_name.get(name)
        return found if found is not None else Capabilities(name=name, writes_back=False)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def writing_back(self) -> tuple[str, ...]:
        """The channels a learner can be answered on."""
        return tuple(name for name, c in self._by_name.items() if c.writes_back)

    def calling_back(self) -> tuple[str, ...]:
        """The channels whose messages are calls to return (their sender id is the number to call)."""
        return tuple(name for name, c in self._by_name.items() if c.calls_back)

    def writing_to(self, address: AddressKind) -> str | None:
        """The first listed channel that writes back to an address of this kind (a mailbox): where
        an address a staff member logged for a learner is written to."""
        return next(
            (name for name, c in self._by_name.items() if c.writes_back and c.address == address), None
        )

    def reaching_staff(self) -> tuple[Capabilities, ...]:
        """The channels that can tell a staff member something privately, in the listed order."""
        return tuple(c for c in self._by_name.values() if c.staff_address is not None)

    def check_staff_fields(self, fields: Iterable[str]) -> None:
        """Refuse a channel that names a staff field the directory does not hold (`fields`): found
        when the application composes the core, not when the first alert is due."""
        known = set(fields)
        for capabilities in self.reaching_staff():
            if capabilities.staff_address not in known:
                raise ValueError(
                    f"channel {capabilities.name!r} reaches staff by {capabilities.staff_address!r}, "
                    "which the staff directory does not hold"
                )
