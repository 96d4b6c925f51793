"""The classification rules as the policy file states them ([classification] and [severity]).

Every word list and weight is the operator's: they live in the policy file, never in Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.rules.policy import Policy, PolicyError

__all__ = ["CategoryRule", "ClassificationRules", "rules_from_policy"]


@dataclass(frozen=True)
class CategoryRule:
    """A category's keywords by weight: (keyword, weight) pairs, heaviest first where repeated."""

    name: str
    weighted: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class ClassificationRules:
    categories: tuple[tuple[str, tuple[str, ...]], ...]
    default_category: str
    major_amount_yuan: Decimal
    threat_keywords: tuple[str, ...]
    data_leak_keywords: tuple[str, ...]
    # Keywords that weigh more (a category's own words) or less (words many complaints share).
    strong_keywords: tuple[tuple[str, tuple[str, ...]], ...] = ()
    weak_keywords: tuple[tuple[str, tuple[str, ...]], ...] = ()
    strong_weight: float = 3.0
    weak_weight: float = 0.5
    # The winning category must lead the runner-up by this many points to be trusted.
    min_margin: float = 1.0
    # Safety words also count for this category (the buildings' category), at this weight.
    safety_category: str | None = None
    safety_weight: float = 1.0
    group_keywords: tuple[str, ...] = ()
    # "十几个同学都…", "15 of us": a count of people at least group_min_people.
    people_words: tuple[str, ...] = ()
    group_markers: tuple[str, ...] = ()
    # "不少同学", "most of my classmates"; "我们这个班…都".
    group_quantifiers: tuple[str, ...] = ()
    group_collectives: tuple[str, ...] = ()
    group_min_people: int = 3
    safety_keywords: tuple[str, ...] = ()
    # A personal-data word and a disclosure word in one sentence: "my phone number was passed to…".
    personal_data_words: tuple[str, ...] = ()
    disclosure_words: tuple[str, ...] = ()
    # Words that take back a threat in the same clause before it: "不想闹到监管部门".
    negation_cues: tuple[str, ...] = ()
    # Words before a threat in its clause that make it someone else's or never made: "朋友说…找了媒体".
    threat_disowners: tuple[str, ...] = ()
    # A person other than the writer, then a word of saying, before a threat in its clause: the threat is
    # theirs ("我老公说要去找市场监管", "my sister says she'll report you to 12315").
    threat_others: tuple[str, ...] = ()
    threat_said: tuple[str, ...] = ()
    # A platform named in a clause with a sighting word and no posting word is where the learner saw the
    # school, not a threat: "抖音上看到你们的广告才报的名".
    threat_sightings: tuple[str, ...] = ()
    threat_posting: tuple[str, ...] = ()
    # Words that make such a negation a thing of the past: "本来不想去消协的，但是…".
    negation_lapses: tuple[str, ...] = ()
    # Right after a safety word, these make it a subject, not an incident: "fire safety module", "消防演练".
    safety_topic_words: tuple[str, ...] = ()
    # Before a safety word in its clause, these make it a subject too: "he talks about electric shocks".
    safety_topic_cues: tuple[str, ...] = ()
    # A third party and its contacting the learner in one sentence is a leak ("a loan company called me and
    # knew my course"), unless the sentence shows the learner's own dealings with it ("催我还款").
    third_party_words: tuple[str, ...] = ()
    contact_words: tuple[str, ...] = ()
    own_dealings_words: tuple[str, ...] = ()
    # A sentence with a past cue and a settled cue, and no unsettled cue, is about a closed matter and left
    # out: "上回被盗刷的事你们已经报警处理了", "the last refund issue was resolved, thank you".
    settled_cues: tuple[str, ...] = ()
    past_cues: tuple[str, ...] = ()
    unsettled_cues: tuple[str, ...] = ()
    # Amounts in a sentence with one of these are not at stake: "价格1980挺合理", "my employer covered it".
    amount_waivers: tuple[str, ...] = ()
    # A threat in a sentence with one of these is not meant: "崩得我都想报警了，笑死", "lol".
    jest_cues: tuple[str, ...] = ()
    # ... unless it says the threat is no joke: "我不是开玩笑", "I'm not joking".
    earnest_cues: tuple[str, ...] = ()
    # An amount of money counts for this category (fees), at this weight, besides its words.
    amount_category: str | None = None
    # Where a practice place or machine is named ("实训室", "lab", "教练车") and no fixture of the building,
    # the safety words and the words of damage ("坏了", "broken") found weigh for this category (teaching:
    # broken lab equipment), not for the buildings'.
    practice_category: str | None = None
    practice_words: tuple[str, ...] = ()
    fixture_words: tuple[str, ...] = ()  # the building's, wherever they are: "实训室空调坏了" is not teaching
    damage_words: tuple[str, ...] = ()
    amount_weight: float = 0.0
    # The model shipped with the package (core.classification.model) beside the rules: where the rules'
    # category is a guess, the model's is taken when it is at least model_category_sure; it overrides a
    # clear rules' category only at model_override or more (above 1: never); it makes a complaint major at
    # model_major.
    model: bool = False
    model_category_sure: float = 0.5
    model_override: float = 1.01
    model_major: float = 0.5
    category_rules: tuple[CategoryRule, ...] = field(init=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        lists = [kws for _, kws in (*self.categories, *self.strong_keywords, *self.weak_keywords)]
        lists += [
            self.threat_keywords, self.data_leak_keywords, self.group_keywords, self.people_words,
            self.group_markers, self.group_quantifiers, self.group_collectives, self.safety_keywords,
            self.personal_data_words, self.disclosure_words,
            self.negation_cues, self.negation_lapses, self.safety_topic_words, self.third_party_words,
            self.contact_words, self.own_dealings_words, self.settled_cues, self.past_cues,
            self.threat_disowners, self.threat_others, self.threat_said, self.unsettled_cues,
            self.amount_waivers, self.jest_cues, self.earnest_cues, self.safety_topic_cues,
            self.threat_sightings, self.threat_posting, self.practice_words, self.damage_words,
            self.fixture_words,
        ]  # fmt: skip
        blank = [kw for kws in lists for kw in kws if not kw.strip() or kw.strip() == "*"]
        if blank:
            # A blank keyword would match every complaint.
            raise ValueError(f"blank keyword in the classification rules: {blank[0]!r}")
        if self.major_amount_yuan < 0:
            raise ValueError(f"major_amount_yuan must not be negative, got {self.major_amount_yuan}")
        weights = (self.strong_weight, self.weak_weight, self.safety_weight, self.amount_weight)
        if not all(p >= 0 for p in (self.model_category_sure, self.model_override, self.model_major)):
            raise ValueError("model thresholds must not be negative")
        if min(*weights, self.min_margin) < 0:
            raise ValueError("classification weights and min_margin must not be negative")
        names = [name for name, _ in self.categories]
        unknown = {name for name, _ in (*self.strong_keywords, *self.weak_keywords)} - set(names)
        for named in (self.safety_category, self.amount_category, self.practice_category):
            if named is not None and named not in names:
                unknown.add(named)
        if unknown:
            raise ValueError(f"keywords for an unknown category: {sorted(unknown)[0]!r}")
        strong, weak = dict(self.strong_keywords), dict(self.weak_keywords)
        rules = []
        for name, keywords in self.categories:
            weighted = {kw.strip(): 1.0 for kw in keywords}
            weighted.update({kw.strip(): self.weak_weight for kw in weak.get(name, ())})
            weighted.update({kw.strip(): self.strong_weight for kw in strong.get(name, ())})
            if name == self.safety_category:
                for kw in self.safety_keywords:
                    weighted.setdefault(kw.strip(), self.safety_weight)
            rules.append(CategoryRule(name, tuple(weighted.items())))
        object.__setattr__(self, "category_rules", tuple(rules))


def rules_from_policy(policy: Mapping[str, Any]) -> ClassificationRules:
    """The rules from the policy file's [classification] and [severity] tables (parsed TOML).

    Raises KeyError for a missing key and TypeError / ValueError for a wrong shape.
    """
    classification = policy["classification"]
    severity = policy["severity"]
    categories_table = classification["categories"]
    if not isinstance(categories_table, Mapping) or not categories_table:
        raise TypeError("classification.categories must be a non-empty table of categories")
    categories, strong, weak = [], [], []
    for name, table in categories_table.items():
        where = f"classification.categories.{name}"
        if not isinstance(table, Mapping):
            raise TypeError(f"{where} must be a table")
        categories.append((str(name), _words(table.get("keywords"), f"{where}.keywords")))
        strong.append((str(name), _words(table.get("strong_keywords", []), f"{where}.strong_keywords")))
        weak.append((str(name), _words(table.get("weak_keywords", []), f"{where}.weak_keywords")))
    default_category = classification["default_category"]
    if default_category not in categories_table:
        raise ValueError(f"classification.default_category {default_category!r} is not a category")
    named = ("safety_category", "amount_category", "practice_category")
    safety_category, amount_category, practice_category = (_category_name(classification, k) for k in named)
    min_people = severity.get("group_min_people", 3)
    if isinstance(min_people, bool) or not isinstance(min_people, int) or min_people < 2:
        raise TypeError(f"severity.group_min_people must be a whole number of 2 or more, got {min_people!r}")

    def optional(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        return _words(table.get(key, []), f"{where}.{key}")

    return ClassificationRules(
        categories=tuple(categories),
        default_category=str(default_category),
        major_amount_yuan=_number(severity["major_amount_yuan"], "severity.major_amount_yuan"),
        threat_keywords=_words(severity["threat_keywords"], "severity.threat_keywords"),
        data_leak_keywords=_words(severity["data_leak_keywords"], "severity.data_leak_keywords"),
        strong_keywords=tuple(strong),
        weak_keywords=tuple(weak),
        strong_weight=float(_number(classification.get("strong_weight", 3), "classification.strong_weight")),
        weak_weight=float(_number(classification.get("weak_weight", 0.5), "classification.weak_weight")),
        min_margin=float(_number(classification.get("min_margin", 1), "classification.min_margin")),
        safety_category=safety_category,
        safety_weight=float(_number(classification.get("safety_weight", 1), "classification.safety_weight")),
        group_keywords=optional(severity, "group_keywords", "severity"),
        people_words=optional(severity, "people_words", "severity"),
        group_markers=optional(severity, "group_markers", "severity"),
        group_quantifiers=optional(severity, "group_quantifiers", "severity"),
        group_collectives=optional(severity, "group_collectives", "severity"),
        group_min_people=min_people,
        safety_keywords=optional(severity, "safety_keywords", "severity"),
        personal_data_words=optional(severity, "personal_data_words", "severity"),
        disclosure_words=optional(severity, "disclosure_words", "severity"),
        negation_cues=optional(severity, "negation_cues", "severity"),
        negation_lapses=optional(severity, "negation_lapses", "severity"),
        safety_topic_words=optional(severity, "safety_topic_words", "severity"),
        safety_topic_cues=optional(severity, "safety_topic_cues", "severity"),
        third_party_words=optional(severity, "third_party_words", "severity"),
        contact_words=optional(severity, "contact_words", "severity"),
        own_dealings_words=optional(severity, "own_dealings_words", "severity"),
        threat_disowners=optional(severity, "threat_disowners", "severity"),
        threat_others=optional(severity, "threat_others", "severity"),
        threat_said=optional(severity, "threat_said", "severity"),
        threat_sightings=optional(severity, "threat_sightings", "severity"),
        threat_posting=optional(severity, "threat_posting", "severity"),
        settled_cues=optional(severity, "settled_cues", "severity"),
        past_cues=optional(severity, "past_cues", "severity"),
        unsettled_cues=optional(severity, "unsettled_cues", "severity"),
        amount_waivers=optional(severity, "amount_waivers", "severity"),
        jest_cues=optional(severity, "jest_cues", "severity"),
        earnest_cues=optional(severity, "earnest_cues", "severity"),
        amount_category=amount_category,
        practice_category=practice_category,
        practice_words=optional(classification, "practice_words", "classification"),
        fixture_words=optional(classification, "fixture_words", "classification"),
        damage_words=optional(classification, "damage_words", "classification"),
        amount_weight=float(_number(classification.get("amount_weight", 0), "classification.amount_weight")),
        model=_flag(classification.get("model", False), "classification.model"),
        model_category_sure=_share(classification, "model_category_sure", 0.5),
        model_override=_share(classification, "model_override", 1.01),
        model_major=_share(classification, "model_major", 0.5),
    )


def _category_name(table: Mapping[str, Any], key: str) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"classification.{key} must be a category name, got {value!r}")
    return value


def _flag(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{where} must be true or false, got {value!r}")
    return value


def _share(table: Mapping[str, Any], key: str, default: float) -> float:
    return float(_number(table.get(key, default), f"classification.{key}"))


def _number(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{where} must be a number, got {value!r}")
    return Decimal(str(value))  # str() first: Decimal(0.1) would carry the float's binary error


def _words(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(kw, str) for kw in value):
        raise TypeError(f"{where} must be a list of strings")
    return tuple(value)


def rules_of(policy: Policy) -> ClassificationRules:
    """The classification rules of a policy; a wrong rule is a `PolicyError` naming it, raised when the
    application composes the core (at start-up, not at the first complaint)."""
    try:
        return rules_from_policy({"classification": policy.classification, "severity": policy.severity})
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyError(f"{policy.source}: classification rules: {exc}") from None
