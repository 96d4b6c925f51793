"""The web app: health and metrics now, channel webhooks as they are added."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from sqlalchemy import func, select, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.context import CoreContext
from core.models import OutboxRow, Ticket


class Metrics:
    """Our own registry (no process-wide globals), refreshed from the database at each scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tickets = Gauge("complaintbot_tickets", "Tickets by status", ["status"], registry=self.registry)
        self.outbox = Gauge(
            "complaintbot_outbox_messages", "Outbox rows by status", ["status"], registry=self.registry
        )

    async def refresh(self, core: CoreContext) -> None:
        async with core.sessions() as session:
            tickets = await session.execute(select(Ticket.status, func.count()).group_by(Ticket.status))
            outbox = await session.execute(select(OutboxRow.status, func.count()).group_by(OutboxRow.status))
        for status, count in tickets:
            self.tickets.labels(status=status).set(count)
        for status, count in outbox:
            self.outbox.labels(status=status).set(count)


def create_app(core: CoreContext, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    metrics = Metrics()

    async def healthz(request: Request) -> Response:
        try:
            async with core.sessions() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:  # reported to the prober, not raised: this is the readiness check
            return JSONResponse(
                {"status": "error", "database": f"{type(exc).__name__}: {exc}"}, status_code=503
            )
        return JSONResponse({"status": "ok", "database": "ok"})

    async def metrics_route(request: Request) -> Response:
        await metrics.refresh(core)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [Route("/healthz", healthz), Route("/metrics", metrics_route)]
    return Starlette(routes=routes + list(extra_routes or []))
