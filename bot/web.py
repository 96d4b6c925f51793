"""The web app: health and metrics, and the routes the started channels hand over."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.metrics import Metrics
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher


def create_app(
    core: CoreContext,
    extra_routes: list[BaseRoute] | None = None,
    *,
    dispatcher: Dispatcher | None = None,
    metrics: Metrics | None = None,
) -> Starlette:
    """The web app; `dispatcher` lets `/metrics` show the outbox lanes, `metrics` is the registry that
    intake and the dispatcher report to (a fresh one when not given)."""
    metrics = metrics or Metrics()

    async def healthz(request: Request) -> Response:
        try:
            async with core.sessions() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:  # reported to the prober, not raised: this is the readiness check
            return JSONResponse(
                {"status": "error", "database": core.redact(f"{type(exc).__name__}: {exc}")}, status_code=503
            )
        return JSONResponse({"status": "ok", "database": "ok"})

    async def metrics_route(request: Request) -> Response:
        await metrics.refresh(core, dispatcher, datetime.now(UTC))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [Route("/healthz", healthz), Route("/metrics", metrics_route)]
    return Starlette(routes=routes + list(extra_routes or []))
