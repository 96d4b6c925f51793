"""Complaint category and severity (POLICY.md §3), from weighted rules in the policy file.

A category scores the weights of its keywords found in the complaint (jieba tokens for Chinese,
whole words for English); the highest score wins, and a lead smaller than `min_margin` is not
trusted (the ticket goes to learner services to check). Severity is major on an amount of
`major_amount_yuan` or more, a threat of media, regulator or lawsuit, several learners affected
(a group word or a count of people), safety, or a personal-data leak (a leak word, a personal
datum and a disclosure in one sentence, or a third party contacting the learner). A threat, group
or safety word that a negation takes back in its own clause ("不想闹到监管部门") does not count,
unless the learner says that was before ("本来不想…"); nor does a safety word naming a subject
("fire safety module"), nor a regulator's number as a sum ("12315"). Every decision carries its
reasons.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from core.amounts import parse_amounts
from core.classify_context import jest_sentences, simplified, without_closed_matters, without_waived_amounts
from core.classify_rules import ClassificationRules, rules_from_policy
from core.groups import GroupPatterns, find_group
from core.keywords import CJK, Hit, KeywordSet, Text, segment

__all__ = [
    "DATA_LEAK_CATEGORY",
    "GENERAL",
    "MAJOR",
    "Classification",
    "ClassificationRules",
    "classify",
    "detect_language",
    "parse_amounts",
    "rules_from_policy",
    "why",
]

GENERAL = "general"
MAJOR = "major"
# POLICY.md §3 files personal-data leaks under "other" whatever else the complaint says.
DATA_LEAK_CATEGORY = "other"

_LATIN_LETTER = re.compile(r"[A-Za-z]")
# A Chinese complaint often names an app, a course code or "HSK"; an English one sometimes
# quotes a teacher's Chinese name. A CJK character carries about as much as a whole English
# word, so a quarter of the letters being CJK already makes the text Chinese.
_ZH_SHARE = 0.25
# A clause ends at a comma or stop; a sentence only at a stop.
_CLAUSE_END = re.compile(r"[，,。！？!?;；:：\n]|\.(?:\s|$)|\bbut\b|但是|不过|只是|只希望")
_SENTENCE_END = re.compile(r"[。！？!?;；\n]|\.(?:\s|$)")


@dataclass(frozen=True)
class Classification:
    category: str
    severity: str
    language: str
    amount_yuan: Decimal | None
    data_leak: bool
    reasons: tuple[str, ...]
    # False when no category led clearly: staff should check the category.
    confident: bool = True


def detect_language(text: str) -> str:
    """The text's language: "zh" when CJK characters are a meaningful share of its letters, else "en"."""
    cjk = len(CJK.findall(text))
    latin = len(_LATIN_LETTER.findall(unicodedata.normalize("NFKC", text)))
    if cjk + latin == 0:
        return "zh"  # the schools' language when there is nothing to tell by
    return "zh" if cjk / (cjk + latin) >= _ZH_SHARE else "en"


