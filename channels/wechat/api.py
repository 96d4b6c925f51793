"""The Official Account's API: one access token shared through the database, and wechatpy's client.

WeChat gives an account one valid access token at a time: fetching a new one retires the old one
(after a few minutes' grace), and `/cgi-bin/token` may be called only about 2,000 times a day. So
every instance takes the token from the `channel_state` table, and only one fetches a new one (under
a database lease) when it is about to run out or WeChat refused it; the others wait for its result.

The token is fetched here with httpx rather than by wechatpy: `WeChatClient.fetch_access_token` always
calls api.weixin.qq.com (it ignores `API_BASE_URL`) and keeps the token in its own storage, where
another instance cannot see it. The messages themselves go through wechatpy (`WechatClient`), whose
calls block (requests), so they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from wechatpy import WeChatClient

from core.delivery.outbox import TemporarySendError
from core.storage.privacy import Vault
from core.storage.state import get_state, hold_lease, release_lease, set_state

log = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.weixin.qq.com/"
TIMEOUT = 10.0  # seconds per HTTP call: a hung API must not hold a dispatcher slot for long

# The token of the call running in this context. `asyncio.to_thread` runs each call in a copy of
# the caller's context, so concurrent sends through one client each see their own token.
_CALL_TOKEN: contextvars.ContextVar[str] = contextvars.ContextVar("wechat_access_token")


def utc_now() -> datetime:
    return datetime.now(UTC)


def cgi_base(api_base_url: str | None) -> str:
    """`https://host/cgi-bin/` from `[channels.wechat] api_base_url` (the host's root, or already
    ending in `/cgi-bin`), as wechatpy's `API_BASE_URL` wants it."""
    base = (api_base_url or DEFAULT_API_BASE_URL).rstrip("/")
    return base + "/" if base.endswith("/cgi-bin") else base + "/cgi-bin/"


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: datetime

    def dump(self) -> str:
        return json.dumps({"token": self.value, "expires_at": self.expires_at.isoformat()})

    @classmethod
    def load(cls, text: str | None) -> AccessToken | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(str(data["token"]), datetime.fromisoformat(data["expires_at"]))
        except (ValueError, KeyError, TypeError):  # an unreadable value is as good as none: fetch anew
            return None


TokenFetch = Callable[[], Awaitable[tuple[str, int]]]


def token_fetcher(app_id: str, app_secret: str, api_base_url: str | None = None) -> TokenFetch:
    """`GET /cgi-bin/token` (client_credential): the token and its lifetime in seconds."""
    url = cgi_base(api_base_url) + "token"
    params = {"grant_type": "client_credential", "appid": app_id, "secret": app_secret}

    async def fetch() -> tuple[str, int]:
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                response = await client.get(url, params=params)
                response.raise_for_status()
                data: dict[str, Any] = response.json()
        except httpx.HTTPStatusError as exc:
            # Not `str(exc)`: httpx names the URL it called, and this one carries the app secret.
            raise TemporarySendError(f"WeChat token API answered HTTP {exc.response.status_code}") from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise TemporarySendError(f"WeChat token API unreachable: {type(exc).__name__}: {exc}") from exc
        if data.get("errcode") or not data.get("access_token"):
            # A wrong app_id/app_secret or a server IP missing from the account's whitelist (40164):
            # the operator fixes the configuration and the waiting messages go out then.
            raise TemporarySendError(
                f"WeChat refused an access token ({data.get('errcode')} {data.get('errmsg')}): "
                "check [channels.wechat] app_id, app_secret and the account's IP whitelist"
            )
        return str(data["access_token"]), int(data.get("expires_in") or 7200)

    return fetch


