"""`parse_mail` on mail as learners' programs really write it (the .eml files in `data/`), on variations
of it, on mail written by machines, on what is not mail at all, and on random mutations.

The samples are byte for byte what 163 webmail, QQ Mail, Foxmail, Outlook, Gmail, iPhone Mail, Postfix
and Mailman send: GBK under a "gb2312" label, raw 8-bit headers, encoded words in quoted names and
file names, HTML-only bodies, replies with the whole original below them.
"""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from channels.mail.htmltext import html_to_text
from channels.mail.parse import (
    MAX_ATTACHMENT_BYTES,
    MAX_BYTES,
    TOO_LARGE,
    MailError,
    attachment_bytes,
    message_key,
    parse_mail,
)
from channels.mail.quotes import trim_quoted
from channels.mail.text import decode_bytes
from core.intake.intake import Intake
from core.messages import Attachment, InboundMessage
from core.storage.numbers import TicketNumber, find_ticket_numbers

DATA = Path(__file__).parent / "data"
SAMPLES = sorted(path.name for path in DATA.iterdir() if path.is_file())  # corpus/ has its own test
NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)  # our server's clock: after every sample was sent
ACK = "<3f9c1e0a8b7d4c2e9f1a6b5c4d3e2f10@school.edu.cn>"  # the Message-ID of our acknowledgement
PDF_SIZE = 303
JPEG_SIZE = 91


def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


def parse(name: str, received_at: datetime = NOW) -> InboundMessage:
    return parse_mail(raw(name), received_at)


def with_headers(name: str, *lines: str, drop: tuple[str, ...] = ()) -> bytes:
    """A sample with header lines added at the top and others (by name) removed."""
    head, _, body = raw(name).partition(b"\r\n\r\n")
    kept = [
        line
        for line in re.split(rb"\r\n(?![ \t])", head)
        if not any(line.lower().startswith(f"{d.lower()}:".encode()) for d in drop)
    ]
    added = [line.encode("utf-8") for line in lines]
    return b"\r\n".join(added + kept) + b"\r\n\r\n" + body


# ---- what a learner wrote, in every charset they write it in ----------------------------------------


def test_gbk_text_labelled_gb2312_keeps_the_characters_gb2312_lacks() -> None:
    message = parse("gb2312_plain.eml")
    assert message.channel == "email"
    assert message.external_id == "<5d1e7a3b.8c41.18f2a9b3c47.Coremail.wang_zhe2003@163.com>"
    assert message.sender_id == message.email == "wang_zhe2003@163.com"
    assert message.sender_name == "王喆"  # 喆 is GBK-only, in an encoded word labelled GB2312
    assert message.subject == "关于周末班退费一直没有处理的投诉"
    assert message.text.startswith("老师您好：\n\n我是周末班（二班）的学员王喆，家长朱镕。")
    assert message.text.endswith("王喆\n2026年11月22日")
    assert "\ufffd" not in message.text
    assert message.received_at == NOW  # our arrival time; the sender's Date is only their say-so
    assert message.raw["date"] == "Sun, 22 Nov 2026 21:03:07 +0800 (CST)"
    assert message.auto_reply is None
    assert message.attachments == ()
    assert "problems" not in message.raw


def test_undeclared_gbk_in_body_and_raw_8bit_headers_is_read() -> None:
    message = parse("gbk_undeclared.eml")
    assert message.sender_name == "李堃"
    assert message.sender_id == "likun@126.com"  # written LiKun@126.com
    assert message.subject == "投诉：英语口语课外教经常迟到"
    assert "我叫李堃，报名的是英语口语周三晚班。" in message.text
    assert message.raw["problems"] == ["text/plain: declared no charset, read as gb18030"]


@pytest.mark.parametrize("name", ["big5.eml", "big5_undeclared.eml"])
def test_big5_is_read_declared_or_not(name: str) -> None:
    message = parse(name)
    assert message.text.splitlines() == [
        "您好：",
        "",
        "我的孩子在台北分校上數學課，老師上課時常常講電話，作業也沒有批改。",
        "請貴校儘快處理。",
        "",
        "陳怡君 敬上",
    ]


