"""`/metrics` as an operator reads it: intake and acknowledgement latency, results per lane, and what
waits per lane (parked messages included), on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx

from bot.metrics import Metrics
from bot.web import create_app
from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import NotConfiguredError
from core.intake.intake import Intake
from core.messages import OutboundMessage, SendResult
from tests.conftest import at

NOW = at("2026-11-23 10:00")


class Unreachable:
    async def send(self, message: OutboundMessage) -> SendResult:
        raise NotConfiguredError(f"no staff chat configured for {message.recipient!r}")


async def test_metrics_show_latencies_results_and_what_waits_per_lane(core: CoreContext) -> None:
    metrics = Metrics()
    intake = Intake(core, observe=metrics.received)
    learners = FakeChannel("telegram")
    senders = {"telegram": learners, "staff": Unreachable()}
    dispatcher = Dispatcher(core.sessions, core.vault, senders, observer=metrics)
    await intake.receive(learners.message("chat-1", "老师上课总是迟到", NOW), NOW)
    await dispatcher.drain(NOW)

    app = create_app(core, dispatcher=dispatcher, metrics=metrics)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as client:
        text = (await client.get("/metrics")).text
    lines = set(text.splitlines())
    assert 'complaintbot_intake_seconds_count{channel="telegram"} 1.0' in lines
    assert 'complaintbot_acknowledgement_seconds_count{channel="telegram"} 1.0' in lines
    assert 'complaintbot_outbox_results_total{channel="telegram",result="sent"} 2.0' in lines
    assert 'complaintbot_outbox_results_total{channel="staff",result="parked"} 1.0' in lines
    assert 'complaintbot_outbox_messages{channel="staff",status="parked"} 1.0' in lines
    assert 'complaintbot_outbox_oldest_due_seconds{channel="telegram"} 0.0' in lines
    assert 'complaintbot_tickets{status="routed"} 1.0' in lines