class SharedAccessToken:
    """The account's access token, kept in `channel_state` for every instance of the bot.

    `get()` answers from memory while the token has more than `margin` to live, else from the
    database, else fetches one. With a `vault` the stored token is encrypted: whoever reads the database
    (a backup, a support dump) could otherwise act as the account for up to two hours.
    `refresh(rejected)` is for a token WeChat refused (40001, 42001):
    it fetches only if the database still holds that very token, so when several instances are
    refused at once the token is replaced once, and the others take the new one.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        app_id: str,
        fetch: TokenFetch,
        *,
        clock: Callable[[], datetime] = utc_now,
        margin: timedelta = timedelta(minutes=5),
        wait: float = 0.1,
        patience: int = 100,
        vault: Vault | None = None,
    ) -> None:
        self.sessions = sessions
        self.vault = vault
        self.fetch = fetch
        self.clock = clock
        self.margin = margin
        self.wait, self.patience = wait, patience  # polls while another instance fetches (10 s)
        self.key = f"wechat:{app_id}:access_token"
        self.lease = f"wechat:{app_id}:token_refresh"
        self.holder = uuid.uuid4().hex
        self._token: AccessToken | None = None
        self._lock = asyncio.Lock()  # one fetch per process: concurrent sends wait for it

    def _fresh(self, token: AccessToken | None, rejected: str | None = None) -> bool:
        return token is not None and token.value != rejected and token.expires_at - self.margin > self.clock()

    async def get(self) -> str:
        if self._fresh(self._token):
            assert self._token is not None
            return self._token.value
        return await self.refresh(None)

    async def refresh(self, rejected: str | None) -> str:
        async with self._lock:
            for _ in range(self.patience):
                stored = await self._stored()
                if self._fresh(stored, rejected):
                    self._token = stored
                    assert stored is not None
                    return stored.value
                if await hold_lease(
                    self.sessions, self.lease, self.holder, self.clock(), timedelta(seconds=30)
                ):
                    try:
                        return await self._fetch_under_lease(rejected)
                    finally:
                        await release_lease(self.sessions, self.lease, self.holder, self.clock())
                await asyncio.sleep(self.wait)  # another instance is fetching: take its token
        raise TemporarySendError("another instance is still fetching the WeChat access token")

    async def _stored(self) -> AccessToken | None:
        """The token in the database. One stored in clear before tokens were encrypted is used until it
        expires; one under a key since retired reads as none, and a new one is fetched."""
        text = await get_state(self.sessions, self.key)
        if text and self.vault is not None:
            text = self.vault.reveal(text)
        return AccessToken.load(text)

    async def _fetch_under_lease(self, rejected: str | None) -> str:
        # Another instance may have stored a new token between our read and our lease.
        stored = await self._stored()
        if self._fresh(stored, rejected):
            assert stored is not None
            self._token = stored
            return stored.value
        value, expires_in = await self.fetch()
        token = AccessToken(value, self.clock() + timedelta(seconds=expires_in))
        dumped = token.dump() if self.vault is None else self.vault.encrypt(token.dump())
        await set_state(self.sessions, self.key, dumped, self.clock())
        self._token = token
        log.info("WeChat access token renewed (valid %d s)", expires_in)
        return value


class _CallTokenStorage:
    """wechatpy's session storage (duck-typed `SessionStorage`): answers with the token of the call.

    wechatpy keeps no token of its own then, and never fetches one (that is `SharedAccessToken`'s job).
    """

    def get(self, key: str, default: str | None = None) -> str | None:
        return _CALL_TOKEN.get(default)

    def set(self, key: str, value: object, ttl: int | None = None) -> None:
        pass

    def delete(self, key: str) -> None:
        pass


class WechatClient:
    """wechatpy's `WeChatClient`, pointed at `api_base_url`, called off the event loop.

    `auto_retry` is off: on a refused token wechatpy would fetch one from api.weixin.qq.com for this
    process alone; the sender refreshes the shared token instead. Errors come out as wechatpy's
    `WeChatClientException` (with `errcode`), or as requests' exceptions (OSError) for the network.
    """

    def __init__(self, app_id: str, app_secret: str, api_base_url: str | None = None) -> None:
        self.client = WeChatClient(
            app_id, app_secret, session=_CallTokenStorage(), timeout=TIMEOUT, auto_retry=False
        )
        self.client.API_BASE_URL = cgi_base(api_base_url)

    async def _call(self, token: str, method: Callable[..., Any], *args: Any) -> dict[str, Any]:
        def run() -> Any:
            _CALL_TOKEN.set(token)  # in the worker's copy of our context: no other call sees it
            return method(*args)

        result = await asyncio.to_thread(run)
        return dict(result) if isinstance(result, dict) else {}

    async def send_text(self, token: str, openid: str, text: str) -> dict[str, Any]:
        """A customer-service text message (`message/custom/send`)."""
        return await self._call(token, self.client.message.send_text, openid, text)

    async def send_template(
        self, token: str, openid: str, template_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """A template message (`message/template/send`); the answer carries its `msgid`."""
        return await self._call(token, self.client.message.send_template, openid, template_id, data)