def test_big5_names_and_subject() -> None:
    message = parse("big5.eml")
    assert (message.sender_name, message.subject) == ("陳怡君", "數學課老師上課講電話")


def test_utf8_quoted_printable_and_a_subject_split_inside_a_character() -> None:
    message = parse("utf8_qp.eml")
    assert message.subject == "孩子的钢琴课被临时取消了三次"
    assert message.sender_name == "赵敏"
    assert "这个月课程被临时取消了三次，每次都是上课前半小时才通知，我们已经在路上了。" in message.text
    assert message.text.endswith("赵敏\n\n发自我的iPhone")


@pytest.mark.parametrize(
    "label", ["x-no-such-charset", "unicode_escape", "utf-8", "us-ascii", "iso-8859-1", '"GB2312"', "gbk"]
)
def test_a_wrong_or_unknown_charset_label_still_gives_the_text(label: str) -> None:
    mail = raw("gb2312_plain.eml").replace(b"charset=GB2312", b"charset=" + label.encode())
    message = parse_mail(mail, NOW)
    assert "我是周末班（二班）的学员王喆，家长朱镕。" in message.text


COMPLAINT = "老师您好：我是王喆，朱镕的孩子，退费申请已经一个多月了。"


@pytest.mark.parametrize(
    ("data", "label", "text"),
    [
        (COMPLAINT.encode("gbk"), "iso-8859-1", COMPLAINT),  # old programs label everything Latin-1
        ("Café crème, s'il vous plaît".encode("latin-1"), "iso-8859-1", "Café crème, s'il vous plaît"),
        (COMPLAINT.encode("utf-16"), "utf-16", COMPLAINT),  # all-ASCII-looking bytes are not ASCII here
        ("授業の振替について".encode("iso-2022-jp"), "iso-2022-jp", "授業の振替について"),
        (b"\xef\xbb\xbf" + COMPLAINT.encode(), "gb2312", COMPLAINT),  # a byte-order mark beats the label
        (
            COMPLAINT.encode("big5hkscs", "replace"),
            "big5-hkscs",
            COMPLAINT.encode("big5hkscs", "replace").decode("big5hkscs"),
        ),
    ],
)
def test_decode_bytes(data: bytes, label: str, text: str) -> None:
    assert decode_bytes(data, label)[0] == text


@pytest.mark.parametrize(
    ("data", "label", "text"),
    [
        # One accented letter is no Chinese: a declared Western label that reads as words wins...
        ("Straße".encode("latin-1"), "iso-8859-1", "Straße"),
        ("Priorität".encode("latin-1"), None, "Priorität"),  # ...and undeclared, Western words are read so
        ("Gómez".encode("latin-1"), None, "Gómez"),
        ("„Björn“ – 20 €".encode("cp1252"), "iso-8859-1", "„Björn“ – 20 €"),  # cp1252 under a Latin-1 label
        ("數學課老師上課講電話".encode("big5"), "iso-8859-1", "數學課老師上課講電話"),  # but not a Big5 text
        (
            "カタカナのテキストです".encode("cp932"),
            "gb2312",
            "カタカナのテキストです",
        ),  # Shift_JIS as "gb2312"
        ("テスト".encode("cp932"), None, "テスト"),
        ("①②③ ㈱ №".encode("cp932"), "shift_jis", "①②③ ㈱ №"),  # NEC's characters, in cp932
        (b'\x1b$B-!-"\x1b(B', "iso-2022-jp", "①②"),  # and in ISO-2022-JP, as Windows writes it
        (
            "안녕하세요. 지난주 수업이 세 번이나 취소되었습니다.".encode("euc-kr"),
            None,
            "안녕하세요. 지난주 수업이 세 번이나 취소되었습니다.",
        ),
        ("谢谢".encode("gbk"), None, "谢谢"),  # also valid UTF-8, as "лл"
        (
            "客服态度恶劣，电话 13812348000 没人回".encode("gbk"),
            None,
            "客服态度恶劣，电话 13812348000 没人回",
        ),
        (
            "Привет, как дела у тебя сегодня, друг?".encode("koi8-r"),
            None,
            "Привет, как дела у тебя сегодня, друг?",
        ),
    ],
)
def test_the_declared_charset_wins_and_a_wrong_or_missing_one_is_judged_on_the_whole_text(
    data: bytes, label: str | None, text: str
) -> None:
    assert decode_bytes(data, label)[0] == text


