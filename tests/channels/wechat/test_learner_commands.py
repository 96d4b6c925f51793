"""A WeChat learner's commands in plain words, through signed pushes to `/wechat`: answered in the
passive reply, as on Telegram with `/status` and `/new`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import select

from core.storage.models import Ticket
from core.storage.numbers import find_ticket_numbers
from tests.channels.wechat.signing import text_xml
from tests.channels.wechat.test_webhook import TS, Rig, reply_content, serve  # noqa: F401

TEACHING = "老师上课总是迟到，已经三次了，请处理"
FEES = "退费申请三个月了还没到账，请尽快处理"


async def say(rig: Rig, text: str, msg_id: int) -> str:
    """The learner writes; the passive reply they see."""
    return reply_content(await rig.post(text_xml(text, msg_id=str(msg_id), at=TS)), "safe")


async def numbers(rig: Rig) -> list[str]:
    async with rig.core.sessions() as session:
        return list(await session.scalars(select(Ticket.number).order_by(Ticket.id)))


async def test_progress_new_complaint_and_help_in_plain_words(
    serve: Callable[..., Awaitable[Rig]],  # noqa: F811 (the webhook tests' fixture)
) -> None:
    rig = await serve()
    first = find_ticket_numbers(await say(rig, TEACHING, 1001))[0]
    # The follow-up question goes as a customer-service message; an answer may not overtake it.
    assert [m.kind for m in await rig.dispatch()] == ["ask"]

    status = await say(rig, "查询进度", 1002)
    assert "您的投诉" in status and str(first) in status
    assert await numbers(rig) == [str(first)]  # asking opened nothing
    assert await say(rig, "查询进度", 1002) == status  # WeChat's retry of the same push: the same answer

    assert "单独编号" in await say(rig, "新投诉", 1003)
    ack = await say(rig, FEES, 1004)
    second = find_ticket_numbers(ack)[0]
    await rig.dispatch()
    assert second != first and await numbers(rig) == [str(first), str(second)]

    both = await say(rig, "查进度", 1005)
    assert str(first) in both and str(second) in both
    assert "/status" in await say(rig, "帮助", 1006)
    # Every answer went in its response: none waits in the outbox to go a second time.
    assert [m.kind for m in await rig.dispatch() if m.kind == "notice"] == []
