from __future__ import annotations

import itertools
from datetime import date

import pytest

from core.storage.numbers import (
    InvalidTicketNumber,
    TicketNumber,
    damm_check_digit,
    damm_valid,
    find_ticket_numbers,
)

VALID = "TS-261122-00071"


# --- Damm --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "check"),
    [
        ("572", "4"),  # the textbook example
        ("2611220007", "1"),  # INTERFACES.md: TS-261122-00071
        ("0", "0"),
        ("1", "3"),
        ("12345", "9"),
        ("26112212345", "7"),
    ],
)
def test_damm_known_vectors(digits: str, check: str) -> None:
    assert damm_check_digit(digits) == check
    assert damm_valid(digits + check)


@pytest.mark.parametrize("bad", ["", "12a", " 12", "１２", "²"])
def test_damm_check_digit_refuses_non_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        damm_check_digit(bad)


def test_damm_valid_false_for_garbage_and_wrong_digit() -> None:
    assert not damm_valid("5725")
    assert not damm_valid("")
    assert not damm_valid("0")  # no payload, so no check digit
    assert not damm_valid("57a4")


def test_damm_catches_every_single_error_and_adjacent_transposition() -> None:
    payload = "2611220007"
    for i in range(len(payload)):
        for d in "0123456789":
            if d != payload[i]:
                changed = payload[:i] + d + payload[i + 1 :]
                assert damm_check_digit(changed) != damm_check_digit(payload)


# --- TicketNumber ------------------------------------------------------------------------------------------


def test_interfaces_example() -> None:
    number = TicketNumber.parse(VALID)
    assert number == TicketNumber("TS", date(2026, 11, 22), 7)
    assert number.check_digit == "1"
    assert str(number) == VALID
    assert str(TicketNumber("TS", date(2026, 11, 22), 7)) == VALID


def test_long_sequence_grows_past_four_digits() -> None:
    number = TicketNumber("TS", date(2026, 11, 22), 12345)
    assert number.check_digit == damm_check_digit("261122" + "12345")
    assert str(number) == "TS-261122-123457"
    assert TicketNumber.parse("TS-261122-123457") == number


@pytest.mark.parametrize(
    ("day", "sequence"),
    [
        (date(2026, 11, 22), 7),
        (date(2026, 1, 1), 0),
        (date(2099, 12, 31), 9999),
        (date(2000, 1, 1), 10000),
        (date(2026, 11, 22), 1234567),
    ],
)
def test_round_trip(day: date, sequence: int) -> None:
    text = str(TicketNumber("TS", day, sequence))
    parsed = TicketNumber.parse(text)
    assert parsed == TicketNumber("TS", day, sequence)
    assert str(parsed) == text


@pytest.mark.parametrize("text", [VALID, "TS-261122-123457"])
def test_round_trip_literal(text: str) -> None:
    assert str(TicketNumber.parse(text)) == text


def test_every_single_substitution_is_refused() -> None:
    for i, ch in enumerate(VALID):
        if not ch.isdigit():
            continue
        for d in "0123456789":
            if d == ch:
                continue
            typo = VALID[:i] + d + VALID[i + 1 :]
            with pytest.raises(InvalidTicketNumber):
                TicketNumber.parse(typo)
            assert find_ticket_numbers(f"about {typo} again") == []


def test_every_adjacent_transposition_is_refused() -> None:
    # Adjacent in the digit string the check covers, so also across the hyphen ("2-0" in "...22-00...").
    positions = [i for i, ch in enumerate(VALID) if ch.isdigit()]
    for a, b in itertools.pairwise(positions):
        if VALID[a] == VALID[b]:
            continue
        chars = list(VALID)
        chars[a], chars[b] = chars[b], chars[a]
        typo = "".join(chars)
        with pytest.raises(InvalidTicketNumber):
            TicketNumber.parse(typo)
    # and swapping a digit with its neighbouring character in the text, hyphens included
    for i in range(len(VALID) - 1):
        if VALID[i] == VALID[i + 1]:
            continue
        typo = VALID[:i] + VALID[i + 1] + VALID[i] + VALID[i + 2 :]
        with pytest.raises(InvalidTicketNumber):
            TicketNumber.parse(typo)


def test_wrong_check_digit_message() -> None:
    with pytest.raises(InvalidTicketNumber, match=r"^TS-261122-00072: wrong check digit$"):
        TicketNumber.parse("TS-261122-00072")


@pytest.mark.parametrize("text", ["CB-261122-00071", "XTS-261122-00071", "T-261122-00071", "261122-00071"])
def test_wrong_prefix(text: str) -> None:
    with pytest.raises(InvalidTicketNumber, match="not a ticket number"):
        TicketNumber.parse(text)


@pytest.mark.parametrize("day", ["261332", "261131", "260229", "260001", "261100"])
def test_bad_date(day: str) -> None:
    text = f"TS-{day}-0007{damm_check_digit(day + '0007')}"
    with pytest.raises(InvalidTicketNumber, match=f"bad date {day}"):
        TicketNumber.parse(text)


