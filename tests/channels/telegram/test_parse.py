"""`parse_update` on recorded Bot API payloads, on hand-made variations of them, and on 500 random mutations.

The samples in `responses/` are updates as the Bot API delivers them (getUpdates or webhook); the first
test proves each is a valid `telegram.Update`, so the expectations below are about real payloads.
"""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import telegram

from channels.telegram.events import (
    UNKNOWN_UPDATE_ID,
    ButtonPress,
    Ignored,
    LearnerCommand,
    LearnerMessage,
    StaffCommand,
    StaffText,
    TelegramEvent,
    Unusable,
    external_id,
)
from channels.telegram.parse import parse_update
from core.messages import Attachment, InboundMessage

RESPONSES = Path(__file__).parent / "responses"
SAMPLES = sorted(path.stem for path in RESPONSES.glob("*.json"))
EVENT_TYPES = (LearnerMessage, LearnerCommand, StaffCommand, StaffText, ButtonPress, Ignored, Unusable)
NOW = datetime(2025, 11, 25, 12, 0, tzinfo=UTC)  # later than every sample's date
BOT = "SchoolComplaintBot"
LEARNER = 5821736440
STAFF = 402918375
FORUM = -1002178345621
GROUP = -1001987654321
NUMBER = "TS-251125-00173"
# Fields Telegram still sends but no longer documents; PTB keeps them in `api_kwargs`.
LEGACY_FIELDS = {"new_chat_participant", "new_chat_member"}


def load(name: str) -> dict[str, Any]:
    sample: dict[str, Any] = json.loads((RESPONSES / f"{name}.json").read_text(encoding="utf-8"))
    return sample


def parse(update: dict[str, Any], bot_username: str | None = BOT) -> TelegramEvent:
    return parse_update(update, received_at=NOW, bot_username=bot_username)


def learner_message(update: dict[str, Any]) -> InboundMessage:
    event = parse(update)
    assert isinstance(event, LearnerMessage), event
    return event.message


def unknown_fields(obj: object, path: str = "update") -> set[str]:
    """Every field PTB did not recognise, anywhere in the object tree: a typo in a sample shows here."""
    found: set[str] = set()
    if isinstance(obj, telegram.TelegramObject):
        found |= {f"{path}.{key}" for key in obj.api_kwargs if key not in LEGACY_FIELDS}
        for cls in type(obj).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if not slot.startswith("_"):
                    found |= unknown_fields(getattr(obj, slot, None), f"{path}.{slot}")
    elif isinstance(obj, tuple | list):
        for index, item in enumerate(obj):
            found |= unknown_fields(item, f"{path}[{index}]")
    return found


# --- the recorded samples ---------------------------------------------------------------------------


def test_every_sample_the_brief_names_is_recorded() -> None:
    assert len(SAMPLES) >= 16
    assert {"private_text", "callback_query", "edited_message", "my_chat_member", "new_chat_members"} <= set(
        SAMPLES
    )


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_is_a_valid_bot_api_update(name: str) -> None:
    sample = load(name)
    update = telegram.Update.de_json(copy.deepcopy(sample), bot=None)
    assert update.update_id == sample["update_id"]
    assert unknown_fields(update) == set()


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_parses_to_one_event_and_keeps_its_update_id(name: str) -> None:
    sample = load(name)
    event = parse(sample)
    assert isinstance(event, EVENT_TYPES)
    assert not isinstance(event, Unusable), event
    if isinstance(event, LearnerMessage | LearnerCommand):
        assert event.message.raw == sample
    else:
        assert event.update_id == sample["update_id"]


def test_private_text_opens_or_continues_a_ticket() -> None:
    sample = load("private_text")
    message = learner_message(sample)
    assert message == InboundMessage(
        channel="telegram",
        external_id=f"{LEARNER}:412",
        sender_id=str(LEARNER),
        text=sample["message"]["text"],
        received_at=datetime(2025, 11, 25, 3, 50, tzinfo=UTC),
        sender_name="Wei Li",
        raw=sample,
    )
    assert message.raw is sample  # the whole update, not a copy of part of it


