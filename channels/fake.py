"""A fake channel with an inbound and an outbound queue: drives the core in tests and the demo.

It speaks the core's language only (`InboundMessage` in, `OutboundMessage` out), like a real
adapter, and records what it was asked to send. `fail_next` holds exceptions (e.g. `TemporarySendError`)
that the next sends raise, the way a flaky platform fails.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from typing import Any

from core.messages import InboundMessage, OutboundMessage, SendResult
from core.text_limits import TextLimit


class FakeChannel:
    def __init__(self, name: str = "telegram", *, text_limit: TextLimit | None = None) -> None:
        self.name = name
        self.text_limit = text_limit  # how long one message may be: longer ones come in parts
        self.inbound: asyncio.Queue[InboundMessage] = asyncio.Queue()
        self.sent: list[OutboundMessage] = []
        self.fail_next: list[Exception] = []
        self._ids = itertools.count(1)

    def message(self, sender_id: str, text: str, at: datetime, **fields: Any) -> InboundMessage:
        """A learner's message as this channel would deliver it, with a fresh platform id."""
        external_id = str(fields.pop("external_id", f"{self.name}-{next(self._ids)}"))
        return InboundMessage(
            channel=self.name,
            external_id=external_id,
            sender_id=sender_id,
            text=text,
            received_at=at,
            **fields,
        )

    async def send(self, message: OutboundMessage) -> SendResult:
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.sent.append(message)
        return SendResult(external_ref=f"{self.name}-out-{len(self.sent)}")

    def texts_to(self, recipient: str) -> list[str]:
        return [m.text for m in self.sent if m.recipient == recipient]
