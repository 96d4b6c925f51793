"""Long texts split to a channel's limit: in order, whole characters, at the most natural boundary."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.text_limits import TextLimit, shorten, split_text

WECHAT = TextLimit(2048, "utf8")
TELEGRAM = TextLimit(4096, "utf16")


def test_a_text_that_fits_is_one_part() -> None:
    assert split_text("您好，已为您调换老师。", WECHAT) == ["您好，已为您调换老师。"]


def test_chinese_is_counted_in_bytes_for_wechat_and_split_at_paragraphs() -> None:
    # 400 characters of Chinese are 1,200 bytes: two paragraphs do not fit one WeChat message together.
    first, second = "第一段。" * 100, "第二段。" * 100
    parts = split_text(f"{first}\n\n{second}", WECHAT)
    assert parts == [first, second]


def test_a_paragraph_too_long_for_one_message_is_split_after_a_sentence() -> None:
    sentence = "老师上课总是迟到，我们已经反映过很多次了。"  # 21 characters, 63 bytes
    parts = split_text(sentence * 40, WECHAT)
    assert len(parts) == 2
    assert all(part.endswith("。") for part in parts)
    assert "".join(parts) == sentence * 40


def test_telegram_counts_utf16_units_so_emoji_count_twice() -> None:
    text = "😀" * 3000  # 3,000 characters, 6,000 UTF-16 units
    parts = split_text(text, TELEGRAM)
    assert [len(p) for p in parts] == [2048, 952]
    assert "".join(parts) == text


def test_an_emoji_with_its_skin_tone_is_never_parted() -> None:
    parts = split_text("👍🏽" * 10, TextLimit(9, "utf16"))  # each is 4 units: two fit, not two and a half
    assert parts == ["👍🏽👍🏽"] * 5


def test_shortened_text_ends_in_an_ellipsis_within_the_limit() -> None:
    short = shorten("你好世界" * 300, WECHAT)
    assert short.endswith("…") and WECHAT.fits(short) and WECHAT.measure(short) > 2040
    assert shorten("short", WECHAT) == "short"


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=600),
    size=st.integers(min_value=8, max_value=120),
    unit=st.sampled_from(["chars", "utf16", "utf8"]),
)
def test_every_part_fits_and_together_they_are_the_text(text: str, size: int, unit: str) -> None:
    limit = TextLimit(size, unit)  # type: ignore[arg-type]
    parts = split_text(text, limit)
    assert all(limit.fits(part) for part in parts)
    # Nothing lost, nothing reordered: only the white space where the text was parted is left out.
    assert "".join("".join(p.split()) for p in parts) == "".join(text.split())
