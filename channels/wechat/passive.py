"""The passive reply: the one message WeChat lets the HTTP response carry, and the outbox row it delivers.

Intake queues the acknowledgement in the outbox like on every channel. When the response can carry it,
the row is claimed for the response (marked sent, `PASSIVE_REF`) so the dispatcher does not send it a
second time as a customer-service message; when it cannot (too late, the dispatcher took it first, or an
earlier message to the same learner is still waiting: the order per recipient holds here too), the row is
left alone and the dispatcher sends it. The claim is a conditional update under the row's lock
(a conditional UPDATE; `BEGIN IMMEDIATE` on SQLite), against the dispatcher's claim under the same
row lock, so exactly one of the two delivers it.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session
from wechatpy.replies import TextReply

from core.context import CoreContext
from core.delivery.outbox import PENDING, SENT
from core.delivery.queue import earlier_waiting
from core.storage.delivery_models import OutboxRow
from core.storage.models import Clock
from core.storage.wakeup import written

PASSIVE_REF = "wechat:passive-reply"  # OutboxRow.external_ref of a row delivered in an HTTP response


async def claim_for_reply(core: CoreContext, key: str, now: datetime) -> bool:
    """Whether the row `key` may go in this response; marks it sent if so.

    A row already delivered passively may go again: that happens when WeChat did not get our first
    response (it then retries), and WeChat shows the learner one reply per message however often it asks.
    """
    # On the writer (one hand-off per transaction on SQLite, instead of one per statement): this runs on
    # every complaint's request path, right after intake's own transaction.
    return await core.writer.run(partial(_claim, key=key, now=now))


def _claim(session: Session, *, key: str, now: datetime) -> bool:
    # What `core.delivery.outbox.mark_sent` does after a send, as two plain statements: it needs an
    # async session (the writer's is not), and loading the ORM objects would cost more than the statements.
    connection = session.connection()  # Core statements: the ORM's bookkeeping would double the cost
    claimed = connection.execute(_CLAIM, {"claimed_key": key, "now": now}).first()
    if claimed is None:  # taken by the dispatcher, or by an earlier delivery of the same message
        row = connection.execute(_STATE, {"claimed_key": key}).first()
        return row is not None and (row.status, row.external_ref) == (SENT, PASSIVE_REF)
    written(session)  # what waited behind it for the same learner (the first question) may go now
    if claimed.meets_clock_id is not None:  # the acknowledgement meets its clock as it is delivered
        connection.execute(_MEET, {"clock_id": claimed.meets_clock_id, "now": now})
    return True


# Built once: they run on every WeChat complaint's request path, and building the claim (its ordering
# subquery) cost more than running it.
_CLAIM = (
    update(OutboxRow)
    # Not past an earlier message to the same learner still waiting (a staff reply in backoff): the
    # response would overtake it; the outbox sends this one after it instead.
    .where(OutboxRow.key == bindparam("claimed_key"), OutboxRow.status == PENDING, ~earlier_waiting())
    .values(
        status=SENT, sent_at=bindparam("now"), external_ref=PASSIVE_REF, lease_until=None, last_error=None
    )
    .returning(OutboxRow.meets_clock_id)
)
_STATE = select(OutboxRow.status, OutboxRow.external_ref).where(OutboxRow.key == bindparam("claimed_key"))
_MEET = (
    update(Clock)
    .where(Clock.id == bindparam("clock_id"), Clock.met_at.is_(None))
    .values(met_at=bindparam("now"), next_check_at=None)
)


async def release_hold(core: CoreContext, key: str, now: datetime) -> None:
    """No response will carry row `key` any more (WeChat was answered `success` while intake ran): it
    may go now as a customer-service message, instead of at the end of the hold intake gave it."""
    await core.writer.run(partial(_release, key=key, now=now))


def _release(session: Session, *, key: str, now: datetime) -> None:
    session.connection().execute(
        update(OutboxRow)
        .where(OutboxRow.key == key, OutboxRow.status == PENDING, OutboxRow.next_attempt_at > now)
        .values(next_attempt_at=now)
    )
    written(session)  # the dispatcher takes it at once


def text_reply(account: str, open_id: str, content: str, now: datetime) -> str:
    """The reply XML; `account` is the push's ToUserName (our account's original id)."""
    # wechatpy writes the content into a CDATA section, which "]]>" would end early.
    safe = content.replace("]]>", "]]]]><![CDATA[>")
    reply = TextReply(source=account, target=open_id, content=safe, time=int(now.timestamp()))
    return str(reply.render())
