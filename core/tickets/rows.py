"""The rows one intake adds besides the ticket itself, written in one statement per table.

Intake is the hot path: the ORM's unit of work would send one INSERT per object (SQLite cannot
batch them with RETURNING), and every statement costs a round trip to the driver's thread or the
server. Collected here as plain column values, the clocks, events, outbox rows and outgoing
conversation messages of a complaint take four statements whatever their number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from core.delivery.outbox import LEARNER_KINDS
from core.rules.clocks import ClockKeeper
from core.storage.delivery_models import OutboxRow
from core.storage.models import Clock, Event, Message
from core.storage.privacy import Vault
from core.storage.wakeup import written

_INSERT_CLOCKS = insert(Clock).returning(Clock.id, Clock.stage)
_INSERT_EVENTS = insert(Event)
_INSERT_OUTBOX = insert(OutboxRow).returning(OutboxRow.id, OutboxRow.key)
_INSERT_MESSAGES = insert(Message)


@dataclass
class NewRows:
    ticket_id: int
    vault: Vault
    keeper: ClockKeeper | None = None  # when each new clock is first due a look (None: at its deadline)
    clocks: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    # Outbox key -> the clock stage its delivery meets (e.g. the acknowledgement meets "acknowledge").
    meets: dict[str, str] = field(default_factory=dict)

    def clock(
        self,
        stage: str,
        started_at: datetime,
        due_at: datetime,
        *,
        met_at: datetime | None = None,
        paused: bool = False,
    ) -> None:
        self.clocks.append(
            {
                "ticket_id": self.ticket_id,
                "stage": stage,
                "started_at": started_at,
                "due_at": due_at,
                "met_at": met_at,
                "paused": paused,
                "escalation_level": 0,
                "reminded_at": None,
                "next_check_at": (
                    self.keeper.first_check(stage, started_at, due_at, paused=paused, met=met_at is not None)
                    if self.keeper is not None
                    else (None if met_at is not None else due_at)
                ),
            }
        )

    def event(self, at: datetime, actor: str, action: str, detail: str | None = None) -> None:
        self.events.append(
            {"ticket_id": self.ticket_id, "at": at, "actor": actor, "action": action, "detail": detail}
        )

    def send(self, values: dict[str, Any], *, meets: str | None = None) -> dict[str, Any]:
        self.outbox.append(values)
        if meets is not None:
            self.meets[values["key"]] = meets
        return values

    def write(self, session: Session) -> None:
        connection = session.connection()
        clock_ids: dict[str, int] = {}
        if self.clocks:
            result = connection.execute(_INSERT_CLOCKS, self.clocks)
            clock_ids = {stage: clock_id for clock_id, stage in result}
        if self.events:
            connection.execute(_INSERT_EVENTS, self.events)
        if not self.outbox:
            return
        for values in self.outbox:
            stage = self.meets.get(values["key"])
            values["meets_clock_id"] = clock_ids.get(stage) if stage else values.get("meets_clock_id")
        outbox_ids = {key: row_id for row_id, key in connection.execute(_INSERT_OUTBOX, self.outbox)}
        written(session)
        conversation = [
            {
                "ticket_id": self.ticket_id,
                "direction": "out",
                "channel": v["channel"],
                "external_id": None,
                "text_enc": v["payload"]["text"],  # encrypted already (`outbox_values`): the same token
                "attachments": [],
                "raw_enc": None,
                "sender_index": None,
                "outbox_id": outbox_ids[v["key"]],
                "at": v["created_at"],
            }
            for v in self.outbox
            if v["kind"] in LEARNER_KINDS
        ]
        if conversation:
            connection.execute(_INSERT_MESSAGES, conversation)
