"""Mail written by a machine: bounces, out-of-office replies, mailing lists. Such mail is recorded like
any other but never acknowledged, so that our robot and theirs cannot answer each other forever
(RFC 3834 §2, and what Exchange, QQ Mail, 163, Gmail and Postfix really put in their mail)."""

from __future__ import annotations

import re
from email.message import Message

from channels.mail.text import content_type, header, param

_MACHINE_SENDERS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
_BULK = frozenset({"bulk", "junk", "list", "auto_reply", "auto-reply"})
# Out-of-office and bounce subjects of mail that says nothing machine-like in its headers (QQ Mail's
# and 163's auto-replies, Exchange's in Chinese: 自动答复). Only at the start, and followed by a
# separator, so that "自动回复太慢了" from a learner is not taken for one.
_MACHINE_SUBJECT = re.compile(
    r"^\s*(自动回复|自动答复|自動回覆|自動回復|自动应答|系统退信"
    r"|Auto(?:matic)?[ _-]?(?:Reply|Response)|Autoreply"
    r"|Out of (?:the )?Office|Undeliverable|Undelivered Mail Returned to Sender|Delivery Status Notification"
    r"|Mail Delivery (?:Failed|Failure|System)|Returned mail)(?=$|[\s:：(（\[【-])",
    re.IGNORECASE,
)


def auto_reply_reason(msg: Message, sender: str, subject: str | None) -> str | None:
    """Why this mail was written by a machine, in words for staff, or None for a person's mail."""
    if content_type(msg) == "multipart/report":
        report = (param(msg, "report-type") or "").lower()
        return "delivery-status report" if report in ("delivery-status", "") else f"{report} report"
    submitted = header(msg, "Auto-Submitted")
    if submitted and submitted.split(";")[0].strip().lower() != "no":
        return f"Auto-Submitted: {submitted}"
    return_path = header(msg, "Return-Path")
    if return_path is not None and return_path.replace(" ", "") == "<>":
        return "empty Return-Path"
    if sender.partition("@")[0] in _MACHINE_SENDERS:
        return f"sender {sender}"
    for name in ("X-Autoreply", "X-Autorespond"):
        if header(msg, name) is not None:
            return name
    list_id = header(msg, "List-Id")
    if list_id:
        return f"List-Id: {list_id}"
    precedence = (header(msg, "Precedence") or "").lower()
    if precedence in _BULK:
        return f"Precedence: {precedence}"
    match = _MACHINE_SUBJECT.match(subject or "")
    if match:
        return f"subject {match.group(1)}"
    return None
