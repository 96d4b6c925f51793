"""Who can be reached where, by asking the channels (`core.capabilities`), never naming one.

A learner is written to on a channel that writes back; an address a staff member logged for them
(`/log`) is written to on the channel that writes to that kind of address. A staff member is told
something privately through the first listed channel that reaches staff and for which the staff
directory holds their address (the field the channel names, `Capabilities.staff_address`).
"""

from __future__ import annotations

from core.capabilities import ChannelBook
from core.messages import STAFF_LOGGED
from core.storage.models import Staff


def written_address(channels: ChannelBook, channel: str, address: str) -> tuple[str, str] | None:
    """(channel, address) to write to a learner known by `address` on `channel`, or None (a voicemail,
    a phone number staff logged: only a call reaches it)."""
    if channels.of(channel).writes_back:
        return channel, address
    if channel == STAFF_LOGGED and "@" in address:  # logged by staff with an e-mail address
        mail = channels.writing_to("mailbox")
        return (mail, address) if mail is not None else None
    return None


def private_address(channels: ChannelBook, person: Staff) -> tuple[str, str] | None:
    """(channel, recipient) to tell `person` something privately, or None: their department's chat
    must do."""
    for capabilities in channels.reaching_staff():
        field = capabilities.staff_address
        recipient = getattr(person, field) if field else None
        if recipient:
            return capabilities.name, str(recipient)
    return None