def test_photo_keeps_the_largest_size_and_the_caption_as_text() -> None:
    sample = load("private_photo_caption")
    message = learner_message(sample)
    largest = sample["message"]["photo"][-1]
    assert message.attachments == (Attachment("photo", largest["file_id"], None, "image/jpeg", 163502),)
    assert message.text == sample["message"]["caption"]


def test_photo_sizes_in_any_order_still_give_the_largest() -> None:
    sample = load("private_photo_caption")
    sample["message"]["photo"].reverse()
    (photo,) = learner_message(sample).attachments
    assert photo.size == 163502


def test_voice_note_is_an_attachment_with_empty_text() -> None:
    sample = load("private_voice")
    message = learner_message(sample)
    voice = sample["message"]["voice"]
    assert message.text == ""
    assert message.attachments == (Attachment("voice", voice["file_id"], None, "audio/ogg", 31845),)


def test_voice_without_mime_type_is_still_ogg() -> None:
    sample = load("private_voice")
    del sample["message"]["voice"]["mime_type"]
    assert learner_message(sample).attachments[0].mime == "audio/ogg"


def test_document_keeps_name_type_and_size() -> None:
    sample = load("private_document")
    (document,) = learner_message(sample).attachments
    assert document == Attachment(
        "document",
        sample["message"]["document"]["file_id"],
        "缴费收据_2025-09.pdf",
        "application/pdf",
        248117,
    )


@pytest.mark.parametrize(
    ("key", "kind", "mime"),
    [("audio", "audio", "audio/mpeg"), ("video", "video", "video/mp4"), ("video_note", "video", "video/mp4")],
)
def test_audio_and_video_are_attachments(key: str, kind: str, mime: str) -> None:
    sample = load("private_voice")
    media = sample["message"].pop("voice")
    if key != "video_note":
        media["mime_type"] = mime
    else:
        del media["mime_type"]
    sample["message"][key] = media
    assert learner_message(sample).attachments == (Attachment(kind, media["file_id"], None, mime, 31845),)


def test_shared_own_contact_gives_the_phone() -> None:
    message = learner_message(load("private_contact"))
    assert message.phone == "8613812345678"
    assert message.text == ""
    assert message.reply_to == f"{LEARNER}:416"  # it answers the bot's question


def test_someone_elses_contact_is_text_not_the_learners_phone() -> None:
    sample = load("private_contact")
    sample["message"]["contact"] = {"phone_number": "+8613900001111", "first_name": "Mei", "user_id": 77}
    message = learner_message(sample)
    assert message.phone is None
    assert message.text == "[contact] Mei +8613900001111"


def test_contact_without_a_telegram_account_is_not_the_learners_phone() -> None:
    sample = load("private_contact")
    del sample["message"]["contact"]["user_id"]
    message = learner_message(sample)
    assert message.phone is None
    assert "8613812345678" in message.text


def test_start_and_status_are_learner_commands() -> None:
    for name, command, text in (
        ("private_start", "start", "/start"),
        ("private_status", "status", "/status"),
    ):
        event = parse(load(name))
        assert isinstance(event, LearnerCommand)
        assert (event.command, event.args, event.chat_id, event.user_id) == (command, "", LEARNER, LEARNER)
        assert event.message.text == text
        assert not event.message.new_ticket


def test_new_carries_its_text_as_a_separate_complaint() -> None:
    event = parse(load("private_new"))
    assert isinstance(event, LearnerCommand)
    assert event.command == "new"
    assert event.args == "另外，九月份交的教材费至今没有开发票"
    assert event.message.text == event.args
    assert event.message.new_ticket
    assert event.message.external_id == f"{LEARNER}:430"


def test_start_with_a_deep_link_payload_keeps_it_as_args() -> None:
    sample = load("private_start")
    sample["message"]["text"] = "/start src_wechat"
    event = parse(sample)
    assert isinstance(event, LearnerCommand)
    assert (event.command, event.args) == ("start", "src_wechat")


