"""`read_xml` and `parse_push` on the recorded pushes in `pushes/`: every message and event type the
Official Account sends, and what complaintbot makes of each."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from channels.wechat.parse import (
    Complaint,
    OtherEvent,
    Subscribed,
    Unusable,
    WeChatPush,
    parse_push,
    read_xml,
)
from core.messages import Attachment
from tests.channels.wechat.recorded import CREATED, OPENID, PUSHES, SAMPLES, push

NOW = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)  # later than every sample's CreateTime
SENT_AT = datetime.fromtimestamp(CREATED, tz=UTC)


def parse(name: str, **elements: object) -> WeChatPush:
    return parse_push(read_xml(push(name, **elements).encode()), received_at=NOW)


def complaint(name: str) -> Complaint:
    event = parse(name)
    assert isinstance(event, Complaint), event
    assert (event.message.channel, event.message.sender_id) == ("wechat", OPENID)
    assert event.message.received_at == SENT_AT
    return event


# (sample, text, attachments): what a learner's message becomes.
MESSAGES = [
    ("text", "老师上课总是迟到，已经三次了，请处理", ()),
    (
        "image",
        "",
        (Attachment("image", "Lq3c8yE0mQ_vFj2rW9kP1aZx7uN4sB6dH5gT0oC", None, "image/jpeg"),),
    ),
    ("voice", "", (Attachment("voice", "Vt9s2kL4pQ7wE1rY6uI3oA8dF5gH0jK2zX4cV7b", None, "audio/amr"),)),
    (
        "voice_recognition",
        "退费申请三个月了还没到账，请尽快处理。",  # WeChat's transcript is the complaint's text
        (Attachment("voice", "Vt9s2kL4pQ7wE1rY6uI3oA8dF5gH0jK2zX4cV7c", None, "audio/amr"),),
    ),
    ("video", "", (Attachment("video", "Vd2wQ8eR5tY1uI4oP7aS0dF3gH6jK9lZ2xC5vB8"),)),
    ("shortvideo", "", (Attachment("video", "Sv5eR8tY2uI6oP9aS3dF7gH1jK4lZ8xC2vB5nM9"),)),
    ("location", "[位置] 上海市黄浦区人民大道200号 (31.230416, 121.473701)", ()),
    (
        "link",
        "关于课程退费的说明\n机构官网上写的七天无理由退费\nhttps://mp.weixin.qq.com/s/Xk2vQ9rT5wY8uE1iO4pA7s",
        (),
    ),
    (
        "file",
        "这是我的缴费收据",
        (Attachment("file", "Fk3wE6rT9yU2iO5pA8sD1fG4hJ7kL0zX3cV6bN9", "缴费收据.pdf", None, 184320),),
    ),
]
# (sample, the event's name): acknowledged with "success", nothing kept.
OTHER_EVENTS = [
    ("event_unsubscribe", "unsubscribe"),
    ("event_scan", "SCAN"),
    ("event_click", "CLICK"),
    ("event_view", "VIEW"),
    ("event_location", "LOCATION"),
    ("event_templatesendjobfinish", "TEMPLATESENDJOBFINISH"),
    ("event_templatesendjobfinish_blocked", "TEMPLATESENDJOBFINISH"),
    # Menu buttons that make the learner scan, pick pictures or a place: WeChat adds the details nested.
    ("event_scancode_waitmsg", "scancode_waitmsg"),
    ("event_pic_photo_or_album", "pic_photo_or_album"),
    ("event_location_select", "location_select"),
]
SUBSCRIBE = ["event_subscribe", "event_subscribe_qrscene"]
UNUSABLE = ["miniprogrampage"]


def test_every_sample_is_expected_somewhere_below() -> None:
    named = [m[0] for m in MESSAGES] + [e[0] for e in OTHER_EVENTS] + SUBSCRIBE + UNUSABLE
    assert sorted(named) == SAMPLES


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_is_the_xml_wechat_sends(name: str) -> None:
    fields = read_xml((PUSHES / f"{name}.xml").read_bytes())
    assert fields["ToUserName"].startswith("gh_") and fields["FromUserName"] == OPENID
    assert fields["CreateTime"] == str(CREATED) and fields["MsgType"]
    assert ("MsgId" in fields) == (fields["MsgType"] != "event")  # events carry none


@pytest.mark.parametrize(("name", "text", "attachments"), MESSAGES)
def test_a_learners_message_of_each_type(name: str, text: str, attachments: tuple[Attachment, ...]) -> None:
    message = complaint(name).message
    assert (message.text, message.attachments) == (text, attachments)
    assert message.external_id == read_xml(push(name).encode())["MsgId"]  # WeChat's retries dedupe on it


@pytest.mark.parametrize("name", SUBSCRIBE)
def test_following_the_account_with_or_without_a_qr_scene(name: str) -> None:
    assert parse(name) == Subscribed(OPENID, f"{OPENID}:{CREATED}:subscribe")


@pytest.mark.parametrize(("name", "event"), OTHER_EVENTS)
def test_other_events(name: str, event: str) -> None:
    assert parse(name) == OtherEvent(event, f"{OPENID}:{CREATED}:{event}")


def test_an_events_nested_details_are_read_as_fields_of_their_own() -> None:
    scan = read_xml(push("event_scancode_waitmsg").encode())
    assert scan["ScanCodeInfo"] == {"ScanType": "qrcode", "ScanResult": "RECEIPT-2025-0930-0417"}
    pictures = read_xml(push("event_pic_photo_or_album").encode())["SendPicsInfo"]
    assert pictures == {"Count": "1", "PicList": {"item": {"PicMd5Sum": "5a75aaca956d97be686719218f275c6b"}}}
    place = read_xml(push("event_location_select").encode())["SendLocationInfo"]
    assert (place["Label"], place["Poiname"]) == ("上海市黄浦区人民大道200号", "")


def test_a_message_type_we_do_not_handle_is_kept_for_staff() -> None:
    assert parse("miniprogrampage") == Unusable(
        "miniprogrampage messages are not understood", "24893127548374660"
    )


def test_a_create_time_ahead_of_our_clock_is_capped() -> None:
    ahead = parse("text", CreateTime=int(NOW.timestamp()) + 3600)
    assert isinstance(ahead, Complaint) and ahead.message.received_at == NOW


def test_a_message_without_msgid_is_kept_for_staff() -> None:
    kept = parse("text", MsgId="")
    assert isinstance(kept, Unusable) and kept.reason == "text message without MsgId"
    assert OPENID not in kept.key  # stored in clear and logged: the OpenID is hashed
