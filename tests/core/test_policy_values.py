"""A policy value that cannot be meant is refused at start-up in one line naming its key."""

from __future__ import annotations

import pytest

from core.classification.rules import rules_of
from core.rules.policy import PolicyError, parse_policy


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "[stages.claim]\nhours = -1",
            "stages.claim.hours: Input should be greater than 0 (given: -1)",
        ),
        ("[stages.claim]\nhours = 0", "stages.claim.hours: Input should be greater than 0"),
        (
            "[stages.investigate]\nworking_days = 0",
            "stages.investigate.working_days: Input",
        ),
        ("[stages.claim]\nmajor_hours = -0.5", "stages.claim.major_hours: Input should be greater than 0"),
        ("[stages.claimm]\nhours = 1", "stages.claimm: unknown stage; the stages are"),
        (
            "[follow_up]\nquality_target = 95",
            "follow_up.quality_target: Input should be less than",
        ),
        (
            "[follow_up]\nwarning_below = -0.1",
            "follow_up.warning_below: Input should be greater",
        ),
        ("[follow_up]\nreopen_at_or_below = 9", "follow_up: reopen_at_or_below must be a score between"),
        ('[calendar]\nholidays = ["2026-13-01"]', "calendar.holidays.0: Input should be a valid date"),
        ('[calendar]\nworkdays = ["soon"]', "calendar.workdays.0: Input should be a valid date"),
        ('[calendar]\ntimezone = "Mars/Olympus"', "calendar.timezone: unknown time zone 'Mars/Olympus'"),
        ('[calendar]\nworkday_start = "18:00"\nworkday_end = "09:00"', "calendar: workday_start must be"),
        ('[hotline]\nopen = "21:00"\nclose = "09:00"', "hotline: open must be before close"),
        ("[credit]\ngrade_a = 900", "credit.grade_a: Input should be less than"),
        (
            "[intake]\nhandoff_minutes = -5",
            "intake.handoff_minutes: Input should be greater",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(text: str, line: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(text, source="policy.toml")
    message = str(raised.value)
    assert line in message and "\n" not in message, message
    assert "Value error" not in message


def test_the_defaults_and_sensible_changes_pass() -> None:
    policy = parse_policy('[follow_up]\nquality_target = 0.9\n[calendar]\nholidays = ["2026-12-31"]')
    assert policy.follow_up.quality_target == 0.9


def test_a_wrong_classification_rule_is_a_policy_error_naming_it() -> None:
    # The policy keeps the rules raw; the classifier reads them when the core is composed, at start-up.
    policy = parse_policy('[classification]\ndefault_category = "misc"\n', source="/etc/school.toml")
    with pytest.raises(PolicyError, match=r"^/etc/school.toml: classification rules: .*misc"):
        rules_of(policy)
