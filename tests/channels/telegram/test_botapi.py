"""The Bot API stand-in, exercised through the real python-telegram-bot client over HTTP."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import warnings

import httpx
import pytest
import telegram
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    ReplyParameters,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import AIORateLimiter, Application, CommandHandler, ContextTypes
from telegram.warnings import PTBDeprecationWarning

from standins.botapi import BotApiServer
from tests.channels.telegram.conftest import TOKEN

# PTB 22 warns when RetryAfter.retry_after / Voice.duration are built or read as int seconds.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

LEARNER = 5001
STAFF_CHAT = -1001234567890
STAFF_USER = 7001

KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("认领 Claim", callback_data="claim:TS-261122-00071")]])


def retry_seconds(exc: RetryAfter) -> float:
    """PTB 22 gives ``retry_after`` as int (deprecated) or timedelta (with PTB_TIMEDELTA=true)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


async def test_get_me(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    me = await tg_bot.get_me()
    assert me.id == 123
    assert me.is_bot
    assert me.username == "complaint_test_bot"
    assert tg_bot.username == "complaint_test_bot"  # initialize() called getMe
    assert botapi.requests[:1] == ["getMe"]


async def test_send_message_records_decoded_params(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    update = botapi.learner_message(LEARNER, "老师上课迟到", first_name="小明")
    learner_message_id = update["message"]["message_id"]

    sent = await tg_bot.send_message(
        LEARNER,
        "已收到您的投诉 TS-261122-00071",
        reply_markup=KEYBOARD,
        reply_parameters=ReplyParameters(learner_message_id),
    )

    assert sent.message_id != learner_message_id
    assert sent.chat.id == LEARNER and sent.chat.type == "private"
    assert sent.text == "已收到您的投诉 TS-261122-00071"
    assert sent.reply_to_message is not None
    assert sent.reply_to_message.text == "老师上课迟到"
    assert sent.reply_markup == KEYBOARD
    assert sent.from_user is not None and sent.from_user.is_bot

    call = botapi.sent[-1]
    assert call.method == "sendMessage" and call.ok
    assert call.params["chat_id"] == LEARNER  # decoded from the form string "5001"
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "认领 Claim", "callback_data": "claim:TS-261122-00071"}]]
    }
    assert call.params["reply_parameters"] == {"message_id": learner_message_id}
    assert botapi.texts_to(LEARNER) == ["已收到您的投诉 TS-261122-00071"]
    assert botapi.messages_to(LEARNER)[0]["message_id"] == sent.message_id

    second = await tg_bot.send_message(LEARNER, "请问是哪门课程？")
    assert second.message_id == sent.message_id + 1  # message ids count per chat


