"""The monthly report in the managers' Telegram chat: the PDF as a document, its summary the caption."""

from __future__ import annotations

from channels.telegram.sender import CAPTION_LIMIT, TelegramStaffSink, make_bot
from core.messages import Document, OutboundMessage
from standins.botapi import BotApiServer

MANAGERS_CHAT = -1009876543210
PDF = b"%PDF-1.4\n" + b"0" * 5000


def _report(text: str) -> OutboundMessage:
    return OutboundMessage(
        key="report:2026-10",
        channel="staff",
        recipient="managers",
        kind="report",
        text=text,
        documents=(
            Document("report-2026-10.pdf", "application/pdf", PDF),
            Document("report-2026-10-overview.png", "image/png", b"\x89PNG\r\n\x1a\n"),
        ),
    )


async def test_the_report_is_a_document_with_its_summary_as_caption(botapi: BotApiServer) -> None:
    botapi.add_chat(MANAGERS_CHAT, title="管理层")
    bot = make_bot(botapi.token, botapi.base_url)
    await bot.initialize()
    try:
        sink = TelegramStaffSink(bot, {"managers": MANAGERS_CHAT})
        result = await sink.send(_report("2026-10 月报 monthly report\n收到 received 12"))
        await sink.send(_report("长" * (CAPTION_LIMIT + 50)))
    finally:
        await bot.shutdown()
    first, second = botapi.messages_to(MANAGERS_CHAT)
    assert result.external_ref is not None and str(first["message_id"]) in result.external_ref
    assert first["document"]["file_name"] == "report-2026-10.pdf"  # the PDF, not the overview picture
    assert first["caption"] == "2026-10 月报 monthly report\n收到 received 12"
    assert botapi.files[first["document"]["file_id"]].content == PDF
    assert len(second["caption"]) == CAPTION_LIMIT and second["caption"].endswith("…")
    assert [call.method for call in botapi.sent] == ["sendDocument", "sendDocument"]
