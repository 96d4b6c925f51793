"""Input intake keeps aside instead of making it part of a complaint: kept as unparsed, staff told.

A channel adapter treats both as done with (mark the e-mail read, move the file, answer 200): the
input is stored with its reason and nothing more can come of receiving it again.
"""

from __future__ import annotations

from core.messages import InboundMessage


class KeptAside(Exception):
    def __init__(self, reason: str, unparsed_id: int) -> None:
        super().__init__(f"{reason}; kept as unparsed #{unparsed_id}")
        self.unparsed_id = unparsed_id


class IdReused(KeptAside):
    """The platform id of this message was already used by another sender: not a redelivery.

    A channel adapter whose ids are only unique per chat must qualify them.
    """

    def __init__(self, message: InboundMessage, unparsed_id: int) -> None:
        super().__init__(
            f"{message.channel} id {message.external_id!r} was already used by another sender", unparsed_id
        )


class NotAComplaint(KeptAside):
    """Machine-written mail (an out-of-office reply, a bounce, a list post) that belongs to no ticket:
    recorded for staff, never answered, never a ticket of its own."""

    def __init__(self, message: InboundMessage, unparsed_id: int) -> None:
        super().__init__(f"automatic message ({message.auto_reply}) that belongs to no ticket", unparsed_id)