@pytest.mark.parametrize(("encoding", "label"), [("utf-8", "utf-8"), ("gbk", "gb2312"), ("utf-8", None)])
def test_a_damaged_byte_costs_one_character_not_the_whole_text(encoding: str, label: str | None) -> None:
    data = bytearray((COMPLAINT * 5).encode(encoding))
    data[len(data) // 2] = 0xFF
    text, note = decode_bytes(bytes(data), label)
    assert len(re.findall("\ufffd+", text)) == 1 and text.startswith(COMPLAINT) and text.endswith(COMPLAINT)
    assert note is not None and note.endswith("with bad bytes replaced")


# ---- HTML-only mail ----------------------------------------------------------------------------------


def test_qq_mail_html_only_reads_as_text_with_lines_lists_and_link_addresses() -> None:
    message = parse("qqmail_html.eml")
    assert message.text.splitlines()[:8] == [
        "老师好：",
        "",
        "我是少儿编程班学员刘子轩的家长。上周六的课，老师提前40分钟就下课了，孩子在门口等了很久没人管，非常危险！",
        "",
        "希望：",
        "- 调查当天的情况",
        "- 补上缺的课时",
        "当天的监控截图放在微云 (https://share.weiyun.com/5xYzAbCd)里了。",
    ]
    assert "display" not in message.text and "qmbox" not in message.text  # the <style> is gone
    assert message.raw["from_html"] is True


def test_outlook_html_only_drops_word_markup() -> None:
    message = parse("outlook_html.eml")
    assert message.text.splitlines() == [
        "您好：",
        "",
        "我在贵校报名了CFA一级网课（订单号20261003118），存在以下问题：",
        "1.     视频从第12讲开始无法播放；",
        "2.     答疑老师三天没有回复。",
        "",
        "请尽快处理。",
        "",
        "孙明",
    ]


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>a<br>b</p><p>c</p>", "a\nb\nc"),
        ("<div>a</div><div><br></div><div>b</div>", "a\n\nb"),
        ("<ol><li>one</li><li>two<ul><li>x</li></ul></li></ol>", "1. one\n2. two\n  - x"),
        ("<script>alert(1)</script><style>p{}</style>x &amp; y&nbsp;z", "x & y z"),
        (
            '<a href="https://a.cn/x">the file</a> <a href="https://b.cn">https://b.cn</a>',
            "the file (https://a.cn/x) https://b.cn",
        ),
        ("<blockquote>old<blockquote>older</blockquote></blockquote>new", "> old\n> > older\nnew"),
        ("<head><meta charset=gbk>text in a head never closed", "text in a head never closed"),
        ("<p>before <!-- never closed <b>after</b>", "before never closed after"),
        ("<p>a</p><!DOCTYPE [ x <p>b<script>hidden</script>c", "a\n<!DOCTYPE [ x\nbc"),
        (
            "<table><tr><td>课程</td><td>钢琴</td></tr><tr><td>日期</td><td>周六</td></tr></table>",
            "课程  钢琴\n日期  周六",
        ),
    ],
)
def test_html_to_text(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


# ---- replies: only the new words ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "new_text"),
    [
        (
            "reply_qqmail.eml",
            "好的，谢谢。补充一下：退费金额应该是3600元，不是2400元，合同第5条写得很清楚。\n\n王喆",
        ),
        (
            "reply_gmail_en.eml",
            "Thanks for the quick answer. The refund has still not arrived though, and the\n"
            "course adviser now says it needs another form. Which form, and where do I send it?\n\n"
            "Best,\nKevin Zhou",
        ),
        (
            "reply_outlook_zh.eml",
            "昨天的答复收到了，但是问题没有解决：补课时间安排在工作日白天，我上班去不了。能否安排周末？\n\n张伟",
        ),
        (
            "reply_163_html.eml",
            "还是没有人联系我，已经过去三天了。\n请给个明确的处理时间。\n\n王喆\n\n--\n王喆\n手机：138-1234-5678",
        ),
    ],
)
def test_a_reply_keeps_only_the_new_text(name: str, new_text: str) -> None:
    message = parse(name)
    assert message.text == new_text
    assert message.raw["quote_trimmed"] is True