def test_unknown_learner_command_is_left_to_the_command_layer() -> None:
    sample = load("private_start")
    sample["message"]["text"] = "/complain 老师缺课"
    sample["message"]["entities"][0]["length"] = 9
    event = parse(sample)
    assert isinstance(event, LearnerCommand)
    assert (event.command, event.args, event.message.text) == ("complain", "老师缺课", "/complain 老师缺课")


def test_learner_reply_names_the_replied_message() -> None:
    sample = load("private_text")
    sample["message"]["reply_to_message"] = load("private_contact")["message"]["reply_to_message"]
    assert learner_message(sample).reply_to == external_id(LEARNER, 416)


def test_learner_sticker_is_ignored() -> None:
    sample = load("private_text")
    del sample["message"]["text"]
    sample["message"]["sticker"] = {
        "file_id": "CAACAgIAAxkBAAIB",
        "file_unique_id": "AgAD",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
    event = parse(sample)
    assert isinstance(event, Ignored)
    assert "without text or attachment" in event.reason


# --- dates --------------------------------------------------------------------------------------------


def test_message_date_is_the_time_of_receipt_when_it_is_earlier() -> None:
    assert learner_message(load("private_text")).received_at == datetime(2025, 11, 25, 3, 50, tzinfo=UTC)


def test_message_date_is_never_later_than_received_at() -> None:
    received = datetime(2025, 11, 25, 3, 49, tzinfo=UTC)  # the sample says 03:50: a clock ahead
    event = parse_update(load("private_text"), received_at=received)
    assert isinstance(event, LearnerMessage)
    assert event.message.received_at == received


def test_received_at_in_another_zone_comes_back_as_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    received = datetime(2025, 11, 25, 11, 49, tzinfo=beijing)
    event = parse_update(load("private_text"), received_at=received)
    assert isinstance(event, LearnerMessage)
    assert event.message.received_at == received
    assert event.message.received_at.utcoffset() == timedelta(0)


def test_naive_received_at_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_update(load("private_text"), received_at=datetime(2025, 11, 25, 12, 0))  # noqa: DTZ001


# --- staff side -------------------------------------------------------------------------------------


def test_group_command_with_our_botname() -> None:
    assert parse(load("group_command_botname")) == StaffCommand(
        command="claim",
        args=NUMBER,
        chat_id=GROUP,
        user_id=STAFF,
        user_name="Anna Zhang",
        thread_id=None,
        reply_to_message_id=None,
        message_id=2210,
        update_id=861204530,
    )


@pytest.mark.parametrize("bot_username", [None, "SchoolComplaintBot", "@schoolcomplaintbot"])
def test_our_botname_in_any_case_or_no_botname_known(bot_username: str | None) -> None:
    event = parse(load("group_command_botname"), bot_username=bot_username)
    assert isinstance(event, StaffCommand)
    assert event.command == "claim"


def test_command_for_another_bot_is_ignored() -> None:
    for name in ("group_command_botname", "private_start"):
        sample = load(name)
        message = sample["message"]
        head, _, rest = message["text"].partition(" ")
        message["text"] = f"{head.split('@')[0]}@OtherHelpdeskBot {rest}".strip()
        message["entities"][0]["length"] = len(message["text"].split()[0])
        event = parse(sample)
        assert isinstance(event, Ignored), name
        assert "another bot" in event.reason


def test_commands_are_lower_cased_and_keep_multiline_args() -> None:
    sample = load("group_command_botname")
    sample["message"]["text"] = f"/Reply@SchoolComplaintBot {NUMBER} 您好，\n周六补课。 "
    event = parse(sample)
    assert isinstance(event, StaffCommand)
    assert (event.command, event.args) == ("reply", f"{NUMBER} 您好，\n周六补课。")


def test_command_followed_by_a_newline() -> None:
    sample = load("forum_topic_note")
    sample["message"]["text"] = "/note\n第一行\n第二行"
    event = parse(sample)
    assert isinstance(event, StaffCommand)
    assert (event.command, event.args) == ("note", "第一行\n第二行")


def test_slash_without_a_command_entity_is_plain_text() -> None:
    sample = load("forum_topic_text")
    sample["message"]["text"] = "/ 这不是命令"
    assert isinstance(parse(sample), StaffText)
    sample = load("group_command_botname")
    sample["message"]["entities"][0]["offset"] = 1  # a command later in the text is not ours to run
    assert isinstance(parse(sample), StaffText)


def test_forum_topic_text_is_a_reply_to_the_learner() -> None:
    sample = load("forum_topic_text")
    assert parse(sample) == StaffText(
        text=sample["message"]["text"],
        chat_id=FORUM,
        user_id=STAFF,
        user_name="Anna Zhang",
        thread_id=1203,
        message_id=1207,
        update_id=861204531,
    )


def test_command_in_a_topic_is_not_a_reply_to_the_topics_opening_message() -> None:
    event = parse(load("forum_topic_note"))
    assert isinstance(event, StaffCommand)
    assert (event.command, event.thread_id, event.reply_to_message_id) == ("note", 1203, None)
    assert event.args == "已电话联系王老师，确认两次缺课属实"


def test_reply_to_a_card_in_an_ordinary_group() -> None:
    event = parse(load("reply_to_card"))
    assert isinstance(event, StaffCommand)
    assert (event.command, event.args, event.reply_to_message_id) == ("claim", "", 2205)
    assert event.thread_id is None  # message_thread_id of a reply thread is no forum topic


def test_reply_to_a_card_inside_a_topic_names_the_card() -> None:
    sample = load("forum_topic_note")
    sample["message"]["reply_to_message"] = load("callback_query")["callback_query"]["message"]
    event = parse(sample)
    assert isinstance(event, StaffCommand)
    assert (event.thread_id, event.reply_to_message_id) == (1203, 1204)


def test_staff_media_is_ignored_even_with_a_caption() -> None:
    sample = load("forum_topic_text")
    message = sample["message"]
    message["caption"] = message.pop("text")
    message["photo"] = load("private_photo_caption")["message"]["photo"]
    event = parse(sample)
    assert isinstance(event, Ignored)
    assert "without text" in event.reason


def test_staff_name_falls_back_to_username_then_id() -> None:
    sample = load("forum_topic_text")
    del sample["message"]["from"]["first_name"], sample["message"]["from"]["last_name"]
    event = parse(sample)
    assert isinstance(event, StaffText)
    assert event.user_name == "anna_service"
    del sample["message"]["from"]["username"]
    event = parse(sample)
    assert isinstance(event, StaffText)
    assert event.user_name == str(STAFF)


def test_callback_query_is_a_button_press() -> None:
    assert parse(load("callback_query")) == ButtonPress(
        callback_id="2500357021484755309",
        data=f"claim:{NUMBER}",
        chat_id=FORUM,
        user_id=STAFF,
        user_name="Anna Zhang",
        message_id=1204,
        thread_id=1203,
        update_id=861204534,
    )


def test_button_on_an_inaccessible_message_still_counts() -> None:
    sample = load("callback_query")
    # What Telegram sends for a message older than 48 hours: date 0 and only chat and id.
    sample["callback_query"]["message"] = {
        "chat": {"id": FORUM, "type": "supergroup"},
        "message_id": 1204,
        "date": 0,
    }
    telegram.Update.de_json(copy.deepcopy(sample), bot=None)
    event = parse(sample)
    assert isinstance(event, ButtonPress)
    assert (event.chat_id, event.message_id, event.thread_id) == (FORUM, 1204, None)


def test_button_without_a_message_is_unusable() -> None:
    sample = load("callback_query")
    del sample["callback_query"]["message"]
    sample["callback_query"]["inline_message_id"] = "AgAAAJ8XAQBxyUYZOJeUiQ"
    event = parse(sample)
    assert isinstance(event, Unusable)
    assert "callback_query.message" in event.reason
    assert event.external_id == "update:861204534"


# --- ignored ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("edited_message", "edited_message"),
        ("my_chat_member", "my_chat_member"),
        ("bot_message", "bot"),
        ("new_chat_members", "new_chat_members"),
    ],
)
def test_ignored_samples_say_why(name: str, reason: str) -> None:
    event = parse(load(name))
    assert isinstance(event, Ignored)
    assert reason in event.reason
    assert event.update_id == load(name)["update_id"]


