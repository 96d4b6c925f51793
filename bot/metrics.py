"""`/metrics`: what an operator watches, in our own Prometheus registry (no process-wide globals).

Counted as it happens in this process: intake latency (a message handed to intake until its commit),
acknowledgement latency (the message taken in, i.e. the ticket's creation, until the acknowledgement left:
the commit and the outbox's wait), and every delivery result
per lane. Read from the database at each scrape, so that every instance shows the same: tickets by
status, outbox rows by lane and status (parked included), and how long each lane's oldest due message
has waited.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import func, select

from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.storage.models import Ticket

# Seconds: the promise is "within seconds"; the tail shows how far a backlog stretches it.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tickets = Gauge("complaintbot_tickets", "Tickets by status", ["status"], registry=self.registry)
        self.outbox = Gauge(
            "complaintbot_outbox_messages",
            "Outbox rows not yet sent (pending, sending, parked) or given up (dead), per lane",
            ["channel", "status"],
            registry=self.registry,
        )
        self.oldest_due = Gauge(
            "complaintbot_outbox_oldest_due_seconds",
            "How long the lane's oldest sendable message has been due (0: none waiting)",
            ["channel"],
            registry=self.registry,
        )
        self.results = Counter(
            "complaintbot_outbox_results",
            "Delivery attempts recorded by this process, per lane and result",
            ["channel", "result"],
            registry=self.registry,
        )
        self.acknowledgement = Histogram(
            "complaintbot_acknowledgement_seconds",
            "From a ticket's creation (its message taken in) until its acknowledgement was sent",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.intake = Histogram(
            "complaintbot_intake_seconds",
            "From a message handed to intake until it was committed",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    # core.delivery.record.DeliveryObserver
    def delivered(self, lane: str, kind: str, result: str, waited: timedelta | None) -> None:
        self.results.labels(channel=lane, result=result).inc()
        if kind == "ack" and waited is not None:
            self.acknowledgement.labels(channel=lane).observe(max(waited.total_seconds(), 0.0))

    # core.intake.intake.Intake.observe
    def received(self, channel: str, seconds: float) -> None:
        self.intake.labels(channel=channel).observe(seconds)

    async def refresh(self, core: CoreContext, dispatcher: Dispatcher | None, now: datetime) -> None:
        async with core.sessions() as session:
            tickets = await session.execute(select(Ticket.status, func.count()).group_by(Ticket.status))
        for status, count in tickets:
            self.tickets.labels(status=status).set(count)
        if dispatcher is None:
            return
        self.outbox.clear()  # a lane that emptied must not keep showing its last figures
        for state in await dispatcher.states(now):
            for status, count in state.counts.items():
                self.outbox.labels(channel=state.lane, status=status).set(count)
            waited = state.oldest_due.total_seconds() if state.oldest_due is not None else 0.0
            self.oldest_due.labels(channel=state.lane).set(waited)