@pytest.mark.parametrize(
    ("text", "new_text"),
    [
        # Bottom-posting: the answer under the quote stays.
        (
            "On Sun, Nov 22, 2026 at 9:15 PM Desk <d@s.cn> wrote:\n> Which course?\n\nPiano, Saturday.",
            "Piano, Saturday.",
        ),
        # Answers between quoted lines stay, the quoted lines go.
        ("> Which course?\nPiano\n> Which day?\nSaturday", "Piano\nSaturday"),
        ("新问题\n\n-----Original Message-----\nFrom: a\nold", "新问题"),
        ("新问题\n\n---- 回复的原邮件 ----\n| 发件人 | 学员服务部 |\nold", "新问题"),
        ("新问题\n\nFrom: 学员服务部\nDate: 2026-11-22 21:15\nTo: 张三\nSubject: 投诉已受理\nold", "新问题"),
        ("补充\n\n张三 <z@gmail.com> 于2026年11月22日周日 21:15写道：\n\n原文", "补充"),
        # Nothing but a quote: all of it stays, something is better than nothing.
        (
            "在 2026年11月22日，21:15，学员服务部 <d@s.cn> 写道：\n\n原文",
            "在 2026年11月22日，21:15，学员服务部 <d@s.cn> 写道：\n\n原文",
        ),
        # A learner's own letter that starts with a From:/To: block is not a quote...
        (
            "From: 张三\nTo: 教务处\nSubject: 退费\n\n请退费。",
            "From: 张三\nTo: 教务处\nSubject: 退费\n\n请退费。",
        ),
        # ...and words about what a teacher wrote are not an attribution.
        (
            "The teacher wrote:\nno class on Friday\nbut there was one.",
            "The teacher wrote:\nno class on Friday\nbut there was one.",
        ),
    ],
)
def test_trim_quoted(text: str, new_text: str) -> None:
    assert trim_quoted(text)[0] == new_text


def test_a_reply_to_our_acknowledgement_carries_its_thread_and_ticket_number() -> None:
    message = parse("reply_qqmail.eml")
    assert message.subject == "回复：[TS-261122-00071] 投诉已受理"  # from a GB18030 encoded word
    assert message.reply_to == ACK
    assert message.references == ("<tencent_77AA66BB55CC44DD33EE22FF1100998877@qq.com>", ACK)
    assert find_ticket_numbers(message.subject) == [TicketNumber.parse("TS-261122-00071")]
    assert message.auto_reply is None


def test_without_in_reply_to_the_last_reference_is_the_mail_answered() -> None:
    mail = with_headers("reply_outlook_zh.eml", drop=("In-Reply-To",))
    message = parse_mail(mail, NOW)
    assert message.reply_to == "<4a7b9c0d1e2f30415263748596a7b8c9@school.edu.cn>"
    assert message.references[-1] == message.reply_to