@pytest.mark.parametrize(
    "service",
    [
        {"left_chat_member": {"id": 639204117, "is_bot": False, "first_name": "Jun"}},
        {"forum_topic_created": {"name": NUMBER, "icon_color": 7322096}, "message_thread_id": 1210},
        {"pinned_message": {"message_id": 1204, "chat": {"id": FORUM, "type": "supergroup"}, "date": 0}},
    ],
)
def test_service_messages_are_ignored(service: dict[str, Any]) -> None:
    sample = load("new_chat_members")
    message = sample["message"]
    for key in ("new_chat_members", "new_chat_member", "new_chat_participant"):
        del message[key]
    message.update(service)
    event = parse(sample)
    assert isinstance(event, Ignored)
    assert event.reason == f"service message: {next(iter(service))}"


def test_bot_in_a_private_chat_is_ignored() -> None:
    sample = load("private_text")
    sample["message"]["from"]["is_bot"] = True
    assert isinstance(parse(sample), Ignored)


def test_automatic_forward_from_a_linked_channel_is_ignored() -> None:
    sample = load("forum_topic_text")
    sample["message"]["from"] = {"id": 777000, "is_bot": False, "first_name": "Telegram"}
    sample["message"]["is_automatic_forward"] = True
    event = parse(sample)
    assert isinstance(event, Ignored)
    assert "automatic forward" in event.reason


