"""A local stand-in of the Telegram Bot API, for tests that drive the real python-telegram-bot client.

    async with BotApiServer(token="123:abc") as server:
        bot = server.make_bot()            # telegram.Bot(token, base_url=f"{url}/bot", base_file_url=...)
        server.learner_message(5001, "我要投诉")   # a learner writes; the update waits for getUpdates
        ...                                  # run the code under test against server.url
        assert server.messages_to(5001)[0]["text"].startswith("已收到")

The server is Starlette served by uvicorn on 127.0.0.1 (a free port) as a task in the running event
loop (`standins.server`). It answers like api.telegram.org: the same routes (``/bot<token>/<method>``,
``/file/bot<token>/<path>``), the same request encodings (JSON, urlencoded and multipart form data,
with nested values as JSON strings, which is what PTB sends), the same envelopes
(``{"ok": true, "result": ...}`` / ``{"ok": false, "error_code": ..., "description": ...}``) and the
same error texts for the cases modelled here. See the class docstring for the test-facing API.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import email.parser
import email.policy
import hashlib
import itertools
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl

import httpx
import telegram
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from standins.botapi_markup import MarkupError, check_reply_markup, command_entities, render_text
from standins.server import LoopbackServer

JSONDict = dict[str, Any]
Handler = Callable[[JSONDict], Awaitable[Any]]

#: The methods whose calls are kept in :attr:`BotApiServer.sent`.
RECORDED_METHODS = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageReplyMarkup",
        "answerCallbackQuery",
        "createForumTopic",
        "sendPhoto",
        "sendDocument",
    }
)

# How parameters arrive as strings in form data, and what they decode to.
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "reply_parameters",
        "entities",
        "caption_entities",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "media",
        "suggested_post_parameters",
    }
)
_INT_PARAMS = frozenset(
    {
        "message_id",
        "message_thread_id",
        "offset",
        "limit",
        "user_id",
        "cache_time",
        "reply_to_message_id",
        "icon_color",
        "max_connections",
        "direct_messages_topic_id",
    }
)
_CHAT_ID_PARAMS = frozenset({"chat_id", "from_chat_id"})
_FLOAT_PARAMS = frozenset({"timeout"})
_BOOL_PARAMS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "show_alert",
        "drop_pending_updates",
        "allow_sending_without_reply",
        "disable_web_page_preview",
        "allow_paid_broadcast",
        "has_spoiler",
        "disable_content_type_detection",
    }
)

#: Update types Telegram leaves out when ``allowed_updates`` is empty or was never set.
_NOT_DEFAULT_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_TOKEN_RE = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")


class BotApiError(Exception):
    """Raised by a method handler: the stand-in answers with this status and description."""

    def __init__(self, status: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    @classmethod
    def bad_request(cls, detail: str) -> BotApiError:
        return cls(400, detail if detail.startswith("Bad Request:") else f"Bad Request: {detail}")


@dataclass
class ApiCall:
    """One request the bot made: the canonical method name, the decoded parameters and the answer."""

    method: str
    params: JSONDict
    status: int = 200
    result: Any = None
    description: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def chat_id(self) -> int | str | None:
        value = self.params.get("chat_id")
        return value if isinstance(value, int | str) else None


@dataclass
class UploadedFile:
    """A file part of a multipart request (``sendDocument(document=InputFile(...))``)."""

    field_name: str
    filename: str
    content_type: str
    content: bytes


@dataclass
class StoredFile:
    """A file the stand-in knows: ``getFile`` answers for it and ``/file/bot<token>/<path>`` serves it."""

    file_id: str
    file_unique_id: str
    file_size: int
    file_path: str
    content: bytes


@dataclass
class _Failure:
    remaining: int
    status: int
    description: str
    retry_after: int | None
    chat_id: int | None


@dataclass
class _Chat:
    id: int
    type: str
    title: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    is_forum: bool = False
    topics: dict[int, JSONDict] = field(default_factory=dict)

    def as_json(self) -> JSONDict:
        data: JSONDict = {"id": self.id, "type": self.type}
        for key in ("title", "first_name", "last_name", "username"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.is_forum:
            data["is_forum"] = True
        return data


def _json_response(status: int, payload: JSONDict) -> Response:
    return JSONResponse(payload, status_code=status)


def _error_payload(error: BotApiError) -> JSONDict:
    payload: JSONDict = {"ok": False, "error_code": error.status, "description": error.description}
    if error.parameters:
        payload["parameters"] = error.parameters
    return payload


def _decode_value(name: str, value: Any) -> Any:
    """Decode one parameter the way the Bot API does: form values are strings, JSON bodies typed."""
    if isinstance(value, UploadedFile):
        return value
    if name in _JSON_PARAMS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise BotApiError.bad_request(f"can't parse {name} JSON object") from exc
    if name in _CHAT_ID_PARAMS:
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
            return int(value)
        return value
    if name in _INT_PARAMS and isinstance(value, str):
        try:
            return int(value)
        except ValueError as exc:
            raise BotApiError.bad_request(f'field "{name}" must be of type Integer') from exc
    if name in _FLOAT_PARAMS and isinstance(value, str):
        try:
            return float(value)
        except ValueError as exc:
            raise BotApiError.bad_request(f'field "{name}" must be a Number') from exc
    if name in _BOOL_PARAMS and isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return value


def _parse_multipart(content_type: str, body: bytes) -> JSONDict:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not isinstance(parsed, EmailMessage) or not parsed.is_multipart():
        raise BotApiError.bad_request("can't parse multipart/form-data")
    params: JSONDict = {}
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            params[name] = UploadedFile(name, filename, part.get_content_type(), data)
        else:
            params[name] = data.decode(part.get_content_charset() or "utf-8")
    return params


async def _read_params(request: Request) -> JSONDict:
    params: JSONDict = dict(request.query_params)
    if request.method != "POST":
        return params
    body = await request.body()
    if not body:
        return params
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        try:
            decoded = json.loads(body)
        except ValueError as exc:
            raise BotApiError.bad_request("can't parse JSON encoded request") from exc
        if not isinstance(decoded, dict):
            raise BotApiError.bad_request("can't parse JSON encoded request")
        params.update(decoded)
    elif media_type == "multipart/form-data":
        params.update(_parse_multipart(content_type, body))
    else:  # application/x-www-form-urlencoded, also what Telegram assumes without a content type
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    return params


class BotApiServer:
    """An HTTP stand-in of ``api.telegram.org`` for one bot.

    Lifecycle: ``async with BotApiServer(token="123:abc") as server`` (or ``await server.start()`` /
    ``await server.stop()``); :attr:`url`, :attr:`base_url`, :attr:`base_file_url` and
    :meth:`make_bot` point the real client at it.

    Acting as Telegram's users (each returns the Update dict it queued for ``getUpdates``):
    :meth:`learner_message`, :meth:`group_message`, :meth:`callback`, :meth:`queue_update`;
    :meth:`push_webhook` delivers an update to the webhook the bot set.

    Observing the bot: :attr:`requests` (method names), :attr:`calls` (every :class:`ApiCall`),
    :attr:`sent` (the message-changing calls of :data:`RECORDED_METHODS`), :meth:`messages_to`,
    :meth:`texts_to`, :meth:`message`, :meth:`topics`, :attr:`commands`, :attr:`webhook`,
    :attr:`pending_updates`, :attr:`confirmed_update_id`, and the waits :meth:`wait_for`,
    :meth:`wait_for_messages`, :meth:`wait_for_call`, :meth:`wait_confirmed`.

    Shaping the world: :meth:`add_chat`, :meth:`add_user`, :meth:`add_file`, :meth:`fail_next`,
    :meth:`block` / :meth:`unblock`, :meth:`register_method`.
    """

    def __init__(
        self,
        token: str = "123:abc",
        *,
        bot_username: str = "complaint_test_bot",
        bot_first_name: str = "Complaint Bot",
        strict_chats: bool = False,
        first_update_id: int = 1000,
        clock: Callable[[], float] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.token = token
        self.host = host
        self.port = 0
        self.strict_chats = strict_chats
        self.clock: Callable[[], float] = clock or time.time
        bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 123
        self.bot_user: JSONDict = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }

        self.requests: list[str] = []
        self.calls: list[ApiCall] = []
        self.deliveries: list[int] = []
        self.commands: list[JSONDict] = []
        self.webhook: JSONDict | None = None
        self.users: dict[int, JSONDict] = {}
        self.files: dict[str, StoredFile] = {}

        self._chats: dict[int, _Chat] = {}
        self._messages: dict[int, dict[int, JSONDict]] = {}
        self._bot_messages: list[tuple[int, int]] = []
        self._next_message_id: dict[int, int] = {}
        self._updates: list[JSONDict] = []
        self._update_ids = itertools.count(first_update_id)
        self._confirmed = first_update_id - 1
        self._allowed_updates: frozenset[str] | None = None
        self._poll_generation = 0
        self._callback_ids = itertools.count(4_000_000_000_000_000_001)
        self._open_callbacks: dict[str, JSONDict] = {}
        self._file_counter = itertools.count(1)
        self._failures: dict[str, list[_Failure]] = {}
        self._blocked: set[int] = set()
        self._changed = asyncio.Event()
        self._closing = False
        self._http = LoopbackServer("Bot API stand-in", host)

        self._handlers: dict[str, Handler] = {}
        self._names: dict[str, str] = {}
        for name, handler in {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "createForumTopic": self._create_forum_topic,
            "editForumTopic": self._edit_forum_topic,
            "closeForumTopic": self._close_forum_topic,
            "reopenForumTopic": self._reopen_forum_topic,
            "sendChatAction": self._send_chat_action,
            "getFile": self._get_file,
            "getChat": self._get_chat,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
        }.items():
            self.register_method(name, handler)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: what ``api.telegram.org`` is for the real client."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The value for ``telegram.Bot(base_url=...)`` (PTB appends the token)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """The value for ``telegram.Bot(base_file_url=...)``."""
        return f"{self.url}/file/bot"

    def make_bot(self, token: str | None = None, **kwargs: Any) -> telegram.Bot:
        """A real ``telegram.Bot`` pointed at this server (not yet initialized)."""
        return telegram.Bot(
            token or self.token, base_url=self.base_url, base_file_url=self.base_file_url, **kwargs
        )

    def app(self) -> Starlette:
        """The ASGI application (also usable with ``httpx.ASGITransport`` without a socket)."""
        return Starlette(
            routes=[
                Route("/bot{token}/{method}", self._handle_api, methods=["GET", "POST"]),
                Route("/file/bot{token}/{file_path:path}", self._handle_file, methods=["GET"]),
                Route("/{rest:path}", self._handle_not_found, methods=["GET", "POST"]),
            ]
        )

    async def start(self, *, startup_timeout: float = 30.0) -> None:
        """Bind a free port on ``host`` and serve until :meth:`stop`; returns once uvicorn accepts."""
        if self._http.running:
            raise RuntimeError("BotApiServer already started")
        self._closing = False
        self.port = await self._http.start(self.app(), startup_timeout=startup_timeout)

    async def stop(self) -> None:
        """Wake every long poll (it answers with no updates) and shut uvicorn down."""
        self._closing = True
        self._notify()
        await self._http.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ observing the bot

    @property
    def sent(self) -> list[ApiCall]:
        """Every call of :data:`RECORDED_METHODS`, in order, refused ones included (see ``.ok``)."""
        return [call for call in self.calls if call.method in RECORDED_METHODS]

    def calls_of(self, method: str, *, ok_only: bool = False) -> list[ApiCall]:
        return [call for call in self.calls if call.method == method and (call.ok or not ok_only)]

    def messages_to(self, chat_id: int, *, thread_id: int | None = None) -> list[JSONDict]:
        """The messages the bot delivered to ``chat_id`` (optionally one forum topic), oldest first.

        Each is the Message object as it stands now: an edited card shows its latest text and buttons;
        a deleted message is gone.
        """
        result = []
        for chat, message_id in self._bot_messages:
            if chat != chat_id:
                continue
            stored = self._messages.get(chat, {}).get(message_id)
            if stored is None:
                continue
            if thread_id is not None and stored.get("message_thread_id") != thread_id:
                continue
            result.append(copy.deepcopy(stored))
        return result

    def texts_to(self, chat_id: int, *, thread_id: int | None = None) -> list[str]:
        """The texts (or captions) of :meth:`messages_to`."""
        return [
            str(message.get("text", message.get("caption", "")))
            for message in self.messages_to(chat_id, thread_id=thread_id)
        ]

    def message(self, chat_id: int, message_id: int) -> JSONDict | None:
        """A stored message of any sender, as it stands now."""
        stored = self._messages.get(chat_id, {}).get(message_id)
        return copy.deepcopy(stored) if stored is not None else None

    def topics(self, chat_id: int) -> dict[int, JSONDict]:
        """The forum topics of a chat: message_thread_id → ForumTopic (plus ``is_closed``)."""
        chat = self._chats.get(chat_id)
        return copy.deepcopy(chat.topics) if chat else {}

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates queued and not yet confirmed by an offset (nor delivered to a webhook)."""
        return copy.deepcopy(self._updates)

    @property
    def confirmed_update_id(self) -> int:
        """The highest update_id the bot has confirmed (``getUpdates(offset=id + 1)``)."""
        return self._confirmed

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - bounded waits: returns as soon as it holds
    ) -> None:
        """Wait until ``predicate()`` holds; ``TimeoutError`` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                with contextlib.suppress(TimeoutError):
                    # Woken by every request and update; the short period covers predicates on
                    # state outside the server (a database row, a handler's side effect).
                    await asyncio.wait_for(self._changed.wait(), 0.05)

    async def wait_for_messages(
        self,
        chat_id: int,
        count: int = 1,
        *,
        thread_id: int | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 - bounded waits: returns as soon as it holds
    ) -> list[JSONDict]:
        """Wait until the bot has delivered at least ``count`` messages to the chat; return them all."""
        await self.wait_for(
            lambda: len(self.messages_to(chat_id, thread_id=thread_id)) >= count, timeout=timeout
        )
        return self.messages_to(chat_id, thread_id=thread_id)

    async def wait_for_call(
        self,
        method: str,
        count: int = 1,
        *,
        ok_only: bool = True,
        timeout: float = 30.0,  # noqa: ASYNC109 - bounded waits: returns as soon as it holds
    ) -> list[ApiCall]:
        """Wait until ``method`` was called ``count`` times (successfully, by default)."""
        await self.wait_for(lambda: len(self.calls_of(method, ok_only=ok_only)) >= count, timeout=timeout)
        return self.calls_of(method, ok_only=ok_only)

    async def wait_confirmed(
        self,
        update_id: int | None = None,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - bounded waits: returns as soon as it holds
    ) -> None:
        """Wait until the bot confirmed ``update_id`` (default: every update queued so far)."""
        target = (
            update_id
            if update_id is not None
            else max((u["update_id"] for u in self._updates), default=self._confirmed)
        )
        await self.wait_for(lambda: self._confirmed >= target, timeout=timeout)

    # ------------------------------------------------------------------ shaping the world

    def register_method(self, name: str, handler: Handler) -> None:
        """Add or replace a Bot API method: ``handler(params)`` returns the result or raises BotApiError."""
        self._handlers[name.lower()] = handler
        self._names[name.lower()] = name

    def fail_next(
        self,
        method: str,
        times: int = 1,
        *,
        retry_after: int | None = None,
        status: int | None = None,
        description: str | None = None,
        chat_id: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (to ``chat_id``, if given) fail.

        With ``retry_after``: HTTP 429 ``Too Many Requests: retry after S`` with
        ``parameters.retry_after`` (PTB raises ``RetryAfter``). Otherwise HTTP ``status`` (default 500)
        with ``description`` (default: the status phrase). Rules queue up in the order given.
        """
        if retry_after is not None:
            description = f"Too Many Requests: retry after {retry_after}"
            failure = _Failure(times, 429, description, retry_after, chat_id)
        else:
            code = status or 500
            text = description or HTTPStatus(code).phrase
            failure = _Failure(times, code, text, None, chat_id)
        self._failures.setdefault(method.lower(), []).append(failure)

    def block(self, chat_id: int) -> None:
        """The user blocked the bot (private chat) or removed it (group): sends answer 403."""
        self._blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        self._blocked.discard(chat_id)

    def add_user(
        self,
        user_id: int,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> JSONDict:
        """Register (or update) a Telegram user; returns the User object."""
        user = self.users.setdefault(
            user_id, {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
        )
        for key, value in (
            ("first_name", first_name),
            ("last_name", last_name),
            ("username", username),
            ("language_code", language_code),
        ):
            if value is not None:
                user[key] = value
        return copy.deepcopy(user)

    def add_chat(
        self,
        chat_id: int,
        *,
        type: str | None = None,  # Telegram's field name
        title: str | None = None,
        is_forum: bool | None = None,
        username: str | None = None,
    ) -> JSONDict:
        """Register (or update) a chat; a negative id defaults to a supergroup, a positive one to private."""
        chat = self._chats.get(chat_id)
        if chat is None:
            kind = type or ("private" if chat_id > 0 else "supergroup")
            chat = _Chat(chat_id, kind)
            if kind == "private":
                user = self.users.get(chat_id) or self.add_user(chat_id)
                chat.first_name = user["first_name"]
                chat.last_name = user.get("last_name")
                chat.username = user.get("username")
            else:
                chat.title = f"Chat {chat_id}"
            self._chats[chat_id] = chat
        elif type is not None:
            chat.type = type
        if title is not None:
            chat.title = title
        if username is not None:
            chat.username = username
        if is_forum is not None:
            chat.is_forum = is_forum
        return chat.as_json()

    def add_file(
        self,
        file_id: str | None = None,
        *,
        content: bytes | None = None,
        file_path: str | None = None,
        kind: str = "documents",
        extension: str = "bin",
    ) -> StoredFile:
        """Register a downloadable file; ``getFile(file_id)`` then answers with its ``file_path``."""
        number = next(self._file_counter)
        file_id = file_id or f"BQACAgIAAxkBAAI{number:08d}"
        body = content if content is not None else f"stand-in content of {file_id}".encode()
        stored = StoredFile(
            file_id=file_id,
            file_unique_id="AgAD" + hashlib.sha1(file_id.encode()).hexdigest()[:12],
            file_size=len(body),
            file_path=file_path or f"{kind}/file_{number}.{extension}",
            content=body,
        )
        self.files[file_id] = stored
        return stored

    # ------------------------------------------------------------------ acting as users

    def queue_update(self, update: Mapping[str, Any]) -> JSONDict:
        """Queue an update (``update_id`` is assigned unless given); returns it."""
        queued = copy.deepcopy(dict(update))
        queued.setdefault("update_id", next(self._update_ids))
        self._updates.append(queued)
        self._notify()
        return copy.deepcopy(queued)

    def learner_message(
        self,
        user_id: int,
        text: str | None = "",
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "zh-hans",
        reply_to: int | Mapping[str, Any] | None = None,
        photo: str | bool | Mapping[str, Any] | None = None,
        voice: str | bool | Mapping[str, Any] | None = None,
        document: str | bool | Mapping[str, Any] | None = None,
    ) -> JSONDict:
        """A user writes to the bot in their private chat (chat id = user id); returns the Update.

        ``photo``/``voice``/``document``: ``True`` for a generated file, a file_id, or a mapping of
        fields to override (``{"file_name": "receipt.pdf", "mime_type": ...}``). With an attachment
        ``text`` becomes the caption. ``reply_to``: the message_id (or Message) being replied to.
        """
        user = self.add_user(
            user_id,
            first_name=first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
        )
        if user_id not in self._chats:
            self.add_chat(user_id, type="private")
        chat = self._chats[user_id]
        chat.first_name, chat.last_name, chat.username = (
            user["first_name"],
            user.get("last_name"),
            user.get("username"),
        )
        message = self._new_message(chat, user)
        self._fill_content(message, text, photo=photo, voice=voice, document=document)
        if reply_to is not None:
            reply_id = reply_to if isinstance(reply_to, int) else int(reply_to["message_id"])
            message["reply_to_message"] = self._quoted(chat.id, reply_id)
        self._store(message)
        return self.queue_update({"message": message})

    def group_message(
        self,
        chat_id: int,
        user_id: int,
        text: str | None = "",
        *,
        thread_id: int | None = None,
        is_forum: bool = False,
        reply_to_message_id: int | None = None,
        first_name: str | None = None,
        username: str | None = None,
        title: str | None = None,
        photo: str | bool | Mapping[str, Any] | None = None,
        document: str | bool | Mapping[str, Any] | None = None,
    ) -> JSONDict:
        """A member writes in a (super)group, in forum topic ``thread_id`` if given; returns the Update.

        As in Telegram, a message in a forum topic carries ``message_thread_id``,
        ``is_topic_message`` and — when it is not an explicit reply — ``reply_to_message`` set to
        the topic's ``forum_topic_created`` service message.
        """
        user = self.add_user(user_id, first_name=first_name, username=username)
        self.add_chat(chat_id, title=title, is_forum=True if is_forum else None)
        chat = self._chats[chat_id]
        message = self._new_message(chat, user)
        self._fill_content(message, text, photo=photo, voice=None, document=document)
        if thread_id is not None and chat.is_forum:
            self._ensure_topic(chat, thread_id)
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
            message["reply_to_message"] = self._quoted(chat.id, thread_id)
        if reply_to_message_id is not None:
            message["reply_to_message"] = self._quoted(chat.id, reply_to_message_id)
            if thread_id is not None and not chat.is_forum:
                message["message_thread_id"] = thread_id
        self._store(message)
        return self.queue_update({"message": message})

    def callback(self, chat_id: int, user_id: int, message_id: int, data: str) -> JSONDict:
        """A user presses an inline button with ``data`` under message ``message_id``; returns the Update."""
        stored = self._messages.get(chat_id, {}).get(message_id)
        if stored is None:
            raise LookupError(f"no message {message_id} in chat {chat_id} to press a button on")
        user = self.users.get(user_id) or self.add_user(user_id)
        query_id = str(next(self._callback_ids))
        query = {
            "id": query_id,
            "from": copy.deepcopy(user),
            "message": copy.deepcopy(stored),
            "chat_instance": str(int(hashlib.sha1(str(chat_id).encode()).hexdigest()[:15], 16)),
            "data": data,
        }
        self._open_callbacks[query_id] = query
        return self.queue_update({"callback_query": query})

    async def push_webhook(
        self,
        update: Mapping[str, Any],
        *,
        client: httpx.AsyncClient | None = None,
        url: str | None = None,
    ) -> httpx.Response:
        """POST ``update`` to the webhook URL (or ``url``) as Telegram does, with the secret token header.

        ``client`` may be an ``httpx.AsyncClient(transport=httpx.ASGITransport(app))``. A 2xx answer
        confirms the update (it leaves :attr:`pending_updates`).
        """
        target = url or (self.webhook or {}).get("url")
        if not target:
            raise RuntimeError("no webhook is set and no url was given")
        headers = {"Content-Type": "application/json"}
        secret = (self.webhook or {}).get("secret_token")
        if secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(secret)
        body = json.dumps(update, ensure_ascii=False).encode()
        if client is None:
            async with httpx.AsyncClient(timeout=10) as own:
                response = await own.post(str(target), content=body, headers=headers)
        else:
            response = await client.post(str(target), content=body, headers=headers)
        if response.is_success:
            self._updates = [u for u in self._updates if u["update_id"] != update.get("update_id")]
            self._notify()
        return response

    # ------------------------------------------------------------------ HTTP layer

    def _notify(self) -> None:
        """Wake everything waiting for a change (long polls, :meth:`wait_for`)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _handle_not_found(self, request: Request) -> Response:
        return _json_response(404, {"ok": False, "error_code": 404, "description": "Not Found"})

    async def _handle_api(self, request: Request) -> Response:
        token = request.path_params["token"]
        raw_method = request.path_params["method"]
        if token != self.token:
            if _TOKEN_RE.fullmatch(token):
                return _json_response(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return _json_response(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        method = self._names.get(raw_method.lower(), raw_method)
        self.requests.append(method)
        handler = self._handlers.get(raw_method.lower())
        call = ApiCall(method, {})
        try:
            raw = await _read_params(request)
            call.params = {key: _decode_value(key, value) for key, value in raw.items()}
            if handler is None:
                raise BotApiError(404, "Not Found: method not found")
            self._check_injected(method, call.params)
            call.result = await handler(call.params)
        except BotApiError as error:
            call.status, call.description = error.status, error.description
            self._record(call)
            return _json_response(error.status, _error_payload(error))
        self._record(call)
        return _json_response(200, {"ok": True, "result": call.result})

    async def _handle_file(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return _json_response(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        path = request.path_params["file_path"]
        for stored in self.files.values():
            if stored.file_path == path:
                return Response(stored.content, media_type="application/octet-stream")
        return _json_response(404, {"ok": False, "error_code": 404, "description": "Not Found"})

    def _record(self, call: ApiCall) -> None:
        self.calls.append(call)
        self._notify()

    def _check_injected(self, method: str, params: JSONDict) -> None:
        chat_id = params.get("chat_id")
        for failure in self._failures.get(method.lower(), []):
            if failure.remaining <= 0 or (failure.chat_id is not None and failure.chat_id != chat_id):
                continue
            failure.remaining -= 1
            parameters = {"retry_after": failure.retry_after} if failure.retry_after is not None else None
            raise BotApiError(failure.status, failure.description, parameters)
        if isinstance(chat_id, int) and chat_id in self._blocked and method != "getChat":
            chat = self._chats.get(chat_id)
            if chat is None or chat.type == "private":
                raise BotApiError(403, "Forbidden: bot was blocked by the user")
            raise BotApiError(403, f"Forbidden: bot was kicked from the {chat.type} chat")

    # ------------------------------------------------------------------ world model helpers

    def _now(self) -> int:
        return int(self.clock())

    def _chat(self, params: JSONDict, key: str = "chat_id") -> _Chat:
        if key not in params:
            raise BotApiError.bad_request(f"{key} is empty")
        value = params[key]
        if isinstance(value, str):
            name = value.lstrip("@").lower()
            for chat in self._chats.values():
                if chat.username and chat.username.lower() == name:
                    return chat
            raise BotApiError.bad_request("chat not found")
        if not isinstance(value, int) or value == 0:
            raise BotApiError.bad_request("chat not found")
        if value not in self._chats:
            if self.strict_chats:
                raise BotApiError.bad_request("chat not found")
            self.add_chat(value)
        return self._chats[value]

    def _new_message(self, chat: _Chat, sender: Mapping[str, Any]) -> JSONDict:
        message_id = self._next_message_id.get(chat.id, 1)
        self._next_message_id[chat.id] = message_id + 1
        return {
            "message_id": message_id,
            "from": copy.deepcopy(dict(sender)),
            "chat": chat.as_json(),
            "date": self._now(),
        }

    def _store(self, message: JSONDict) -> None:
        chat_id = int(message["chat"]["id"])
        self._messages.setdefault(chat_id, {})[int(message["message_id"])] = copy.deepcopy(message)
        if message["from"]["id"] == self.bot_user["id"]:
            self._bot_messages.append((chat_id, int(message["message_id"])))

    def _quoted(self, chat_id: int, message_id: int) -> JSONDict:
        stored = self._messages.get(chat_id, {}).get(message_id)
        if stored is None:
            raise LookupError(f"no message {message_id} in chat {chat_id} to reply to")
        quoted = copy.deepcopy(stored)
        quoted.pop("reply_to_message", None)  # Telegram does not nest replies
        return quoted

    def _ensure_topic(self, chat: _Chat, thread_id: int) -> JSONDict:
        topic = chat.topics.get(thread_id)
        if topic is None:
            topic = {"message_thread_id": thread_id, "name": f"Topic {thread_id}", "icon_color": 7322096}
            chat.topics[thread_id] = topic
            if thread_id not in self._messages.get(chat.id, {}):
                service = {
                    "message_id": thread_id,
                    "from": {"id": 1, "is_bot": False, "first_name": "Admin"},
                    "chat": chat.as_json(),
                    "date": self._now(),
                    "message_thread_id": thread_id,
                    "forum_topic_created": {"name": topic["name"], "icon_color": topic["icon_color"]},
                    "is_topic_message": True,
                }
                self._messages.setdefault(chat.id, {})[thread_id] = service
                self._next_message_id[chat.id] = max(self._next_message_id.get(chat.id, 1), thread_id + 1)
        return topic

    def _fill_content(
        self,
        message: JSONDict,
        text: str | None,
        *,
        photo: str | bool | Mapping[str, Any] | None,
        voice: str | bool | Mapping[str, Any] | None,
        document: str | bool | Mapping[str, Any] | None,
    ) -> None:
        has_media = any(item not in (None, False) for item in (photo, voice, document))
        if has_media:
            if text:
                message["caption"] = text
                entities = command_entities(text)
                if entities:
                    message["caption_entities"] = entities
        else:
            message["text"] = text or ""
            entities = command_entities(text or "")
            if entities:
                message["entities"] = entities
        if photo not in (None, False):
            message["photo"] = self._photo_sizes(photo)
        if voice not in (None, False):
            stored = self.add_file(self._given_id(voice), kind="voice", extension="oga")
            message["voice"] = {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "duration": 7,
                "mime_type": "audio/ogg",
                "file_size": stored.file_size,
                **self._overrides(voice),
            }
        if document not in (None, False):
            stored = self.add_file(self._given_id(document), kind="documents", extension="pdf")
            message["document"] = {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": "complaint.pdf",
                "mime_type": "application/pdf",
                "file_size": stored.file_size,
                **self._overrides(document),
            }

    @staticmethod
    def _given_id(spec: object) -> str | None:
        if isinstance(spec, str):
            return spec
        if isinstance(spec, Mapping) and isinstance(spec.get("file_id"), str):
            return str(spec["file_id"])
        return None

    @staticmethod
    def _overrides(spec: object) -> JSONDict:
        return dict(spec) if isinstance(spec, Mapping) else {}

    def _photo_sizes(self, spec: object) -> list[JSONDict]:
        base = self._given_id(spec) or f"AgACAgIAAxkBAAI{next(self._file_counter):08d}"
        sizes = []
        for suffix, (width, height) in (("-s", (90, 67)), ("-m", (320, 240)), ("", (1280, 960))):
            stored = self.add_file(
                base + suffix,
                kind="photos",
                extension="jpg",
                content=b"\xff\xd8\xff" + f"{base}{suffix}".encode() + b"\xff\xd9",
            )
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "file_size": stored.file_size,
                    "width": width,
                    "height": height,
                }
            )
        sizes[-1].update(self._overrides(spec))
        return sizes

    def _bot_message(self, params: JSONDict) -> tuple[_Chat, JSONDict]:
        """The common part of every send: chat, thread, reply, keyboard; returns a new bot message."""
        chat = self._chat(params)
        thread_id = params.get("message_thread_id")
        reply_markup = self._markup(params.get("reply_markup"))
        reply = self._reply_target(chat, params)
        if thread_id is not None:
            if not chat.is_forum or thread_id not in chat.topics:
                raise BotApiError.bad_request("message thread not found")
            if chat.topics[thread_id].get("is_closed"):
                raise BotApiError.bad_request("TOPIC_CLOSED")
        message = self._new_message(chat, self.bot_user)
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        if reply is not None:
            message["reply_to_message"] = reply
        if reply_markup is not None:
            message["reply_markup"] = reply_markup
        return chat, message

    @staticmethod
    def _markup(value: object, *, inline_only: bool = False) -> JSONDict | None:
        try:
            return check_reply_markup(value, inline_only=inline_only)
        except MarkupError as exc:
            raise BotApiError.bad_request(str(exc)) from exc

    def _reply_target(self, chat: _Chat, params: JSONDict) -> JSONDict | None:
        reply_parameters = params.get("reply_parameters")
        if reply_parameters is not None and not isinstance(reply_parameters, dict):
            raise BotApiError.bad_request("can't parse reply parameters JSON object")
        reply_parameters = reply_parameters or {}
        message_id = reply_parameters.get("message_id", params.get("reply_to_message_id"))
        if message_id is None:
            return None
        allow = bool(
            reply_parameters.get("allow_sending_without_reply", params.get("allow_sending_without_reply"))
        )
        target_chat = reply_parameters.get("chat_id", chat.id)
        try:
            return self._quoted(int(target_chat), int(message_id))
        except LookupError:
            if allow:
                return None
            raise BotApiError.bad_request("message to be replied not found") from None

    def _stored_bot_message(self, params: JSONDict) -> tuple[_Chat, JSONDict]:
        if "inline_message_id" in params:
            raise BotApiError.bad_request("MESSAGE_ID_INVALID")
        chat = self._chat(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise BotApiError.bad_request("message identifier is not specified")
        stored = self._messages.get(chat.id, {}).get(message_id)
        if stored is None:
            raise BotApiError.bad_request("message to edit not found")
        if stored["from"]["id"] != self.bot_user["id"]:
            raise BotApiError.bad_request("message can't be edited")
        return chat, stored

    def _take_upload(self, params: JSONDict, name: str, kind: str, extension: str) -> StoredFile:
        value = params.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value.removeprefix("attach://"))
        if isinstance(value, UploadedFile):
            stored = self.add_file(content=value.content, kind=kind, extension=extension)
            params[name] = {
                "filename": value.filename,
                "content_type": value.content_type,
                "size": len(value.content),
            }
            return stored
        if isinstance(value, str) and value in self.files:
            return self.files[value]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return self.add_file(kind=kind, extension=extension)
        raise BotApiError.bad_request(f"there is no {name} in the request")

    def _caption(self, params: JSONDict, message: JSONDict) -> None:
        caption = params.get("caption")
        if caption:
            try:
                text, entities = render_text(
                    caption, params.get("parse_mode"), params.get("caption_entities")
                )
            except MarkupError as exc:
                raise BotApiError.bad_request(str(exc).replace("message text", "message caption")) from exc
            message["caption"] = text
            if entities:
                message["caption_entities"] = entities

    # ------------------------------------------------------------------ methods

    async def _get_me(self, params: JSONDict) -> JSONDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _allowed(self, update: JSONDict) -> bool:
        kind = next((key for key in update if key != "update_id"), "")
        if self._allowed_updates:
            return kind in self._allowed_updates
        return kind not in _NOT_DEFAULT_UPDATES

    def _confirm_below(self, offset: int) -> None:
        self._confirmed = max(self._confirmed, offset - 1)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self.webhook is not None:
            raise BotApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = params.get("offset")
        if isinstance(offset, int) and offset > 0:
            self._confirm_below(offset)
        elif isinstance(offset, int) and offset < 0:
            kept = self._updates[offset:]
            if kept:
                self._confirm_below(int(kept[0]["update_id"]))
        limit = params.get("limit") or 100
        limit = min(max(int(limit), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(str(kind) for kind in allowed)

        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()  # an older long poll now answers 409, as on Telegram
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise BotApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            self._updates = [u for u in self._updates if self._allowed(u)]
            batch = self._updates[:limit]
            remaining = deadline - loop.time()
            if batch or self._closing or remaining <= 0:
                self.deliveries.extend(int(u["update_id"]) for u in batch)
                return copy.deepcopy(batch)
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def _set_webhook(self, params: JSONDict) -> bool:
        url = str(params.get("url") or "")
        if not url:
            return await self._delete_webhook(params)
        if not re.match(r"https?://[^/\s]+", url):
            raise BotApiError.bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN_RE.fullmatch(str(secret)):
            raise BotApiError.bad_request("secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._drop_pending()
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(str(kind) for kind in allowed)
        self.webhook = {
            "url": url,
            "secret_token": secret,
            "max_connections": int(params.get("max_connections") or 40),
            "ip_address": "127.0.0.1",
        }
        self._poll_generation += 1  # a pending long poll is cut off
        self._notify()
        return True

    def _drop_pending(self) -> None:
        if self._updates:
            self._confirm_below(int(self._updates[-1]["update_id"]) + 1)

    async def _delete_webhook(self, params: JSONDict) -> bool:
        if params.get("drop_pending_updates"):
            self._drop_pending()
        self.webhook = None
        return True

    async def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        info: JSONDict = {
            "url": (self.webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook is not None:
            info["max_connections"] = self.webhook["max_connections"]
            info["ip_address"] = self.webhook["ip_address"]
            if self._allowed_updates:
                info["allowed_updates"] = sorted(self._allowed_updates)
        return info

    async def _send_message(self, params: JSONDict) -> JSONDict:
        if "text" not in params:
            raise BotApiError.bad_request("message text is empty")
        try:
            text, entities = render_text(params.get("text"), params.get("parse_mode"), params.get("entities"))
        except MarkupError as exc:
            raise BotApiError.bad_request(str(exc)) from exc
        _, message = self._bot_message(params)
        message["text"] = text
        if entities:
            message["entities"] = entities
        self._store(message)
        return message

    async def _send_photo(self, params: JSONDict) -> JSONDict:
        stored = self._take_upload(params, "photo", "photos", "jpg")
        _, message = self._bot_message(params)
        message["photo"] = [
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_size": stored.file_size,
                "width": 1280,
                "height": 960,
            }
        ]
        self._caption(params, message)
        self._store(message)
        return message

    async def _send_document(self, params: JSONDict) -> JSONDict:
        raw = params.get("document")
        filename = raw.filename if isinstance(raw, UploadedFile) else "document"
        mime = raw.content_type if isinstance(raw, UploadedFile) else "application/octet-stream"
        stored = self._take_upload(params, "document", "documents", filename.rsplit(".", 1)[-1] or "bin")
        _, message = self._bot_message(params)
        message["document"] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": filename,
            "mime_type": mime,
            "file_size": stored.file_size,
        }
        self._caption(params, message)
        self._store(message)
        return message

    async def _edit_message_text(self, params: JSONDict) -> JSONDict:
        _, stored = self._stored_bot_message(params)
        if "text" not in stored:
            raise BotApiError.bad_request("there is no text in the message to edit")
        try:
            text, entities = render_text(params.get("text"), params.get("parse_mode"), params.get("entities"))
        except MarkupError as exc:
            raise BotApiError.bad_request(str(exc)) from exc
        # As on Telegram, an edit without reply_markup removes the inline keyboard.
        markup = self._markup(params.get("reply_markup"), inline_only=True)
        before = (stored.get("text"), stored.get("entities", []), stored.get("reply_markup"))
        if (text, entities, markup) == before:
            raise BotApiError.bad_request(
                "message is not modified: specified new message content and reply markup are exactly "
                "the same as a current content and reply markup of the message"
            )
        stored["text"] = text
        self._set_optional(stored, "entities", entities or None)
        self._set_optional(stored, "reply_markup", markup)
        stored["edit_date"] = self._now()
        return copy.deepcopy(stored)

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict:
        _, stored = self._stored_bot_message(params)
        markup = self._markup(params.get("reply_markup"), inline_only=True)
        if markup == stored.get("reply_markup"):
            raise BotApiError.bad_request(
                "message is not modified: specified new message content and reply markup are exactly "
                "the same as a current content and reply markup of the message"
            )
        self._set_optional(stored, "reply_markup", markup)
        stored["edit_date"] = self._now()
        return copy.deepcopy(stored)

    @staticmethod
    def _set_optional(target: JSONDict, key: str, value: object) -> None:
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value

    async def _delete_message(self, params: JSONDict) -> bool:
        chat = self._chat(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int) or message_id not in self._messages.get(chat.id, {}):
            raise BotApiError.bad_request("message to delete not found")
        del self._messages[chat.id][message_id]
        return True

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if self._open_callbacks.pop(query_id, None) is None:
            raise BotApiError.bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = params.get("text")
        if isinstance(text, str) and len(text) > 200:
            raise BotApiError.bad_request("MESSAGE_TOO_LONG")
        return True

    async def _create_forum_topic(self, params: JSONDict) -> JSONDict:
        chat = self._chat(params)
        if not chat.is_forum:
            raise BotApiError.bad_request("the chat is not a forum")
        name = params.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 128:
            raise BotApiError.bad_request("TOPIC_NAME_INVALID")
        icon_color = int(params.get("icon_color") or 7322096)
        service = self._new_message(chat, self.bot_user)
        thread_id = int(service["message_id"])
        topic: JSONDict = {"message_thread_id": thread_id, "name": name, "icon_color": icon_color}
        if params.get("icon_custom_emoji_id"):
            topic["icon_custom_emoji_id"] = params["icon_custom_emoji_id"]
        chat.topics[thread_id] = dict(topic)
        service.update(
            message_thread_id=thread_id,
            is_topic_message=True,
            forum_topic_created={"name": name, "icon_color": icon_color},
        )
        self._messages.setdefault(chat.id, {})[thread_id] = service
        return topic

    def _topic(self, params: JSONDict) -> JSONDict:
        chat = self._chat(params)
        thread_id = params.get("message_thread_id")
        if not chat.is_forum:
            raise BotApiError.bad_request("the chat is not a forum")
        if not isinstance(thread_id, int) or thread_id not in chat.topics:
            raise BotApiError.bad_request("message thread not found")
        return chat.topics[thread_id]

    async def _edit_forum_topic(self, params: JSONDict) -> bool:
        topic = self._topic(params)
        if params.get("name"):
            if params["name"] == topic["name"]:
                raise BotApiError.bad_request("TOPIC_NOT_MODIFIED")
            topic["name"] = params["name"]
        return True

    async def _close_forum_topic(self, params: JSONDict) -> bool:
        topic = self._topic(params)
        if topic.get("is_closed"):
            raise BotApiError.bad_request("TOPIC_NOT_MODIFIED")
        topic["is_closed"] = True
        return True

    async def _reopen_forum_topic(self, params: JSONDict) -> bool:
        topic = self._topic(params)
        if not topic.get("is_closed"):
            raise BotApiError.bad_request("TOPIC_NOT_MODIFIED")
        topic["is_closed"] = False
        return True

    async def _send_chat_action(self, params: JSONDict) -> bool:
        self._chat(params)
        if not params.get("action"):
            raise BotApiError.bad_request("wrong parameter action in request")
        return True

    async def _get_file(self, params: JSONDict) -> JSONDict:
        stored = self.files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise BotApiError.bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
            "file_path": stored.file_path,
        }

    async def _get_chat(self, params: JSONDict) -> JSONDict:
        chat = self._chat(params)
        return {
            **chat.as_json(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise BotApiError.bad_request("can't parse commands JSON object")
        for command in commands:
            name = str(command.get("command")) if isinstance(command, dict) else ""
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise BotApiError.bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description") or "")) <= 256:
                raise BotApiError.bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands = copy.deepcopy(commands)
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        return copy.deepcopy(self.commands)

    async def _delete_my_commands(self, params: JSONDict) -> bool:
        self.commands = []
        return True