def test_leap_day_is_a_date() -> None:
    text = f"TS-280229-0001{damm_check_digit('2802290001')}"
    assert TicketNumber.parse(text).day == date(2028, 2, 29)


@pytest.mark.parametrize(
    "text",
    [
        "TS-261122-0071",
        "TS-261122-",
        "TS-2611-00071",
        "TS-261122-00071 x",
        "TS-261122-0007１x",
        "TS261122-00071",
    ],
)
def test_malformed(text: str) -> None:
    with pytest.raises(InvalidTicketNumber):
        TicketNumber.parse(text)


def test_extra_leading_zeros_refused() -> None:
    text = f"TS-261122-00007{damm_check_digit('26112200007')}"
    with pytest.raises(InvalidTicketNumber, match="leading zeros"):
        TicketNumber.parse(text)


def test_parse_is_lenient_on_case_space_and_width() -> None:
    expected = TicketNumber.parse(VALID)
    for text in [
        " ts-261122-00071\n",
        "Ts-261122-00071",
        "TS－261122－00071",
        "ＴＳ－２６１１２２－０００７１",
        "TS–261122–00071",
    ]:
        parsed = TicketNumber.parse(text)
        assert parsed == expected
        assert str(parsed) == VALID  # printed in the configured, canonical form


def test_configurable_prefix() -> None:
    number = TicketNumber("CB", date(2026, 11, 22), 7)
    assert str(number) == "CB-261122-00071"
    assert TicketNumber.parse("cb-261122-00071", prefix="CB") == number
    with pytest.raises(InvalidTicketNumber):
        TicketNumber.parse("TS-261122-00071", prefix="CB")
    with pytest.raises(InvalidTicketNumber):
        TicketNumber.parse("CB-261122-00071")
    # regex metacharacters in a prefix are taken literally
    dotted = TicketNumber("T.S", date(2026, 11, 22), 7)
    assert TicketNumber.parse("T.S-261122-00071", prefix="T.S") == dotted
    with pytest.raises(InvalidTicketNumber):
        TicketNumber.parse("TXS-261122-00071", prefix="T.S")


def test_constructor_refuses_unprintable_numbers() -> None:
    with pytest.raises(ValueError):
        TicketNumber("", date(2026, 1, 1), 1)
    with pytest.raises(ValueError):
        TicketNumber("T S", date(2026, 1, 1), 1)
    with pytest.raises(ValueError):
        TicketNumber("TS", date(1999, 12, 31), 1)
    with pytest.raises(ValueError):
        TicketNumber("TS", date(2026, 1, 1), -1)


def test_ordering() -> None:
    a = TicketNumber("TS", date(2026, 11, 22), 9)
    b = TicketNumber("TS", date(2026, 11, 22), 10)
    c = TicketNumber("TS", date(2026, 11, 23), 1)
    assert sorted([c, b, a]) == [a, b, c]


# --- find_ticket_numbers -----------------------------------------------------------------------------------


def test_find_in_english_text() -> None:
    expected = [TicketNumber.parse(VALID)]
    assert find_ticket_numbers("Hello, about TS-261122-00071 again, nobody called me.") == expected
    assert find_ticket_numbers("re: [ts-261122-00071]") == expected
    assert find_ticket_numbers("(TS-261122-00071).") == expected


def test_find_in_chinese_text() -> None:
    expected = [TicketNumber.parse(VALID)]
    assert find_ticket_numbers("你好，我的投诉编号TS-261122-00071还没有处理。") == expected
    assert find_ticket_numbers("关于 TS－261122－00071 的投诉") == expected
    assert find_ticket_numbers("单号：ＴＳ－２６１１２２－０００７１，谢谢") == expected


def test_find_several_in_order_without_repeats_and_skips_invalid() -> None:
    second = str(TicketNumber("TS", date(2026, 11, 23), 12345))
    text = f"{second} and TS-261122-00072 (typo) and {VALID} and again {second}; also TS-261332-00071"
    assert [str(n) for n in find_ticket_numbers(text)] == [second, VALID]


def test_find_respects_boundaries() -> None:
    assert find_ticket_numbers("XTS-261122-00071") == []
    assert find_ticket_numbers("TS-261122-000712") == []  # longer digit run, not our number
    assert find_ticket_numbers("TS-261122-0007") == []
    assert find_ticket_numbers("") == []
    assert find_ticket_numbers("no numbers here 261122-00071") == []


def test_find_with_other_prefix() -> None:
    text = "CB-261122-00071 vs TS-261122-00071"
    assert find_ticket_numbers(text, prefix="CB") == [TicketNumber("CB", date(2026, 11, 22), 7)]
    assert find_ticket_numbers(text) == [TicketNumber("TS", date(2026, 11, 22), 7)]