@pytest.mark.parametrize(
    "kind",
    [
        "channel_post",
        "edited_channel_post",
        "chat_member",
        "message_reaction",
        "chat_join_request",
        "some_kind_added_next_year",
    ],
)
def test_other_update_kinds_are_ignored_by_name(kind: str) -> None:
    event = parse(
        {"update_id": 861204600, kind: {"chat": {"id": -100123, "type": "channel"}, "date": 1764042600}}
    )
    assert event == Ignored(f"{kind} updates are not handled", 861204600)


def test_message_in_a_channel_chat_is_ignored() -> None:
    sample = load("forum_topic_text")
    sample["message"]["chat"]["type"] = "channel"
    event = parse(sample)
    assert isinstance(event, Ignored)
    assert "channel" in event.reason


# --- malformed ----------------------------------------------------------------------------------------


def _without(path: str) -> dict[str, Any]:
    sample = load("private_start")
    *parents, last = path.split(".")
    node = sample
    for key in parents:
        node = node[key]
    del node[last]
    return sample


def _with(path: str, value: object) -> dict[str, Any]:
    sample = load("private_start")
    *parents, last = path.split(".")
    node = sample
    for key in parents:
        node = node[key]
    node[last] = value
    return sample


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        (_without("message.chat"), "message.chat is missing"),
        (_without("message.from"), "message.from is missing"),
        (_without("message.message_id"), "message.message_id is missing"),
        (_without("message.date"), "message.date is missing"),
        (_without("message.chat.id"), "message.chat.id is missing"),
        (_with("message.chat.id", "5821736440"), "message.chat.id is not a usable int (got str)"),
        (_with("message.chat.id", True), "message.chat.id is not a usable int (got bool)"),
        (_with("message.chat.id", 10**5000), "message.chat.id is not a usable int (got int)"),
        (_with("message.message_id", 401.0), "message.message_id is not a usable int (got float)"),
        (_with("message.message_id", None), "message.message_id is missing"),
        (_with("message.date", 10**15), "message.date is out of range"),
        (_with("message.chat", []), "message.chat is not a usable dict (got list)"),
        (_with("message.text", 42), "message.text is not a usable str (got int)"),
        (_with("message.from.first_name", ["Wei"]), "message.from.first_name is not a usable str (got list)"),
        (_with("message.entities", "bot_command"), "message.entities is not a list of objects"),
        (_with("message.photo", []), "message.photo is not a list of sizes"),
        (_with("message", "hello"), "update.message is not a usable dict (got str)"),
    ],
)
def test_malformed_updates_are_unusable_with_a_clear_reason(update: dict[str, Any], reason: str) -> None:
    event = parse(update)
    assert isinstance(event, Unusable), event
    assert event.reason == reason
    assert (event.update_id, event.external_id) == (861204501, "update:861204501")


