"""The monthly report by e-mail: the summary as the body (text and HTML), the PDF and picture attached."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.headerregistry import Address

from channels.mail.compose import compose
from core.messages import Document, OutboundMessage

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8


def test_the_report_mail_carries_the_pdf_and_the_overview_as_attachments() -> None:
    message = OutboundMessage(
        key="report:2026-10",
        channel="staff",
        recipient="managers",
        kind="report",
        text="2026-10 月报 monthly report\n收到 received 12",
        subject="投诉处理月报 Complaints report 2026-10",
        documents=(
            Document("report-2026-10.pdf", "application/pdf", PDF),
            Document("报告-概览.png", "image/png", b"\x89PNG\r\n\x1a\nxyz"),
        ),
    )
    mail = compose(
        message,
        sender=Address("投诉中心", "complaints", "school.example"),
        to=[Address("", "boss", "school.example")],
        now=datetime(2026, 11, 2, 1, 0, tzinfo=UTC),
    )
    parsed = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "投诉处理月报 Complaints report 2026-10"
    assert parsed.get_content_type() == "multipart/mixed"
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None and "收到 received 12" in body.get_content()
    attachments = {part.get_filename(): part for part in parsed.iter_attachments()}
    assert set(attachments) == {"report-2026-10.pdf", "报告-概览.png"}
    assert attachments["report-2026-10.pdf"].get_content_type() == "application/pdf"
    assert attachments["report-2026-10.pdf"].get_content() == PDF
    assert attachments["报告-概览.png"].get_content_type() == "image/png"
