"""A local stand-in of the WeChat Official Account API and of WeCom group robots, over real HTTP.

    async with WechatApiServer(app_id="wx123", app_secret="s3cret") as api:
        client = WechatClient("wx123", "s3cret", api.url)      # wechatpy, pointed here
        ...                                                    # run the code under test
        assert api.custom_messages[0]["touser"] == "o-learner"

Starlette served by uvicorn on 127.0.0.1 (a free port) as a task of the running event loop
(`standins.server`); wechatpy's blocking calls run in worker threads, so the loop stays free to answer
them. Routes and answers as api.weixin.qq.com and qyapi.weixin.qq.com give them: HTTP 200 with
`{"errcode": 0, "errmsg": "ok"}` or an error code.

- `GET /cgi-bin/token?grant_type=client_credential&appid=&secret=` issues `TOKEN-1`, `TOKEN-2`...
  (7200 s); a wrong appid is 40013, a wrong secret 40125.
- `POST /cgi-bin/message/custom/send?access_token=` (text only), `POST /cgi-bin/message/template/send`:
  a missing token is 41001, a revoked one 40001, an expired one 42001; a learner whose 48-hour window is
  closed (`close_window`) gets 45015 for customer-service messages, a text over 2048 bytes 45002; an
  unknown template_id is 40037.
- `POST /cgi-bin/webhook/send?key=` (WeCom robot): an unknown key is 93000; markdown over 4096 bytes or
  text over 2048 bytes is 40058.
- `fail_next(endpoint, errcode)` answers the next call(s) of an endpoint with an error (-1, 45047...);
  `fail_http_next(endpoint, status)` with an HTTP error status (a gateway's 502, a 500).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from standins.server import LoopbackServer

JSONDict = dict[str, Any]

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40013: "invalid appid",
    40037: "invalid template_id",
    40058: "invalid Request Parameter",
    40125: "invalid appsecret",
    41001: "access_token missing",
    42001: "access_token expired",
    45002: "content size out of limit",
    45009: "api freq out of limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    93000: "invalid webhook url",
}
CUSTOM, TEMPLATE, TOKEN, ROBOT = "message/custom/send", "message/template/send", "token", "webhook/send"


class ApiError(Exception):
    def __init__(self, errcode: int, errmsg: str | None = None) -> None:
        super().__init__(errmsg)
        self.errcode = errcode
        self.errmsg = errmsg or ERRMSG.get(errcode, "error")


@dataclass
class Call:
    """One request: the endpoint (`token`, `message/custom/send`...), its query, its body, the errcode."""

    endpoint: str
    query: dict[str, str]
    body: JSONDict
    errcode: int = 0


class WechatApiServer:
    """The stand-in. Observe `calls`, `token_calls`, `custom_messages`, `template_messages`,
    `robot_posts`; shape it with `fail_next`, `revoke_tokens`, `expire_tokens`, `close_window`,
    `template_ids` and `robot_keys`."""

    def __init__(
        self,
        app_id: str = "wx-test-app",
        app_secret: str = "test-secret",
        *,
        template_ids: tuple[str, ...] = ("TPL-complaint",),
        robot_keys: tuple[str, ...] = (),
    ) -> None:
        self.app_id, self.app_secret = app_id, app_secret
        self.template_ids = set(template_ids)
        self.robot_keys = set(robot_keys)
        self.host, self.port = "127.0.0.1", 0
        self.calls: list[Call] = []
        self.tokens: dict[str, int] = {}  # token -> 0 valid, else the errcode it answers with
        self.closed_windows: set[str] = set()
        self._failures: dict[str, list[tuple[int, str | None]]] = {}
        self._http_failures: dict[str, list[int]] = {}
        self._http = LoopbackServer("WeChat API stand-in", self.host)

    # ------------------------------------------------------------------ where it is

    @property
    def url(self) -> str:
        """The value for `[channels.wechat] api_base_url`."""
        return f"http://{self.host}:{self.port}/"

    @property
    def robot_url(self) -> str:
        """The value for `[channels.wechat] wecom_robot_url`."""
        return f"http://{self.host}:{self.port}/cgi-bin/webhook/send"

    # ------------------------------------------------------------------ observing

    def ok_calls(self, endpoint: str) -> list[Call]:
        return [c for c in self.calls if c.endpoint == endpoint and c.errcode == 0]

    @property
    def token_calls(self) -> int:
        return len([c for c in self.calls if c.endpoint == TOKEN])

    @property
    def custom_messages(self) -> list[JSONDict]:
        return [c.body for c in self.ok_calls(CUSTOM)]

    @property
    def template_messages(self) -> list[JSONDict]:
        return [c.body for c in self.ok_calls(TEMPLATE)]

    @property
    def robot_posts(self) -> list[tuple[str, JSONDict]]:
        return [(c.query.get("key", ""), c.body) for c in self.ok_calls(ROBOT)]

    # ------------------------------------------------------------------ shaping

    def fail_next(self, endpoint: str, errcode: int, errmsg: str | None = None, times: int = 1) -> None:
        """Answer the next `times` calls of `endpoint` with `errcode` (after the token check)."""
        self._failures.setdefault(endpoint, []).extend([(errcode, errmsg)] * times)

    def fail_http_next(self, endpoint: str, status: int = 500, times: int = 1) -> None:
        """Answer the next `times` calls of `endpoint` with HTTP `status` and no JSON, before any check."""
        self._http_failures.setdefault(endpoint, []).extend([status] * times)

    def revoke_tokens(self) -> None:
        """Every token issued so far answers 40001 (as after another party fetched a new one)."""
        self.tokens = dict.fromkeys(self.tokens, 40001)

    def expire_tokens(self) -> None:
        """Every token issued so far answers 42001."""
        self.tokens = dict.fromkeys(self.tokens, 42001)

    def close_window(self, openid: str) -> None:
        """The learner has not written for 48 hours: customer-service messages get 45015."""
        self.closed_windows.add(openid)

    # ------------------------------------------------------------------ the API

    def _check_token(self, query: dict[str, str]) -> None:
        token = query.get("access_token")
        if not token:
            raise ApiError(41001)
        state = self.tokens.get(token, 40001)
        if state:
            raise ApiError(state)

    def _injected(self, endpoint: str) -> None:
        queue = self._failures.get(endpoint)
        if queue:
            raise ApiError(*queue.pop(0))

    def _token(self, query: dict[str, str], body: JSONDict) -> JSONDict:
        if query.get("grant_type") != "client_credential":
            raise ApiError(40002, "invalid grant_type")
        if query.get("appid") != self.app_id:
            raise ApiError(40013)
        if query.get("secret") != self.app_secret:
            raise ApiError(40125)
        self._injected(TOKEN)
        token = f"TOKEN-{len(self.tokens) + 1}"
        self.tokens[token] = 0
        return {"access_token": token, "expires_in": 7200}

    def _custom(self, query: dict[str, str], body: JSONDict) -> JSONDict:
        self._check_token(query)
        self._injected(CUSTOM)
        if body.get("msgtype") != "text" or not str(body.get("text", {}).get("content", "")):
            raise ApiError(40008, "invalid message type")
        if not body.get("touser"):
            raise ApiError(40003, "invalid openid")
        if body["touser"] in self.closed_windows:
            raise ApiError(45015)
        if len(str(body["text"]["content"]).encode("utf-8")) > 2048:
            raise ApiError(45002)
        return {"errcode": 0, "errmsg": "ok"}

    def _template(self, query: dict[str, str], body: JSONDict) -> JSONDict:
        self._check_token(query)
        self._injected(TEMPLATE)
        if body.get("template_id") not in self.template_ids:
            raise ApiError(40037)
        if not body.get("touser"):
            raise ApiError(40003, "invalid openid")
        return {"errcode": 0, "errmsg": "ok", "msgid": 200000 + len(self.template_messages)}

    def _robot(self, query: dict[str, str], body: JSONDict) -> JSONDict:
        if query.get("key") not in self.robot_keys:
            raise ApiError(93000)
        self._injected(ROBOT)
        kind = body.get("msgtype")
        if kind == "image":  # base64 of the picture, and the MD5 of its bytes, which WeCom checks
            image = body.get("image", {})
            try:
                content = base64.b64decode(str(image.get("base64", "")), validate=True)
            except ValueError:
                raise ApiError(40009, "invalid image size") from None
            if not content or hashlib.md5(content).hexdigest() != image.get("md5"):
                raise ApiError(40009, "invalid image md5")
            return {"errcode": 0, "errmsg": "ok"}
        limit = {"markdown": 4096, "text": 2048}.get(str(kind))
        text = str(body.get(str(kind), {}).get("content", "")) if limit else ""
        if limit is None or not text:
            raise ApiError(40008, "invalid message type")
        if len(text.encode("utf-8")) > limit:
            raise ApiError(40058, f"{kind}.content exceed max length {limit}")
        return {"errcode": 0, "errmsg": "ok"}

    async def _handle(self, request: Request) -> JSONResponse:
        endpoint = request.path_params["endpoint"]
        query = dict(request.query_params)
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}  # wechatpy posts JSON without a content type
        except ValueError:
            return JSONResponse({"errcode": 47001, "errmsg": "data format error"})
        call = Call(endpoint, query, body if isinstance(body, dict) else {})
        self.calls.append(call)
        statuses = self._http_failures.get(endpoint)
        if statuses:
            call.errcode = -statuses[0]
            return JSONResponse({"error": "upstream"}, status_code=statuses.pop(0))
        handler = {TOKEN: self._token, CUSTOM: self._custom, TEMPLATE: self._template, ROBOT: self._robot}
        if endpoint not in handler:
            call.errcode = 48001
            return JSONResponse({"errcode": 48001, "errmsg": "api unauthorized"})
        try:
            return JSONResponse(handler[endpoint](query, call.body))
        except ApiError as exc:
            call.errcode = exc.errcode
            return JSONResponse({"errcode": exc.errcode, "errmsg": exc.errmsg})

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = Starlette(routes=[Route("/cgi-bin/{endpoint:path}", self._handle, methods=["GET", "POST"])])
        self.port = await self._http.start(app, startup_timeout=5)

    async def stop(self) -> None:
        await self._http.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
