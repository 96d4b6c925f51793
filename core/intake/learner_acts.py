"""What a learner's message does besides telling us something: confirm a result, agree or object to a
plan, rate the follow-up, ask for the second instance (上级渠道).

Pure parsing and deciding, plus the (synchronous) lookup of the ticket an act is about; intake calls
these on every channel, so a Telegram `/confirm`, a WeChat "确认" and an e-mail "4" take one road.
Carrying an act out is `core.intake.act_outcomes.carry_out`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.capabilities import ChannelBook
from core.intake.continuation import replied_ticket_id
from core.messages import InboundMessage
from core.rules.policy import Policy
from core.storage.models import Learner, Ticket
from core.storage.numbers import find_ticket_numbers
from core.tickets.followup import result_reported
from core.tickets.workflow import AWAITING_AGREEMENT, AWAITING_CONFIRMATION, CLOSED, FOLLOW_UP, OPEN_STATES

CONFIRM, AGREE, OBJECT, APPEAL, RATE = "confirm", "agree", "object", "appeal", "rate"
COMMANDS = frozenset({CONFIRM, AGREE, OBJECT, APPEAL, RATE})

# Checked in this order: "不满意" holds "满意", "不同意" holds "同意", "disagree" holds "agree".
_APPEAL_WORDS = ("上级投诉", "上级渠道", "上级复核", "申请复核", "二次投诉", "appeal", "second instance")
_OBJECT_WORDS = (
    "不同意", "不满", "不太满意", "不是很满意", "不认可", "不太认可", "不接受", "不确认", "有异议", "异议",
    "没解决", "未解决", "没有解决", "不行", "不合理",
    "not satisfied", "unsatisfied", "dissatisfied", "disagree", "object", "objection", "not resolved",
    "not accept", "don't accept", "do not accept", "reject", "rejected", "not ok", "not okay",
)  # fmt: skip
_NO_OBJECTION = ("没有异议", "无异议", "没意见", "没有意见", "no objection", "no objections")
_CONFIRM_WORDS = (
    "确认", "满意", "同意", "认可", "接受", "已解决", "解决了", "没问题",
    "confirm", "confirmed", "satisfied", "agree", "accept", "accepted", "resolved",
)  # fmt: skip


def _matcher(words: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for a list of keywords; English ones as whole words ("objective" is no objection)."""
    return re.compile(
        "|".join(re.escape(w) if not w.isascii() else rf"(?<![a-z]){re.escape(w)}(?![a-z])" for w in words)
    )


_KEYWORDS = (  # in this order: the first that matches wins
    (APPEAL, _matcher(_APPEAL_WORDS)),
    (CONFIRM, _matcher(_NO_OBJECTION)),
    (OBJECT, _matcher(_OBJECT_WORDS)),
    (CONFIRM, _matcher(_CONFIRM_WORDS)),
)
# "4", "4分", "5 stars", "3/5 the teacher called me": a score, then an optional comment.
_SCORE = re.compile(
    r"^([0-9])(?![0-9.])\s*(?:分|星|stars?|points?|/\s*5)?[\s,，。.:：、!！-]*(.*)$", re.I | re.S
)
# "3 weeks and still no refund", "2个月了", "1 more thing": a number that counts something, not a score.
_COUNTED = re.compile(
    r"^[0-9]\s*(?:个|月|天|周|年|次|号|点|元|块|岁|日|星期|小时|分钟|位|门|节|课"
    r"|weeks?\b|months?\b|days?\b|years?\b|hours?\b|minutes?\b|times?\b|more\b|of\b|k\b|yuan\b)",
    re.I,
)
_UNIT = re.compile(r"^[0-9]\s*(?:分(?!钟)|星|stars?\b|points?\b|/\s*5)", re.I)
_SCORE_COMMENT = 30  # a score's comment is short; a long text after a digit is a new message
_QUESTION = re.compile(r"[?？]\s*$|吗|请问|一下|是否|能否|what|when|how|why|can i|could")
# A keyword in a message this short is the answer itself; in a longer one it may be a new complaint
# ("老师态度我很不满意……"), which must not reopen or confirm an older ticket by accident.
_SHORT = 30