def classify(text: str, rules: ClassificationRules) -> Classification:
    """Category, severity and the reasons for both, from the complaint's text."""
    # NFKC folds full-width letters and digits; phones type ’ where keywords have '.
    raw = simplified(unicodedata.normalize("NFKC", text).replace("\u2019", "'"))
    # What is left of the complaint once a matter it says is closed is taken out.
    raw, closed = without_closed_matters(raw, rules)
    matcher = _matcher(rules)
    doc = segment(raw, raw.lower(), matcher.words.chinese)
    hits: dict[str, list[Hit]] = {}
    for hit in matcher.words.find(doc):
        for role in matcher.roles[hit.keyword]:
            hits.setdefault(role, []).append(hit)
    reasons: list[str] = list(closed)
    amounts = parse_amounts(_without_hotlines(without_waived_amounts(raw, rules), matcher))
    amount = max(amounts) if amounts else None
    category, confident = _category(hits, rules, matcher, reasons, amount is not None)

    severity = GENERAL
    if amount is not None and amount >= rules.major_amount_yuan:
        severity = MAJOR
        reasons.append(f"amount {amount} yuan >= {rules.major_amount_yuan}")
    clauses = [m.start() for m in _CLAUSE_END.finditer(doc.lowered)]
    jests = jest_sentences(doc.raw, rules)
    subjects = _subjects(doc, hits.get(_SAFETY, []), rules.safety_topic_words)
    for kind in (_THREAT, _GROUP, _SAFETY):
        for hit in hits.get(kind, ()):
            cue = _negation(doc, hit, clauses, rules.negation_cues, rules.negation_lapses)
            unmeant = None  # a threat not meant: someone else's, in jest, where the school was seen
            if kind == _THREAT and not cue:
                cue = _negation(doc, hit, clauses, rules.threat_disowners, ())
            if kind == _THREAT and not cue:
                jest = next((said for start, end, said in jests if start <= hit.start < end), None)
                seen = _sighting(doc, hit, clauses, rules)
                if jest:
                    unmeant = f"said in jest: {jest!r}"
                elif seen:
                    unmeant = f"where the school was seen: {seen!r}"
            topic = f"{subjects[hit.start]!r} after it" if kind == _SAFETY and hit.start in subjects else None
            if kind == _SAFETY and not topic:
                taught = _negation(doc, hit, clauses, rules.safety_topic_cues, ())
                topic = f"{taught!r} before it" if taught else None
            if topic:
                reasons.append(f"not a {kind} (a subject: {topic}): {hit.keyword}")
            elif cue:
                reasons.append(f"not a {kind} ({cue!r} before it): {hit.keyword}")
            elif unmeant:
                reasons.append(f"not a {kind} ({unmeant}): {hit.keyword}")
            else:
                severity = MAJOR
                reasons.append(f"{kind}: {hit.keyword}")
    count = find_group(doc.lowered, rules, matcher.groups)
    if count:
        severity = MAJOR
        reasons.append(f"group: {count}")
    # A leak the learner has only heard of ("some people online say you leak data") is not one.
    leaks = [
        f"data leak: {hit.keyword}"
        for hit in hits.get(_LEAK, ())
        if not _negation(doc, hit, clauses, rules.threat_disowners, ())
    ]
    data = [
        hit for hit in hits.get(_DATUM, ()) if not _negation(doc, hit, clauses, rules.threat_disowners, ())
    ]
    leaks += _disclosures(doc, data, hits.get(_DISCLOSURE, []))
    if not leaks:
        parties, contacts = hits.get(_THIRD_PARTY, []), hits.get(_CONTACT, [])
        leaks += _third_party(doc, parties, contacts, hits.get(_OWN_DEALINGS, []))
    if leaks:
        category, severity, confident = DATA_LEAK_CATEGORY, MAJOR, True
        reasons += [f"{leak} -> {DATA_LEAK_CATEGORY}, {MAJOR}" for leak in leaks]

    return Classification(
        category=category,
        severity=severity,
        language=detect_language(text),
        amount_yuan=amount,
        data_leak=bool(leaks),
        reasons=tuple(reasons),
        confident=confident,
    )