def test_missing_update_id_gets_a_stable_key_of_its_own() -> None:
    first, again, other = load("private_text"), load("private_text"), load("private_voice")
    for sample in (first, again, other):
        del sample["update_id"]
    events = [parse(sample) for sample in (first, again, other)]
    assert all(isinstance(event, Unusable) for event in events)
    keys = [event.external_id for event in events if isinstance(event, Unusable)]
    assert keys[0] == keys[1] != keys[2]
    assert keys[0].startswith("sha256:")
    assert {event.update_id for event in events if isinstance(event, Unusable)} == {UNKNOWN_UPDATE_ID}


@pytest.mark.parametrize("update", [{}, {"update_id": "861204511"}, {"update_id": True}, {"update_id": None}])
def test_update_without_a_usable_update_id(update: dict[str, Any]) -> None:
    event = parse(update)
    assert isinstance(event, Unusable)
    assert event.update_id == UNKNOWN_UPDATE_ID


def test_update_that_is_not_an_object() -> None:
    event = parse_update([1, 2], received_at=NOW)  # type: ignore[arg-type]
    assert isinstance(event, Unusable)
    assert (event.update_id, event.external_id[:7]) == (UNKNOWN_UPDATE_ID, "sha256:")


def test_update_with_nothing_but_its_id() -> None:
    assert parse({"update_id": 7}) == Unusable("update carries nothing besides update_id", 7, "update:7")


def test_external_id_is_chat_and_message() -> None:
    assert external_id(FORUM, 1204) == "-1002178345621:1204"
    assert external_id(LEARNER, 1204) != external_id(FORUM, 1204)


# --- fuzz -------------------------------------------------------------------------------------------

WRONG_VALUES: list[object] = [None, "", "x", 0, -1, 1.5, True, False, [], {}, [1, "a"], {"id": "x"}, 2**70]


def _nodes(value: object) -> list[dict[str, Any] | list[Any]]:
    """Every dict and list inside `value`, itself included."""
    found: list[dict[str, Any] | list[Any]] = []
    if isinstance(value, dict | list):
        found.append(value)
        for child in value.values() if isinstance(value, dict) else value:
            found.extend(_nodes(child))
    return found


def _mutate(update: dict[str, Any], rng: random.Random) -> None:
    node = rng.choice(_nodes(update))
    if not node:
        return
    if isinstance(node, dict):
        key = rng.choice(list(node))
        if rng.random() < 0.4:
            del node[key]
        else:
            node[key] = copy.deepcopy(rng.choice(WRONG_VALUES))
    else:
        index = rng.randrange(len(node))
        if rng.random() < 0.4:
            del node[index]
        else:
            node[index] = copy.deepcopy(rng.choice(WRONG_VALUES))


def test_random_mutations_never_raise() -> None:
    rng = random.Random(20251125)
    samples = [load(name) for name in SAMPLES]
    seen: dict[type, int] = {}
    for _ in range(500):
        update = copy.deepcopy(rng.choice(samples))
        for _ in range(rng.randint(1, 3)):
            _mutate(update, rng)
        event = parse_update(update, received_at=NOW, bot_username=rng.choice([None, BOT]))
        assert isinstance(event, EVENT_TYPES), (update, event)
        if isinstance(event, Ignored | Unusable):
            assert event.reason
        seen[type(event)] = seen.get(type(event), 0) + 1
    # The mutations must both break updates and leave some usable: else the test proves little.
    assert seen.get(Unusable, 0) >= 50
    assert sum(seen.values()) - seen.get(Unusable, 0) >= 100