async def test_the_subject_tag_alone_continues_the_ticket(intake: Intake) -> None:
    now = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)
    first = await intake.receive(parse("attachment_pdf.eml", now), now)
    # The same learner's reply, with its threading headers lost: only the subject's tag can match.
    subject = f"回复：[{first.ticket_number}] 投诉已受理".encode("gb18030")
    words = "".join(f"={byte:02X}" for byte in subject)
    reply = with_headers(
        "reply_qqmail.eml", f"Subject: =?gb18030?Q?{words}?=", drop=("In-Reply-To", "References", "Subject")
    )
    message = parse_mail(reply, now + timedelta(minutes=5))
    assert message.reply_to is None and message.subject == f"回复：[{first.ticket_number}] 投诉已受理"
    second = await intake.receive(message, now + timedelta(minutes=5))
    assert (second.ticket_number, second.created) == (first.ticket_number, False)


# ---- attachments --------------------------------------------------------------------------------------


def test_attachments_keep_name_type_size_and_their_bytes() -> None:
    mail = raw("attachment_pdf.eml")
    message = parse_mail(mail, NOW)
    assert message.text == "附件是退费申请表和缴费凭证，请查收。\n\n王喆"
    assert message.attachments == (
        Attachment(kind="file", ref="mime:4", name="退费申请表.pdf", mime="application/pdf", size=PDF_SIZE),
        # QQ Mail sent the photo as application/octet-stream; its RFC 2231 name says what it is.
        Attachment(kind="image", ref="mime:5", name="缴费凭证.jpg", mime="image/jpeg", size=JPEG_SIZE),
    )
    pdf = attachment_bytes(mail, "mime:4")
    assert (
        pdf is not None and pdf.startswith(b"%PDF-1.4") and pdf.endswith(b"%%EOF\n") and len(pdf) == PDF_SIZE
    )
    assert attachment_bytes(mail, "mime:0") is None  # the multipart itself has no content
    assert attachment_bytes(mail, "mime:99") is None
    assert attachment_bytes(mail, TOO_LARGE) is None


def test_a_screenshot_pasted_into_an_outlook_body_is_an_image() -> None:
    mail = raw("inline_image_outlook.eml")
    message = parse_mail(mail, NOW)
    assert message.text == "缴费页面一直报错，截图如下：\n\n[image001.png]\n\n钱已经扣了，但订单显示未支付。"
    (image,) = message.attachments
    assert (image.kind, image.name, image.mime) == ("image", "image001.png", "image/png")
    content = attachment_bytes(mail, image.ref)
    assert content is not None and content.startswith(b"\x89PNG\r\n") and len(content) == image.size


def test_an_iphone_body_split_around_a_photo_is_one_text_and_one_image() -> None:
    message = parse("inline_image_iphone.eml")
    assert (
        message.text
        == "静安校区302教室的空调坏了两周了，孩子们上课很冷：\n\n前台说报修了，但一直没人来。\n\n赵敏"
    )
    assert message.attachments == (
        Attachment(kind="image", ref="mime:2", name="IMG_0412.jpeg", mime="image/jpeg", size=JPEG_SIZE),
    )


def test_an_attachment_over_the_limit_keeps_its_name_type_and_size_only() -> None:
    mail = EmailMessage()
    mail["From"] = "zhaomin_sh@icloud.com"
    mail["Subject"] = "上课录像"
    mail.set_content("录像在附件里。")
    mail.add_attachment(b"\0" * (MAX_ATTACHMENT_BYTES + 1), "video", "mp4", filename="上课录像.mp4")
    mail.add_attachment(b"PK\x03\x04", "application", "zip", filename="../../etc/作业.zip")
    message = parse_mail(mail.as_bytes(), NOW)
    assert message.text == "录像在附件里。"
    assert message.attachments == (
        Attachment(
            kind="file", ref=TOO_LARGE, name="上课录像.mp4", mime="video/mp4", size=MAX_ATTACHMENT_BYTES + 1
        ),
        Attachment(kind="file", ref="mime:3", name="作业.zip", mime="application/zip", size=4),  # no folders
    )