# Where each act looks when the message names no ticket and replies to none: the learner's latest
# ticket in one of these states.
WAITING_FOR: dict[str, frozenset[str]] = {
    CONFIRM: frozenset({AWAITING_CONFIRMATION, AWAITING_AGREEMENT}),
    AGREE: frozenset({AWAITING_AGREEMENT, AWAITING_CONFIRMATION}),
    OBJECT: frozenset({AWAITING_AGREEMENT, AWAITING_CONFIRMATION, FOLLOW_UP}),
    APPEAL: frozenset({AWAITING_CONFIRMATION, FOLLOW_UP, CLOSED}),
    RATE: frozenset({FOLLOW_UP}),
}


@dataclass(frozen=True)
class LearnerAct:
    kind: str  # confirm | agree | object | appeal | rate
    text: str = ""  # the reason of an objection or appeal, the comment of a score
    score: int | None = None
    # A command, or a short appeal: answered even when it cannot be done (a keyword that does not fit
    # the ticket's state is otherwise just part of what they wrote).
    explicit: bool = False
    # The message is about the act (a command, a score, a short answer): it may find the ticket waiting
    # for it without naming it. A long message only acts on a ticket it names or replies to.
    standalone: bool = False


@dataclass(frozen=True)
class Decision:
    """What an act comes to on a ticket in its state: a move, a score, an appeal, or a refusal."""

    outcome: str  # confirm | agree | object | reopen | rate | appeal | refused
    reason: str | None = None  # why refused: not_yet | no_survey | already_rated | nothing_to_do


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def _without_numbers(text: str, prefix: str) -> str:
    words = text.split()
    while words and find_ticket_numbers(words[0], prefix):
        words.pop(0)
    return " ".join(words)


def parse(text: str, prefix: str = "TS") -> LearnerAct | None:
    """The act in a learner's message, or None for an ordinary message. Pure."""
    # Folded (full-width forms made ASCII) to recognise; what the learner wrote is kept as they wrote it.
    original = (text or "").strip()
    folded = _fold(original)
    if folded.startswith("/"):
        head = folded[1:].split(None, 1)[0] if len(folded) > 1 else ""
        command = head.split("@", 1)[0].lower()
        if command not in COMMANDS:
            return None
        parts = original.split(None, 1)
        args = _without_numbers(parts[1] if len(parts) > 1 else "", prefix)
        if command == RATE:
            match = _SCORE.match(_fold(args))
            score = int(match.group(1)) if match else None
            comment = (match.group(2) if match else args).strip()
            return LearnerAct(RATE, comment, score, explicit=True, standalone=True)
        return LearnerAct(command, args, explicit=True, standalone=True)
    if not folded:
        return None
    match = _SCORE.match(_without_numbers(folded, prefix))
    if match and _is_score(match):
        # A digit counts as a score only while a survey waits for one (see `decide`).
        return LearnerAct(RATE, match.group(2).strip(), int(match.group(1)), standalone=True)
    lowered = folded.lower()
    if _QUESTION.search(lowered):
        return None  # "我想确认一下退费什么时候到账？" asks; it confirms nothing
    for kind, keywords in _KEYWORDS:
        if keywords.search(lowered):
            short = len(folded) <= _SHORT
            return LearnerAct(kind, original, explicit=kind == APPEAL and short, standalone=short)
    return None


def act_of(message: InboundMessage, channels: ChannelBook, prefix: str = "TS") -> LearnerAct | None:
    """The act a learner's message may carry out, or None: intake's cheap test before its transaction.

    Only written channels act (a voicemail transcript is too unsure), and a long message only on a
    ticket it names or replies to, so an ordinary complaint that says "不满意" stays on the fast path."""
    if message.new_ticket or not channels.of(message.channel).writes_back:
        return None
    act = parse(message.text, prefix)
    if act is None or act.standalone or message.reply_to:
        return act
    return act if find_ticket_numbers(f"{message.text} {message.subject or ''}", prefix) else None


