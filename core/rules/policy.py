"""The school's policy: every number of POLICY.md, read from a TOML file.

The packaged `policy_default.toml` holds the defaults; an operator's file overrides any part of it
(tables are merged key by key), so a file that changes one deadline need not repeat the rest.
"""

from __future__ import annotations

import tomllib
from datetime import date, time
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from core.rules.calendar import CalendarSettings

DEFAULT_POLICY_TEXT = resources.files("core").joinpath("policy_default.toml").read_text(encoding="utf-8")


class PolicyError(ValueError):
    """The policy file cannot be used; the message says which key and why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CalendarPolicy(_Model):
    timezone: str = "Asia/Shanghai"
    workday_start: time = time(9, 0)
    workday_end: time = time(18, 0)
    holidays: list[date] = Field(default_factory=list)
    workdays: list[date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    @model_validator(mode="after")
    def _day_in_order(self) -> CalendarPolicy:
        if self.workday_start >= self.workday_end:
            raise ValueError("workday_start must be before workday_end")
        return self

    def settings(self) -> CalendarSettings:
        return CalendarSettings(
            timezone=self.timezone,
            workday_start=self.workday_start,
            workday_end=self.workday_end,
            holidays=frozenset(self.holidays),
            workdays=frozenset(self.workdays),
        )


class HotlinePolicy(_Model):
    open: time = time(9, 0)
    close: time = time(21, 0)
    follow_working_days: bool = False

    @model_validator(mode="after")
    def _day_in_order(self) -> HotlinePolicy:
        if self.open >= self.close:
            raise ValueError("open must be before close")
        return self


class IntakePolicy(_Model):
    ask_fields: list[str] = Field(default_factory=lambda: ["course", "expected_resolution", "contact"])
    handoff_minutes: int = Field(30, ge=0)
    # Acknowledgements to e-mail addresses never seen before, per hour; past it, held for staff (0: no cap).
    new_sender_acks_per_hour: int = Field(default=300, ge=0)

    @field_validator("ask_fields")
    @classmethod
    def _known_fields(cls, value: list[str]) -> list[str]:
        unknown = set(value) - {"course", "expected_resolution", "contact"}
        if unknown:
            raise ValueError(
                f"unknown intake field(s) {sorted(unknown)}: use course, expected_resolution, contact"
            )
        return value


class StageRule(_Model):
    """One clock: `hours` count working hours unless round_the_clock; `working_days` end at closing time."""

    hours: float | None = Field(None, gt=0)
    working_days: int | None = Field(None, ge=1)
    major_hours: float | None = Field(None, gt=0)
    major_working_days: int | None = Field(None, ge=1)
    round_the_clock: bool = False
    waits_on_learner: bool = False

    @model_validator(mode="after")
    def _one_unit(self) -> StageRule:
        if (self.hours is None) == (self.working_days is None):
            raise ValueError("give exactly one of `hours` or `working_days`")
        return self


class EscalationPolicy(_Model):
    reminder_at: float = Field(0.75, gt=0, lt=1)
    level2_after: float = Field(0.5, gt=0)
    major_alerts_managers: bool = True


class FollowUpPolicy(_Model):
    score_min: int = Field(1, ge=0)
    score_max: int = Field(5, ge=1, le=10)
    reopen_at_or_below: int = 2
    call_task_after_working_days: int = Field(2, ge=1)
    # Shares, 0 to 1 (0.95 is 95 %).
    completion_target: float = Field(1.0, ge=0, le=1)
    quality_target: float = Field(0.95, ge=0, le=1)
    warning_below: float = Field(0.90, ge=0, le=1)

    @model_validator(mode="after")
    def _scores_in_order(self) -> FollowUpPolicy:
        if not self.score_min < self.score_max:
            raise ValueError("score_min must be below score_max")
        if not self.score_min <= self.reopen_at_or_below <= self.score_max:
            raise ValueError("reopen_at_or_below must be a score between score_min and score_max")
        return self


class RetentionPolicy(_Model):
    days_after_close: int = Field(730, ge=1)


class SecondInstancePolicy(_Model):
    department: str = "compliance"
    contact_zh: str = ""
    contact_en: str = ""


class DigestPolicy(_Model):
    enabled: bool = True
    at: time = time(8, 30)  # local time of the daily digest to managers


class CreditPolicy(_Model):
    """Quarterly credit grades (POLICY.md §8): a score out of 100 from weighted shares, then a grade."""

    weight_deadlines: float = Field(40, ge=0)  # × share of stage deadlines met
    weight_satisfaction: float = Field(30, ge=0)  # × mean satisfaction / highest score
    weight_follow_up: float = Field(20, ge=0)  # × follow-up completion rate
    weight_upheld: float = Field(10, ge=0)  # × (1 − share of complaints upheld against them)
    grade_a: float = Field(90, ge=0, le=100)
    grade_b: float = Field(80, ge=0, le=100)
    grade_c: float = Field(70, ge=0, le=100)  # below this: D
    min_closed: int = Field(5, ge=0)  # fewer closed complaints in the quarter: not graded

    @model_validator(mode="after")
    def _ordered(self) -> CreditPolicy:
        if not self.grade_a >= self.grade_b >= self.grade_c:
            raise ValueError("grade thresholds must fall from A to C: grade_a >= grade_b >= grade_c")
        if self.weight_deadlines + self.weight_satisfaction + self.weight_follow_up + self.weight_upheld <= 0:
            raise ValueError("at least one credit weight must be above 0")
        return self


class ReportPolicy(_Model):
    """When the monthly report and the quarter's credit grades go to the managers."""

    enabled: bool = True
    working_day: int = Field(1, ge=1, le=10)  # the N-th working day of the month
    at: time = time(9, 0)  # local time, on that day