def test_a_mail_forwarded_as_an_attachment_is_named_by_its_subject() -> None:
    teacher = EmailMessage()
    teacher["From"] = "teacher.li@school.edu.cn"
    teacher["Subject"] = "周六停课通知"
    teacher.set_content("本周六钢琴课停课，补课时间另行通知。")
    mail = EmailMessage()
    mail["From"] = "zhaomin_sh@icloud.com"
    mail.set_content("老师的邮件见附件，停课三次了。")
    mail.add_attachment(teacher)
    message = parse_mail(mail.as_bytes(), NOW)
    assert message.text == "老师的邮件见附件，停课三次了。"  # the forwarded words are not the learner's
    (forwarded,) = message.attachments
    assert (forwarded.kind, forwarded.name, forwarded.mime) == ("file", "周六停课通知.eml", "message/rfc822")
    content = attachment_bytes(mail.as_bytes(), forwarded.ref)
    assert content is not None and b"teacher.li@school.edu.cn" in content and len(content) == forwarded.size


# ---- mail written by machines: recorded, never acknowledged ------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("autoreply_exchange.eml", "Auto-Submitted: auto-replied"),
        ("autoreply_qqmail.eml", "subject 自动回复"),  # QQ Mail says so only in the subject
        ("bounce.eml", "delivery-status report"),
        ("mailing_list.eml", "List-Id: 静安家长群 <parents.lists.jingan-parents.org>"),
    ],
)
def test_machine_written_mail_is_marked_with_the_reason(name: str, reason: str) -> None:
    assert parse(name).auto_reply == reason


def test_a_bounce_is_still_a_readable_message() -> None:
    message = parse("bounce.eml")
    assert message.sender_id == "mailer-daemon@mx.school.edu.cn"
    assert "Recipient address rejected: User unknown" in message.text
    assert [a.mime for a in message.attachments] == ["message/delivery-status", "text/rfc822-headers"]


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (("Auto-Submitted: no",), None),
        (("Auto-Submitted: auto-generated",), "Auto-Submitted: auto-generated"),
        (("Precedence: bulk",), "Precedence: bulk"),
        (("Precedence: junk",), "Precedence: junk"),
        (("Precedence: first-class",), None),
        (("X-Autoreply: yes",), "X-Autoreply"),
        (("X-Autorespond: vacation",), "X-Autorespond"),
        (("X-Auto-Response-Suppress: All",), None),  # what our own mail carries; a person's reply may too
        (("List-Id: <teachers.school.edu.cn>",), "List-Id: <teachers.school.edu.cn>"),
    ],
)
def test_loop_protection_headers(lines: tuple[str, ...], reason: str | None) -> None:
    assert parse_mail(with_headers("gb2312_plain.eml", *lines), NOW).auto_reply == reason


def test_a_read_receipt_is_machine_mail_too() -> None:
    mail = (
        b"From: wang_zhe2003@163.com\r\nSubject: Read: complaint\r\n"
        b'Content-Type: multipart/report; report-type=disposition-notification; boundary="r"\r\n\r\n'
        b"--r\r\nContent-Type: text/plain\r\n\r\nYour message was read on 2026-11-22.\r\n--r--\r\n"
    )
    assert parse_mail(mail, NOW).auto_reply == "disposition-notification report"


@pytest.mark.parametrize(
    ("sender", "reason"),
    [
        ("MAILER-DAEMON@mx.163.com", "sender mailer-daemon@mx.163.com"),
        ("Postmaster <postmaster@qq.com>", "sender postmaster@qq.com"),
    ],
)
def test_mail_from_mail_servers_is_machine_mail(sender: str, reason: str) -> None:
    mail = with_headers("gb2312_plain.eml", f"From: {sender}", drop=("From",))
    assert parse_mail(mail, NOW).auto_reply == reason