def decide(
    act: LearnerAct,
    status: str,
    *,
    survey_pending: bool,
    result_reported: bool,
    rated: bool,
    score_range: tuple[int, int],
) -> Decision | None:
    """What `act` does to a ticket in `status`; None when it is just part of an ordinary message."""
    outcome: str | None = None
    reason = "nothing_to_do"
    if act.kind in (CONFIRM, AGREE):
        outcome = {AWAITING_CONFIRMATION: CONFIRM, AWAITING_AGREEMENT: AGREE}.get(status)
    elif act.kind == OBJECT:
        if status == AWAITING_AGREEMENT:
            outcome = OBJECT
        elif status in (AWAITING_CONFIRMATION, FOLLOW_UP, CLOSED):
            outcome = "reopen"  # the learner does not accept the result: the department looks again
    elif act.kind == APPEAL:
        outcome = APPEAL if result_reported else None
        reason = "not_yet"
    elif act.kind == RATE:
        low, high = score_range
        if survey_pending and act.score is not None and low <= act.score <= high:
            outcome = RATE
        elif not act.explicit:
            return None  # "3 days and nothing happened" is not a score when none is asked for
        reason = "bad_score" if survey_pending else "already_rated" if rated else "no_survey"
    if outcome is not None:
        return Decision(outcome)
    return Decision("refused", reason) if act.explicit else None


def decide_for(session: Session, ticket: Ticket, act: LearnerAct, policy: Policy) -> Decision | None:
    """`decide` for this ticket as it stands (synchronous: intake's transaction, or via run_sync)."""
    return decide(
        act,
        ticket.status,
        survey_pending=ticket.status == FOLLOW_UP,
        result_reported=result_reported(session, ticket),
        rated=ticket.satisfaction is not None,
        score_range=(policy.follow_up.score_min, policy.follow_up.score_max),
    )


def act_ticket(
    session: Session,
    message: InboundMessage,
    learner: Learner,
    act: LearnerAct,
    channels: ChannelBook,
    prefix: str,
) -> Ticket | None:
    """The learner's ticket `act` is about, locked: the number named, else the ticket replied to, else
    the latest one waiting for this act (for a command: else their latest open ticket, to answer why
    not). Only the learner's own tickets ever match; a stranger naming a number gets None."""
    if learner.id is None or not channels.of(message.channel).writes_back:
        return None
    mine = Ticket.learner_id == learner.id
    numbers = [str(n) for n in find_ticket_numbers(f"{message.text or ''} {message.subject or ''}", prefix)]
    if numbers:
        query = select(Ticket).where(mine, Ticket.number.in_(numbers))
        return _through_merges(session, session.scalar(query.limit(1).with_for_update()))
    replied = replied_ticket_id(session, message)
    if replied is not None:
        found = session.scalar(select(Ticket).where(mine, Ticket.id == replied).with_for_update())
        return _through_merges(session, found)
    if not act.standalone:
        return None
    for states in (WAITING_FOR[act.kind], OPEN_STATES if act.explicit else frozenset()):
        if not states:
            break
        ticket = session.scalar(
            select(Ticket)
            .where(mine, Ticket.status.in_(states), Ticket.merged_into_id.is_(None))
            .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
            .limit(1)
            .with_for_update()
        )
        if ticket is not None:
            return ticket
    return None


def _is_score(match: re.Match[str]) -> bool:
    """A leading digit is a score when it says so ("4分", "5 stars") or stands alone with a short
    comment, and is not a count of something ("3 weeks", "2个月了")."""
    text = match.group(0)
    if _UNIT.match(text):
        return True
    return not _COUNTED.match(text) and len(match.group(2).strip()) <= _SCORE_COMMENT


def _through_merges(session: Session, ticket: Ticket | None) -> Ticket | None:
    """The ticket that carries on a merged one (`core.tickets.merge`), locked: an act on the merged number (a
    confirmation, an objection, a score) is about the complaint, which lives on in the kept ticket;
    taken on the merged one it would reopen a ticket no staff command reaches."""
    for _ in range(5):  # a kept ticket merged in turn
        if ticket is None or ticket.merged_into_id is None:
            return ticket
        ticket = session.scalar(select(Ticket).where(Ticket.id == ticket.merged_into_id).with_for_update())
    return ticket
