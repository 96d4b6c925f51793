"""`POST /telegram`: Telegram's webhook delivery, handed to the same handler long polling uses."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from channels.http import BodyTooLarge, read_body

log = logging.getLogger(__name__)

TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TELEGRAM_MAX_BODY = 1024 * 1024  # updates are a few kB; anything this large is not from Telegram

UpdateHandler = Callable[[Mapping[str, Any]], Awaitable[None]]


def telegram_webhook(
    handle: UpdateHandler, secret: str, *, path: str = "/telegram", max_body: int = TELEGRAM_MAX_BODY
) -> Route:
    """The route. The secret header is checked first (403, nothing read or stored). The answer is 200
    only after the handler returned, i.e. after the update's effects are committed (or, through
    `UpdateGate`, after an update that keeps failing was kept for staff); if it raises, 500 makes
    Telegram deliver the update again, and the handler's dedupe keeps a redelivery from creating
    anything twice.
    """
    if not secret:
        raise ValueError("a Telegram webhook needs a non-empty secret")
    expected = secret.encode()

    async def receive(request: Request) -> Response:
        given = request.headers.get(TELEGRAM_SECRET_HEADER)
        if given is None or not hmac.compare_digest(given.encode(), expected):
            return JSONResponse({"ok": False}, status_code=403)
        try:
            body = await read_body(request, max_body)
        except BodyTooLarge:
            return JSONResponse({"ok": False, "error": "body too large"}, status_code=413)
        try:
            update = json.loads(body)
        except (ValueError, RecursionError):  # also bytes that are not UTF-8, or absurd nesting
            return JSONResponse({"ok": False, "error": "body is not JSON"}, status_code=400)
        if not isinstance(update, dict):
            return JSONResponse({"ok": False, "error": "body is not a JSON object"}, status_code=400)
        try:
            await handle(update)
        except Exception:  # the update is not done with: Telegram delivers it again after a 5xx
            log.exception("telegram update %s failed; answered 500 for a redelivery", update.get("update_id"))
            return JSONResponse({"ok": False}, status_code=500)
        return JSONResponse({"ok": True})

    return Route(path, receive, methods=["POST"])