def test_an_empty_return_path_is_machine_mail() -> None:
    mail = with_headers("gb2312_plain.eml", "Return-Path: <>", drop=("Return-Path",))
    assert parse_mail(mail, NOW).auto_reply == "empty Return-Path"


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        ("Automatic reply: [TS-261122-00071] Your complaint", "subject Automatic reply"),
        ("Out of Office: back on 30 Nov", "subject Out of Office"),
        ("自动答复：投诉已受理", "subject 自动答复"),
        ("自动回复太慢了", None),  # a learner complaining about auto-replies
        ("关于自动回复邮件的投诉", None),
        ("Re: 自动回复", None),
    ],
)
def test_out_of_office_subjects(subject: str, reason: str | None) -> None:
    mail = with_headers("gb2312_plain.eml", f"Subject: {subject}", drop=("Subject",))
    assert parse_mail(mail, NOW).auto_reply == reason


# ---- keys, dates, what staff see ------------------------------------------------------------------------


def test_without_message_id_the_key_is_a_stable_hash_of_the_bytes() -> None:
    mail = raw("no_message_id.eml")
    message = parse_mail(mail, NOW)
    assert message.external_id == message_key(mail, None)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", message.external_id)
    assert parse_mail(mail, NOW + timedelta(hours=1)).external_id == message.external_id
    assert parse_mail(mail + b"\r\n", NOW).external_id != message.external_id
    assert message.raw["message_id"] is None
    assert message.received_at == NOW  # no Date either
    assert message.text == "姓名：周小红\n电话：13900001111\n留言：报名时说送教材，到现在还没拿到。"


@pytest.mark.parametrize(
    ("date", "problem"),
    [
        ("Wed, 02 Dec 2026 09:00:00 +0800", "implausible Date"),  # a week in the future
        ("Sun, 01 Nov 2026 09:00:00 +0800", "implausible Date"),  # weeks before our server got it
        ("next Tuesday", "unreadable Date"),
        ("Sun, 22 Nov 2026 21:03:07 -0000", "implausible Date"),  # no zone: not a moment in time
    ],
)
def test_an_absurd_date_gives_way_to_our_own_clock(date: str, problem: str) -> None:
    message = parse_mail(with_headers("gb2312_plain.eml", f"Date: {date}", drop=("Date",)), NOW)
    assert message.received_at == NOW
    assert any(p.startswith(problem) for p in message.raw["problems"])


def test_raw_keeps_the_headers_staff_need_and_never_the_body() -> None:
    message = parse("reply_qqmail.eml")
    assert message.raw == {
        "message_id": "<tencent_0E1D2C3B4A59687766554433221100FFEE08@qq.com>",
        "from": '"王喆" <2208841736@qq.com>',
        "to": '"学员服务部" <complaints@school.edu.cn>',
        "date": "Sun, 22 Nov 2026 21:52:38 +0800",
        "in_reply_to": ACK,
        "return_path": "<2208841736@qq.com>",
        "x_mailer": "QQMail 2.x",
        "content_type": "multipart/alternative",
        "quote_trimmed": True,
    }


def test_a_blank_line_before_the_headers_is_skipped() -> None:
    message = parse_mail(b"\r\n" + raw("gb2312_plain.eml"), NOW)
    assert message.sender_id == "wang_zhe2003@163.com"
    assert message.subject == "关于周末班退费一直没有处理的投诉"


def test_without_a_from_address_sender_is_used() -> None:
    mail = with_headers("no_message_id.eml", "Sender: zhouxh1990@sina.com", "From: 周小红", drop=("From",))
    message = parse_mail(mail, NOW)
    assert message.sender_id == "zhouxh1990@sina.com"
    assert "no address in From, Sender used" in message.raw["problems"]


@pytest.mark.parametrize(
    ("mail", "reason"),
    [
        (raw("garbage.bin"), "not an e-mail"),
        (b"", "empty message"),
        (b" \r\n\r\n", "empty message"),
        (b"Just some words, no headers at all.\r\n", "not an e-mail"),
        (b"Subject: hello\r\nTo: complaints@school.edu.cn\r\n\r\nno sender\r\n", "no sender address"),
        (b"From: =?gb2312?B?zfW19A==?=\r\n\r\nno address\r\n", "no sender address"),
        (b"From: a@b.cn\r\n\r\n" + b"x" * MAX_BYTES, "over the limit"),
    ],
)
def test_what_is_not_a_usable_mail_raises_mail_error_with_the_reason(mail: bytes, reason: str) -> None:
    with pytest.raises(MailError, match=reason):
        parse_mail(mail, NOW)


