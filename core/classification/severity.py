"""A complaint's severity from the rules (POLICY.md §3): major on an amount of `major_amount_yuan` or more,
a threat of media, regulator or lawsuit, several learners affected (a group word or a count of people),
safety, or a personal-data leak (a leak word, a personal datum and a disclosure in one sentence, or a third
party contacting the learner).

A threat, group or safety word that a negation takes back in its own clause ("不想闹到监管部门") does not
count, unless the learner says that was before ("本来不想…"); nor does a threat that is someone else's, said
in jest or where the school was seen ("抖音上看到你们的广告"), a safety word naming a subject ("fire safety
module"), nor a regulator's number as a sum ("12315").
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from decimal import Decimal

from core.classification.context import jest_sentences
from core.classification.groups import find_group
from core.classification.keywords import Hit, Text
from core.classification.matcher import (
    CONTACT,
    DATUM,
    DISCLOSURE,
    GROUP,
    LEAK,
    OWN_DEALINGS,
    SAFETY,
    THIRD_PARTY,
    THREAT,
    Matcher,
)
from core.classification.rules import ClassificationRules

__all__ = ["GENERAL", "MAJOR", "SEVERITY_REASONS", "rule_severity", "without_hotlines"]

GENERAL = "general"
MAJOR = "major"
# How the reasons that made a complaint major begin (the staff card lists them).
SEVERITY_REASONS = ("amount ", "threat: ", "group: ", "safety: ", "data leak: ", "model: ")

# A clause ends at a comma or stop; a sentence only at a stop.
_CLAUSE_END = re.compile(r"[，,。！？!?;；:：\n]|\.(?:\s|$)|\bbut\b|但是|不过|只是|只希望")
_SENTENCE_END = re.compile(r"[。！？!?;；\n]|\.(?:\s|$)")


def rule_severity(
    doc: Text,
    hits: dict[str, list[Hit]],
    amount: Decimal | None,
    rules: ClassificationRules,
    matcher: Matcher,
    reasons: list[str],
) -> tuple[str, list[str]]:
    """The severity the rules give, and the personal-data leaks found; what decided goes to `reasons`."""
    severity = GENERAL
    if amount is not None and amount >= rules.major_amount_yuan:
        severity = MAJOR
        reasons.append(f"amount {amount} yuan >= {rules.major_amount_yuan}")
    clauses = [m.start() for m in _CLAUSE_END.finditer(doc.lowered)]
    jests = jest_sentences(doc.raw, rules)
    subjects = _subjects(doc, hits.get(SAFETY, []), rules.safety_topic_words)
    for kind in (THREAT, GROUP, SAFETY):
        for hit in hits.get(kind, ()):
            cue = _negation(doc, hit, clauses, rules.negation_cues, rules.negation_lapses)
            unmeant = None  # a threat not meant: someone else's, in jest, where the school was seen
            if kind == THREAT and not cue:
                cue = _negation(doc, hit, clauses, rules.threat_disowners, ()) or _theirs(doc, hit, matcher)
            if kind == THREAT and not cue:
                jest = next((said for start, end, said in jests if start <= hit.start < end), None)
                seen = _sighting(doc, hit, clauses, rules)
                if jest:
                    unmeant = f"said in jest: {jest!r}"
                elif seen:
                    unmeant = f"where the school was seen: {seen!r}"
            topic = f"{subjects[hit.start]!r} after it" if kind == SAFETY and hit.start in subjects else None
            if kind == SAFETY and not topic:
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
        for hit in hits.get(LEAK, ())
        if not _negation(doc, hit, clauses, rules.threat_disowners, ())
    ]
    disowners = rules.threat_disowners
    data = [hit for hit in hits.get(DATUM, ()) if not _negation(doc, hit, clauses, disowners, ())]
    leaks += _disclosures(doc, data, hits.get(DISCLOSURE, []))
    if not leaks:
        parties, contacts = hits.get(THIRD_PARTY, []), hits.get(CONTACT, [])
        leaks += _third_party(doc, parties, contacts, hits.get(OWN_DEALINGS, []))
    return severity, leaks


def _negation(
    doc: Text, hit: Hit, clauses: Sequence[int], cues: Sequence[str], lapses: Sequence[str]
) -> str | None:
    index = bisect.bisect_left(clauses, hit.start)
    start = clauses[index - 1] + 1 if index else 0
    before = doc.lowered[start : hit.start]
    if any(lapse.lower() in before for lapse in lapses):
        return None  # "本来不想去消协的，但是…": what the learner meant not to do, until now
    return next((cue for cue in cues if cue.lower() in before), None)


def _theirs(doc: Text, hit: Hit, matcher: Matcher) -> str | None:
    """Someone else saying it before the threat in its sentence: "我老公说要去找市场监管", "my sister says
    she'll report you to 12315", "我弟弟听了很生气，说要去找媒体曝光" (the policy counts the writer's own
    threats only). Not when the writer speaks to them ("我跟老公说…") or takes it up in a clause of their
    own ("我老公说得对，我明天就去12315")."""
    if matcher.others_said is None:
        return None
    text = doc.lowered
    ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, hit.start)]
    # The person may be named in the clause before the threat's ("我弟弟听了很生气，说要去…"), no further.
    clauses = [m.end() for m in _THEIR_CLAUSE.finditer(text, ends[-1] if ends else 0, hit.start)]
    start = max(ends[-1] if ends else 0, clauses[-2] if len(clauses) > 1 else 0)
    for found in matcher.others_said.finditer(text, start, hit.start):
        spoken_to = _SPOKEN_TO.search(text, max(start, found.start() - 12), found.start())
        if not spoken_to and not _WRITER_AGAIN.search(text, found.end(), hit.start):
            return found.group()
    return None


_THEIR_CLAUSE = re.compile(r"[，,;；:：]")


# Before the person, these make them the one spoken to ("我跟老公说了…", "I told my husband I'd…") or the
# writer ("作为孩子妈妈…", "as a parent I…").
_SPOKEN_TO = re.compile(
    r"(?:跟|和|对|给|告诉|问|作为|我是)我?的?$"
    r"|(?<![a-z])(?:told|tell|asked|ask|to|with|as|i'm|i am)\s+(?:my\s+|our\s+|a\s+|an\s+)?$"
)
# The writer taking it up after what the other said: "…，我明天就去", "…，这口气我咽不下", "my friend said
# this school was good but I'm filing…".
_WRITER_AGAIN = re.compile(r"[我咱]|(?<![a-z])(?:i|we|i'm|i'll|we're|we'll)(?![a-z])")


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


def without_hotlines(text: str, matcher: Matcher) -> str:
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