async def test_reply_to_unknown_message_is_refused(tg_bot: telegram.Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
        await tg_bot.send_message(LEARNER, "x", reply_parameters=ReplyParameters(999))
    sent = await tg_bot.send_message(
        LEARNER, "x", reply_parameters=ReplyParameters(999, allow_sending_without_reply=True)
    )
    assert sent.reply_to_message is None


async def test_get_updates_and_offset_confirmation(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    first = botapi.learner_message(LEARNER, "/start")
    second = botapi.learner_message(LEARNER, "我要投诉", first_name="小明")

    updates = await tg_bot.get_updates(timeout=1)
    assert all(isinstance(u, Update) for u in updates)
    assert [u.update_id for u in updates] == [first["update_id"], second["update_id"]]
    assert updates[0].effective_message is not None
    assert updates[0].effective_message.text == "/start"
    assert updates[0].effective_message.entities[0].type == "bot_command"
    assert updates[1].effective_message is not None
    assert updates[1].effective_message.text == "我要投诉"
    assert updates[1].effective_user is not None and updates[1].effective_user.first_name == "小明"
    assert updates[1].effective_chat is not None and updates[1].effective_chat.type == "private"

    # Without an offset nothing is confirmed: the same updates come again.
    again = await tg_bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [u.update_id for u in updates]

    loop = asyncio.get_running_loop()
    started = loop.time()
    rest = await tg_bot.get_updates(offset=updates[-1].update_id + 1, timeout=1)
    elapsed = loop.time() - started
    assert rest == ()
    assert 0.8 <= elapsed < 3
    assert botapi.confirmed_update_id == second["update_id"]
    assert botapi.pending_updates == []

    third = botapi.learner_message(LEARNER, "还有一件事")
    assert [u.update_id for u in await tg_bot.get_updates(timeout=0)] == [third["update_id"]]


async def test_limit_and_negative_offset(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    ids = [botapi.learner_message(LEARNER, f"m{i}")["update_id"] for i in range(5)]
    assert [u.update_id for u in await tg_bot.get_updates(limit=2)] == ids[:2]
    assert [u.update_id for u in await tg_bot.get_updates(offset=-1)] == ids[-1:]
    assert botapi.confirmed_update_id == ids[-2]


async def test_long_poll_returns_early_when_an_update_arrives(
    tg_bot: telegram.Bot, botapi: BotApiServer
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(tg_bot.get_updates(timeout=5))
    await botapi.wait_for(lambda: "getUpdates" in botapi.requests[1:], timeout=30)
    queued = botapi.learner_message(LEARNER, "在吗")
    async with asyncio.timeout(3):
        updates = await poll
    assert [u.update_id for u in updates] == [queued["update_id"]]
    assert loop.time() - started < 2


async def test_a_newer_poll_terminates_the_older_one(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    older = asyncio.create_task(tg_bot.get_updates(timeout=5))
    await botapi.wait_for(lambda: "getUpdates" in botapi.requests, timeout=30)
    async with asyncio.timeout(3), botapi.make_bot() as second_instance:
        assert await second_instance.get_updates(timeout=0) == ()
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await older


async def test_allowed_updates_filter(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    card = await tg_bot.send_message(STAFF_CHAT, "TS-261122-00071", reply_markup=KEYBOARD)
    botapi.callback(STAFF_CHAT, STAFF_USER, card.message_id, "claim:TS-261122-00071")
    message = botapi.group_message(STAFF_CHAT, STAFF_USER, "/mine")
    updates = await tg_bot.get_updates(allowed_updates=["message"])
    assert [u.update_id for u in updates] == [message["update_id"]]


async def test_retry_after(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    botapi.fail_next("sendMessage", times=2, retry_after=3)
    for _ in range(2):
        with pytest.raises(RetryAfter) as caught:
            await tg_bot.send_message(LEARNER, "已收到")
        assert retry_seconds(caught.value) == 3
    await tg_bot.send_message(LEARNER, "已收到")

    assert [call.status for call in botapi.sent] == [429, 429, 200]
    assert botapi.sent[0].description == "Too Many Requests: retry after 3"
    assert botapi.texts_to(LEARNER) == ["已收到"]  # the refused sends delivered nothing


async def test_fail_next_for_one_chat_and_server_errors(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    botapi.fail_next("sendMessage", retry_after=1, chat_id=STAFF_CHAT)
    botapi.fail_next("editMessageText", status=502)
    await tg_bot.send_message(LEARNER, "unaffected")
    with pytest.raises(RetryAfter):
        await tg_bot.send_message(STAFF_CHAT, "card")
    card = await tg_bot.send_message(STAFF_CHAT, "card")
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await tg_bot.edit_message_text("card v2", chat_id=STAFF_CHAT, message_id=card.message_id)
    edited = await tg_bot.edit_message_text("card v2", chat_id=STAFF_CHAT, message_id=card.message_id)
    assert isinstance(edited, telegram.Message) and edited.text == "card v2"


async def test_blocked_chat(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    botapi.learner_message(LEARNER, "hi")
    botapi.block(LEARNER)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await tg_bot.send_message(LEARNER, "您的投诉已处理")
    assert botapi.messages_to(LEARNER) == []
    botapi.unblock(LEARNER)
    await tg_bot.send_message(LEARNER, "您的投诉已处理")
    assert botapi.texts_to(LEARNER) == ["您的投诉已处理"]


async def test_edit_message_text(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await tg_bot.edit_message_text("x", chat_id=STAFF_CHAT, message_id=404)

    card = await tg_bot.send_message(STAFF_CHAT, "TS-261122-00071 · 待认领", reply_markup=KEYBOARD)
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await tg_bot.edit_message_text(
            "TS-261122-00071 · 待认领", chat_id=STAFF_CHAT, message_id=card.message_id, reply_markup=KEYBOARD
        )

    edited = await tg_bot.edit_message_text(
        "TS-261122-00071 · 张老师处理中",
        chat_id=STAFF_CHAT,
        message_id=card.message_id,
        reply_markup=KEYBOARD,
    )
    assert isinstance(edited, telegram.Message)
    assert edited.message_id == card.message_id and edited.edit_date is not None
    [stored] = botapi.messages_to(STAFF_CHAT)
    assert stored["text"] == "TS-261122-00071 · 张老师处理中"
    assert stored["reply_markup"] == KEYBOARD.to_dict()

    # As on Telegram, an edit without reply_markup drops the buttons.
    await tg_bot.edit_message_text("TS-261122-00071 · 已解决", chat_id=STAFF_CHAT, message_id=card.message_id)
    assert "reply_markup" not in botapi.messages_to(STAFF_CHAT)[0]
    await tg_bot.edit_message_reply_markup(
        chat_id=STAFF_CHAT, message_id=card.message_id, reply_markup=KEYBOARD
    )
    assert botapi.messages_to(STAFF_CHAT)[0]["reply_markup"] == KEYBOARD.to_dict()
    assert [call.method for call in botapi.sent] == [
        "editMessageText",
        "sendMessage",
        "editMessageText",
        "editMessageText",
        "editMessageText",
        "editMessageReplyMarkup",
    ]

    learner = botapi.learner_message(LEARNER, "mine")
    with pytest.raises(BadRequest, match=r"(?i)message can't be edited"):
        await tg_bot.edit_message_text("x", chat_id=LEARNER, message_id=learner["message"]["message_id"])


async def test_parse_modes_render_and_refuse_like_telegram(tg_bot: telegram.Bot) -> None:
    sent = await tg_bot.send_message(LEARNER, "<b>TS-1</b> &lt;课程&gt;", parse_mode="HTML")
    assert sent.text == "TS-1 <课程>"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 0, 4)]
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await tg_bot.send_message(LEARNER, "学员说 1 < 2", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities: Unsupported start tag"):
        await tg_bot.send_message(LEARNER, "<br>", parse_mode="HTML")
    sent = await tg_bot.send_message(LEARNER, r"*TS\-1* 已收到\.", parse_mode="MarkdownV2")
    assert sent.text == "TS-1 已收到."
    with pytest.raises(BadRequest, match=r"(?i)Character '.' is reserved"):
        await tg_bot.send_message(LEARNER, "已收到.", parse_mode="MarkdownV2")
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await tg_bot.send_message(LEARNER, "   ")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await tg_bot.send_message(LEARNER, "长" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await tg_bot.send_message(
            LEARNER,
            "x",
            reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="x" * 65)]]),
        )


async def test_wrong_token(botapi: BotApiServer) -> None:
    bot = botapi.make_bot(token="999:wrong")
    try:
        with pytest.raises(InvalidToken):
            await bot.initialize()  # calls getMe
    finally:
        await bot.request.shutdown()  # the Bot never got initialized, so shutdown() would not
    assert botapi.requests == []

    async with httpx.AsyncClient(base_url=botapi.url) as client:
        response = await client.post("/bot999:wrong/getMe")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_unknown_method(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    async with httpx.AsyncClient(base_url=botapi.url) as client:
        response = await client.post(f"/bot{TOKEN}/sendTelepathy", data={"chat_id": "1"})
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
    with pytest.raises(EndPointNotFound):
        await tg_bot.do_api_request("send_telepathy")


async def test_json_and_query_string_requests(botapi: BotApiServer) -> None:
    async with httpx.AsyncClient(base_url=f"{botapi.url}/bot{TOKEN}") as client:
        by_json = await client.post(
            "/sendMessage",
            json={"chat_id": LEARNER, "text": "json", "reply_markup": {"inline_keyboard": []}},
        )
        by_query = await client.get("/sendMessage", params={"chat_id": str(LEARNER), "text": "query"})
        by_form = await client.post(
            "/sendMessage",
            data={"chat_id": str(LEARNER), "text": "form", "reply_markup": json.dumps(KEYBOARD.to_dict())},
        )
    assert [r.json()["ok"] for r in (by_json, by_query, by_form)] == [True, True, True]
    assert botapi.sent[-1].params["reply_markup"] == KEYBOARD.to_dict()
    assert botapi.texts_to(LEARNER) == ["json", "query", "form"]


async def test_multipart_upload_and_file_download(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    sent = await tg_bot.send_document(
        STAFF_CHAT,
        InputFile(b"%PDF-1.4 report", filename="report.pdf"),
        caption="月度报告",
        reply_markup=KEYBOARD,
    )
    assert sent.document is not None and sent.document.file_name == "report.pdf"
    assert sent.caption == "月度报告"
    call = botapi.sent[-1]
    assert call.method == "sendDocument"
    assert call.params["document"]["filename"] == "report.pdf"
    assert call.params["reply_markup"] == KEYBOARD.to_dict()  # a JSON string inside multipart

    tg_file = await tg_bot.get_file(sent.document.file_id)
    assert bytes(await tg_file.download_as_bytearray()) == b"%PDF-1.4 report"


async def test_learner_attachments(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    botapi.learner_message(LEARNER, "收据", photo=True)
    botapi.learner_message(LEARNER, voice={"duration": 12})
    botapi.learner_message(LEARNER, document={"file_name": "合同.pdf"})
    photo_update, voice_update, document_update = await tg_bot.get_updates()

    photo_message = photo_update.effective_message
    assert photo_message is not None
    assert photo_message.caption == "收据" and photo_message.text is None
    assert len(photo_message.photo) == 3
    largest = photo_message.photo[-1]
    assert largest.width == 1280 and largest.file_size
    tg_file = await tg_bot.get_file(largest.file_id)
    assert tg_file.file_path is not None and tg_file.file_path.endswith(".jpg")
    assert len(await tg_file.download_as_bytearray()) == largest.file_size

    voice = voice_update.effective_message.voice if voice_update.effective_message else None
    assert voice is not None and voice.mime_type == "audio/ogg" and voice.file_size
    assert voice.to_dict()["duration"] == 12

    document = document_update.effective_message.document if document_update.effective_message else None
    assert document is not None
    assert (document.file_name, document.mime_type) == ("合同.pdf", "application/pdf")

    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await tg_bot.get_file("nope")


async def test_forum_topics(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    botapi.add_chat(STAFF_CHAT, title="学员服务部", is_forum=True)
    topic = await tg_bot.create_forum_topic(STAFF_CHAT, "TS-261122-00071 老师迟到")
    assert topic.name == "TS-261122-00071 老师迟到"

    card = await tg_bot.send_message(STAFF_CHAT, "card", message_thread_id=topic.message_thread_id)
    assert card.message_thread_id == topic.message_thread_id
    assert card.is_topic_message
    assert botapi.messages_to(STAFF_CHAT, thread_id=topic.message_thread_id)[0]["text"] == "card"
    assert botapi.sent[-2].method == "createForumTopic"

    with pytest.raises(BadRequest, match=r"(?i)message thread not found"):
        await tg_bot.send_message(STAFF_CHAT, "x", message_thread_id=99999)
    with pytest.raises(BadRequest, match=r"(?i)the chat is not a forum"):
        await tg_bot.create_forum_topic(-100777, "x")

    # A staff member writes plain text in the topic: it arrives as a topic message.
    botapi.group_message(STAFF_CHAT, STAFF_USER, "您好，我们会处理", thread_id=topic.message_thread_id)
    [update] = await tg_bot.get_updates()
    message = update.effective_message
    assert message is not None
    assert message.chat.type == "supergroup" and message.chat.is_forum
    assert message.message_thread_id == topic.message_thread_id and message.is_topic_message
    assert message.reply_to_message is not None
    assert message.reply_to_message.forum_topic_created is not None


async def test_group_reply_and_callback(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    card = await tg_bot.send_message(STAFF_CHAT, "TS-261122-00071", reply_markup=KEYBOARD)
    reply = botapi.group_message(STAFF_CHAT, STAFF_USER, "/claim", reply_to_message_id=card.message_id)
    press = botapi.callback(STAFF_CHAT, STAFF_USER, card.message_id, "claim:TS-261122-00071")
    assert press["update_id"] == reply["update_id"] + 1

    message_update, callback_update = await tg_bot.get_updates()
    message = message_update.effective_message
    assert message is not None and message.reply_to_message is not None
    assert message.reply_to_message.message_id == card.message_id
    assert message.entities[0].type == "bot_command"

    query = callback_update.callback_query
    assert query is not None and query.data == "claim:TS-261122-00071"
    assert query.from_user.id == STAFF_USER
    assert query.message is not None and query.message.message_id == card.message_id
    assert await query.answer("已认领")
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await query.answer()
    assert [call.method for call in botapi.sent] == [
        "sendMessage",
        "answerCallbackQuery",
        "answerCallbackQuery",
    ]


async def test_webhook(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    received: list[tuple[str | None, dict[str, object]]] = []

    async def endpoint(request: Request) -> Response:
        received.append((request.headers.get("x-telegram-bot-api-secret-token"), await request.json()))
        return Response(status_code=200)

    app = Starlette(routes=[Route("/telegram", endpoint, methods=["POST"])])
    assert await tg_bot.set_webhook("https://bot.example.org/telegram", secret_token="s3cret")
    info = await tg_bot.get_webhook_info()
    assert info.url == "https://bot.example.org/telegram"
    with pytest.raises(Conflict, match="webhook is active"):
        await tg_bot.get_updates()

    update = botapi.learner_message(LEARNER, "webhook hi")
    assert (await tg_bot.get_webhook_info()).pending_update_count == 1
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        response = await botapi.push_webhook(update, client=client)
    assert response.status_code == 200
    assert received == [("s3cret", update)]
    assert botapi.pending_updates == []

    assert await tg_bot.delete_webhook()
    assert await tg_bot.get_updates() == ()


async def test_other_methods(tg_bot: telegram.Bot, botapi: BotApiServer) -> None:
    assert await tg_bot.set_my_commands([("claim", "认领工单"), ("reply", "回复学员")])
    assert [c.command for c in await tg_bot.get_my_commands()] == ["claim", "reply"]
    assert botapi.commands[0] == {"command": "claim", "description": "认领工单"}
    assert await tg_bot.send_chat_action(LEARNER, "typing")
    chat = await tg_bot.get_chat(STAFF_CHAT)
    assert chat.id == STAFF_CHAT and chat.type == "supergroup"
    assert "sendChatAction" in botapi.requests


async def test_strict_chats() -> None:
    async with BotApiServer(token=TOKEN, strict_chats=True) as server, server.make_bot() as bot:
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await bot.send_message(LEARNER, "hi")
        server.learner_message(LEARNER, "hi")
        await bot.send_message(LEARNER, "hello")
        assert server.texts_to(LEARNER) == ["hello"]


async def test_stop_ends_a_pending_long_poll() -> None:
    loop = asyncio.get_running_loop()
    server = BotApiServer(token=TOKEN)
    await server.start()
    bot = server.make_bot()
    await bot.initialize()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await server.wait_for(lambda: "getUpdates" in server.requests, timeout=30)
    started = loop.time()
    await server.stop()
    async with asyncio.timeout(3):
        assert await poll == ()
    assert loop.time() - started < 3
    await bot.shutdown()


async def test_ptb_application_polls_and_survives_a_429(botapi: BotApiServer) -> None:
    """PTB's own Updater and AIORateLimiter against the stand-in: a 429 delays the reply, loses nothing."""

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        await context.bot.send_message(update.effective_chat.id, "欢迎使用投诉机器人")

    application = (
        Application.builder()
        .token(TOKEN)
        .base_url(botapi.base_url)
        .base_file_url(botapi.base_file_url)
        .rate_limiter(AIORateLimiter(max_retries=2))
        .build()
    )
    application.add_handler(CommandHandler("start", start))
    botapi.fail_next("sendMessage", retry_after=1)
    update = botapi.learner_message(LEARNER, "/start")

    loop = asyncio.get_running_loop()
    started = loop.time()
    async with application:
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0, timeout=1)
        await application.start()
        try:
            await botapi.wait_for_messages(LEARNER, timeout=5)
            await botapi.wait_confirmed(update["update_id"], timeout=5)
        finally:
            await application.updater.stop()
            await application.stop()

    assert loop.time() - started >= 1  # the reply waited out retry_after
    assert botapi.texts_to(LEARNER) == ["欢迎使用投诉机器人"]
    assert [call.status for call in botapi.calls_of("sendMessage")] == [429, 200]
    assert botapi.deliveries.count(update["update_id"]) == 1