class StaffChatPolicy(_Model):
    # A new ticket of a learner (or phone, or address) with an open one in the same category this
    # many hours old or younger says "possibly the same as …" on its card.
    duplicate_window_hours: float = Field(72, ge=0)
    # Staff messages queued for one department's chat at which its lane counts as saturated: new
    # cards are then held and announced in one summary per interval (major complaints excepted).
    flood_queued: int = Field(20, ge=1)
    summary_every_minutes: float = Field(2, gt=0)


class DepartmentPolicy(_Model):
    first_contact: str = "service"
    data_leak_alerts: str = "compliance"


class Policy(_Model):
    # Where the policy was read from, for errors found after loading (the classification rules).
    _source: str = PrivateAttr("policy file")
    calendar: CalendarPolicy = CalendarPolicy()
    hotline: HotlinePolicy = HotlinePolicy()
    intake: IntakePolicy = IntakePolicy()
    stages: dict[str, StageRule]
    escalation: EscalationPolicy = EscalationPolicy()
    follow_up: FollowUpPolicy = FollowUpPolicy()
    retention: RetentionPolicy = RetentionPolicy()
    second_instance: SecondInstancePolicy = SecondInstancePolicy()
    digest: DigestPolicy = DigestPolicy()
    credit: CreditPolicy = CreditPolicy()
    report: ReportPolicy = ReportPolicy()
    departments: DepartmentPolicy = DepartmentPolicy()
    staff_chat: StaffChatPolicy = StaffChatPolicy()
    # Kept raw here: the classifier reads and validates them (`core.classification.rules.rules_of`), so the
    # policy does not depend on the classifier.
    classification: dict[str, Any]
    severity: dict[str, Any]

    @property
    def source(self) -> str:
        return self._source

    def stage(self, name: str) -> StageRule:
        try:
            return self.stages[name]
        except KeyError:
            raise PolicyError(f"the policy file has no [stages.{name}]") from None

    def department_for(self, category: str) -> str:
        categories = self.classification.get("categories", {})
        return str(categories.get(category, {}).get("department", self.departments.first_contact))


_UNITS = ("hours", "working_days", "major_hours", "major_working_days")


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    if any(unit in override for unit in ("hours", "working_days")):
        # A stage given in the other unit replaces the default's duration instead of adding to it.
        merged = {k: v for k, v in merged.items() if k not in _UNITS}
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_policy(text: str | None = None, *, source: str = "policy file") -> Policy:
    """The default policy, overridden by `text` (the content of an operator's policy file)."""
    data = tomllib.loads(DEFAULT_POLICY_TEXT)
    if text is not None:
        try:
            given = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{source}: not valid TOML: {exc}") from None
        stages = given.get("stages", {})
        unknown = sorted(set(stages) - set(data["stages"])) if isinstance(stages, dict) else []
        if unknown:
            # The code opens clocks by name: a stage it does not know would never run.
            known = ", ".join(data["stages"])
            raise PolicyError(f"{source}: stages.{unknown[0]}: unknown stage; the stages are {known}")
        data = _merge(data, given)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        value = first.get("input")
        message = _plain(first["msg"])
        if isinstance(value, str | int | float) and repr(value) not in message:
            message += f" (given: {value!r})"
        raise PolicyError(f"{source}: {where}: {message}") from None
    policy._source = source
    return policy


def _plain(message: str) -> str:
    """pydantic's "Value error, " prefix says nothing to an operator."""
    return message.removeprefix("Value error, ")


def load_policy(path: Path | None) -> Policy:
    """Read the operator's policy file; no file given means the defaults."""
    if path is None:
        return parse_policy()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from None
    return parse_policy(text, source=str(path))