def why(result: Classification, limit: int = 300) -> str:
    """One line for staff: the words that decided the category, and what made the severity."""
    suffix = f" -> {result.category}"
    words = [
        r[len("keyword ") : -len(suffix)]
        for r in result.reasons
        if r.startswith("keyword ") and r.endswith(suffix)
    ]
    line = f"{result.category}: {', '.join(words[:6]) or 'no keyword'}"
    if not result.confident:
        line += " (a guess)"
    severity = list(dict.fromkeys(r for r in result.reasons if r.startswith(_SEVERITY_REASONS)))
    line += f"; {result.severity}" + (f": {', '.join(severity)}" if severity else "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


_SEVERITY_REASONS = ("amount ", "threat: ", "group: ", "safety: ", "data leak: ")


def _category(
    hits: dict[str, list[Hit]],
    rules: ClassificationRules,
    matcher: _Matcher,
    reasons: list[str],
    has_amount: bool,
) -> tuple[str, bool]:
    scores: list[tuple[str, float]] = []
    for name, weights in matcher.categories:
        counts: dict[str, int] = {}
        for hit in hits.get(name, ()):
            counts[hit.keyword] = counts.get(hit.keyword, 0) + 1
        for keyword, n in counts.items():
            weight = weights[keyword]
            shown = "" if weight == 1 else f" ({weight:g})"
            reasons.append(f"keyword {keyword}{f' x{n}' if n > 1 else ''}{shown} -> {name}")
        score = sum(weights[kw] * n for kw, n in counts.items())
        if has_amount and name == rules.amount_category and rules.amount_weight:
            score += rules.amount_weight
            reasons.append(f"an amount of money ({rules.amount_weight:g}) -> {name}")
        scores.append((name, score))
    category, best = rules.default_category, 0.0
    for name, score in scores:
        if score > best:  # strictly more: ties stay with the earlier category
            category, best = name, score
    if best == 0:
        reasons.append(f"no category keyword -> {category}, please check")
        return category, False
    runner_up = max((score for name, score in scores if name != category), default=0.0)
    if best - runner_up < rules.min_margin:
        others = [f"{name} {score:g}" for name, score in scores if name != category and score == runner_up]
        reasons.append(f"close call ({category} {best:g} vs {', '.join(others)}) -> {category}, please check")
        return category, False
    return category, True


def _negation(
    doc: Text, hit: Hit, clauses: Sequence[int], cues: Sequence[str], lapses: Sequence[str]
) -> str | None:
    index = bisect.bisect_left(clauses, hit.start)
    start = clauses[index - 1] + 1 if index else 0
    before = doc.lowered[start : hit.start]
    if any(lapse.lower() in before for lapse in lapses):
        return None  # "本来不想去消协的，但是…": what the learner meant not to do, until now
    return next((cue for cue in cues if cue.lower() in before), None)


def _sighting(doc: Text, hit: Hit, clauses: Sequence[int], rules: ClassificationRules) -> str | None:
    """A sighting word in the threat's clause, and no posting word: "小红书上刷到你们的广告"."""
    index = bisect.bisect_left(clauses, hit.start)
    start = clauses[index - 1] + 1 if index else 0
    end = clauses[index] if index < len(clauses) else len(doc.lowered)
    clause = doc.lowered[start:end]
    if any(word.lower() in clause for word in rules.threat_posting):
        return None
    return next((word for word in rules.threat_sightings if word.lower() in clause), None)


def _topic(doc: Text, hit: Hit, safety: Sequence[Hit], topics: Sequence[str]) -> str | None:
    """The subject word right after a safety word (and the safety words joined to it): "fire safety
    module", "消防安全课", "first aid training" name what is taught, not what happened."""
    if not topics:
        return None
    end = hit.end
    starts = {other.start: other for other in safety}
    while True:
        rest = doc.lowered[end : end + 24].lstrip(_QUOTES)
        at = end + (len(doc.lowered[end : end + 24]) - len(rest))
        if at in starts and at != hit.start:
            end = starts.pop(at).end
            continue
        return next((t for t in topics if rest.startswith(t.lower()) and not _letter_after(rest, t)), None)


def _subjects(doc: Text, safety: Sequence[Hit], topics: Sequence[str]) -> dict[int, str]:
    """Safety words that name a subject, by position: those with a subject word after them, and the others
    in their sentence ("消防安全课的课件…讲的灭火器型号": the extinguisher is the lesson's, too)."""
    found = {hit.start: topic for hit in safety if (topic := _topic(doc, hit, safety, topics))}
    if not found:
        return found
    ends = [m.start() for m in _SENTENCE_END.finditer(doc.raw)]
    taught = {bisect.bisect_left(ends, at): topic for at, topic in found.items()}
    for hit in safety:
        topic = taught.get(bisect.bisect_left(ends, hit.start))
        if topic and hit.start not in found:
            found[hit.start] = topic  # the same sentence's subject
    return found


# Between a safety word and its subject: spaces and closing quotes ("'personal safety' workshop").
_QUOTES = " \t\"'”’」』》)）"


def _letter_after(rest: str, word: str) -> bool:
    following = rest[len(word) : len(word) + 1]
    return bool(following) and following.isascii() and following.isalpha()


def _third_party(doc: Text, parties: Sequence[Hit], contacts: Sequence[Hit], own: Sequence[Hit]) -> list[str]:
    """A third party contacting the learner, knowing what only the school knew: "报完名第二天就有贷款公司
    打电话给我", "an insurance agent texted me". Not when the sentence shows the learner's own dealings with
    it ("贷款公司天天打电话催我还款")."""
    if not parties or not contacts:
        return []
    ends = [m.start() for m in _SENTENCE_END.finditer(doc.raw)]

    def sentence(at: int) -> int:
        return bisect.bisect_left(ends, at)

    excluded = {sentence(hit.start) for hit in own}
    for party in parties:
        for contact in contacts:
            if sentence(party.start) == sentence(contact.start) and sentence(party.start) not in excluded:
                return [f"data leak: {party.keyword} + {contact.keyword}"]
    return []


def _without_hotlines(text: str, matcher: _Matcher) -> str:
    """The text with the regulators' numbers ("12315") blanked: a hotline is not a sum of money."""
    return matcher.hotlines.sub(lambda m: " " * len(m.group()), text) if matcher.hotlines else text


def _disclosures(doc: Text, data: Sequence[Hit], acts: Sequence[Hit]) -> list[str]:
    """A personal datum and a disclosure in one sentence: "my phone number was passed to a loan company"."""
    if not data or not acts:
        return []
    ends = [m.start() for m in _SENTENCE_END.finditer(doc.raw)]

    def sentence(at: int) -> int:
        return bisect.bisect_left(ends, at)

    for datum in data:
        for act in acts:
            if sentence(datum.start) == sentence(act.start):
                return [f"data leak: {datum.keyword} + {act.keyword}"]
    return []


# Roles a keyword plays besides naming a category (one keyword may play several).
_THREAT, _GROUP, _SAFETY, _LEAK, _DATUM, _DISCLOSURE = (
    "threat",
    "group",
    "safety",
    "leak",
    "datum",
    "disclosure",
)
_THIRD_PARTY, _CONTACT, _OWN_DEALINGS = "third party", "contact", "own dealings"


@dataclass(frozen=True)
class _Matcher:
    words: KeywordSet  # every keyword of every role: the text is scanned once
    roles: dict[str, tuple[str, ...]]  # keyword -> the categories and roles it plays
    categories: tuple[tuple[str, dict[str, float]], ...]  # category -> keyword -> weight
    groups: GroupPatterns
    hotlines: re.Pattern[str] | None  # the threat keywords that are numbers


def _matcher(rules: ClassificationRules) -> _Matcher:
    # By identity first: hashing the rules' long keyword tuples on every complaint costs more than a
    # cache lookup should. By value second: every load of the same policy (a test's, a reload) shares
    # one matcher, whose hundreds of patterns take a good part of a second to build.
    cached = _by_identity.get(id(rules))
    if cached is None or cached[0] is not rules:
        if len(_by_identity) >= 64:
            _by_identity.clear()
        cached = _by_identity[id(rules)] = (rules, _build_matcher(rules))
    return cached[1]


_by_identity: dict[int, tuple[ClassificationRules, _Matcher]] = {}


@lru_cache(maxsize=8)
def _build_matcher(rules: ClassificationRules) -> _Matcher:
    roles: dict[str, list[str]] = {}
    categories = []
    for rule in rules.category_rules:
        categories.append((rule.name, dict(rule.weighted)))
        for keyword, _ in rule.weighted:
            roles.setdefault(keyword, []).append(rule.name)
    for role, words in (
        (_THREAT, rules.threat_keywords), (_GROUP, rules.group_keywords), (_SAFETY, rules.safety_keywords),
        (_LEAK, rules.data_leak_keywords), (_DATUM, rules.personal_data_words),
        (_DISCLOSURE, rules.disclosure_words), (_THIRD_PARTY, rules.third_party_words),
        (_CONTACT, rules.contact_words), (_OWN_DEALINGS, rules.own_dealings_words),
    ):  # fmt: skip
        for keyword in dict.fromkeys(word.strip() for word in words):
            roles.setdefault(keyword, []).append(role)
    numbers = sorted({kw.strip() for kw in rules.threat_keywords if kw.strip().isdigit()}, key=len)[::-1]
    return _Matcher(
        words=KeywordSet(roles),
        roles={keyword: tuple(found) for keyword, found in roles.items()},
        categories=tuple(categories),
        groups=GroupPatterns.build(rules),
        hotlines=re.compile(rf"(?<![0-9])(?:{'|'.join(numbers)})(?![0-9])") if numbers else None,
    )