def test_parts_nested_without_end_are_read_to_a_limit() -> None:
    head = b"From: a@b.cn\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    levels = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1) for i in range(400)
    )
    message = parse_mail(head + levels + b"--b400\r\nContent-Type: text/plain\r\n\r\ndeep\r\n", NOW)
    assert message.text == ""
    assert "parts nested deeper than 20 levels not read" in message.raw["problems"]


# ---- random damage ------------------------------------------------------------------------------------


def _mutated(data: bytes, rng: random.Random) -> bytes:
    mail = bytearray(data)
    tokens = [
        *(b"=?", b"?=", b"=?gb2312?B?", b"\r\n", b"\r\n\r\n", b"--", b";", b'"', b"<", b">", b"*0*=", b"''"),
        *(b"%", b"=\r\n", b"\x00", b"<![", b"<!--", b"<blockquote>", b"boundary=", b"charset=", b"\xff\xfe"),
        *(b"Content-Type: multipart/mixed; boundary=x\r\n", b"\r\n--x\r\n", b"message/rfc822", b"filename*="),
    ]
    for _ in range(rng.randint(1, 10)):
        at = rng.randrange(len(mail) + 1)
        match rng.randrange(5):
            case 0 if mail:
                mail[min(at, len(mail) - 1)] = rng.randrange(256)
            case 1:
                mail[at:at] = rng.randbytes(rng.randint(1, 8))
            case 2:
                del mail[at : at + rng.randint(1, 40)]
            case 3:
                source = rng.randrange(len(mail) + 1)
                mail[at:at] = mail[source : source + rng.randint(1, 200)]
            case _:
                mail[at:at] = rng.choice(tokens)
    return bytes(mail)


@pytest.mark.parametrize("name", SAMPLES)
def test_damaged_mail_never_raises_anything_but_mail_error(name: str) -> None:
    rng = random.Random(name)
    for _ in range(40):
        mail = _mutated(raw(name), rng)
        try:
            message = parse_mail(mail, NOW)
        except MailError:
            continue
        # What intake stores must be storable: JSON for raw, UTF-8 (no lone surrogates) for the text.
        json.dumps(dict(message.raw), ensure_ascii=False).encode("utf-8")
        for text in (
            message.text,
            message.subject,
            message.sender_name,
            message.reply_to,
            *message.references,
        ):
            (text or "").encode("utf-8")
        assert "\x00" not in message.text
        for attachment in message.attachments:
            (attachment.name or "").encode("utf-8")
            if attachment.ref != TOO_LARGE:
                assert attachment_bytes(mail, attachment.ref) is not None or attachment.size is None


@pytest.mark.parametrize(
    ("mail", "sender", "subject", "text"),
    [
        # A value folded without its indent (web forms): the From below it is still read.
        (
            b"Subject: Anfrage zum\r\nKurs am Montag\r\nFrom: web@form.de\r\n\r\nHallo\r\n",
            "web@form.de",
            "Anfrage zum Kurs am Montag",
            "Hallo",
        ),
        # A body right below the headers, without the blank line, keeps its own "Name:" lines.
        (
            b"From: web@form.de\r\nSubject: x\r\nHello\r\nName: Petra\r\n",
            "web@form.de",
            "x",
            "Hello\nName: Petra",
        ),
        (b"From: Test test@example.com\r\nSubject: x\r\n\r\nHi\r\n", "test@example.com", "x", "Hi"),
        (b"From: first@example.com second@example.com\r\n\r\nHi\r\n", "first@example.com", None, "Hi"),
    ],
)
def test_a_sender_is_found_where_mature_mail_systems_find_it(
    mail: bytes, sender: str, subject: str | None, text: str
) -> None:
    message = parse_mail(mail, NOW)
    assert (message.sender_id, message.subject, message.text) == (sender, subject, text)
