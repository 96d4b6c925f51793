"""The rules and the model together: the rules decide where they are sure and say which words decided;
the model decides where they are unsure or silent, and may add "major" that the rules missed.

A missed major complaint loses the managers' alert, a false one only hurries a general complaint, so the
model makes a complaint major at a modest probability (`model_major`) and takes "major" away from the rules
only when it is nearly sure it is not (`model_not_major`), and only a major that rests on a threat word
alone: that is where a new wording fools a keyword (someone else's threat, a what-if, a joke the jest list
does not know: "同学说要去投诉，我没这个打算"). An amount at stake, several learners, a hazard and a data
leak stand, and so does a threat the learner says they mean ("I'm not joking").
"""

from __future__ import annotations

from core.classification.model import Opinion
from core.classification.rules import ClassificationRules
from core.classification.severity import GENERAL, MAJOR

__all__ = ["MODEL_REASON", "firm", "with_model"]

# A rules' major resting on one of these stands whatever the model says (core.classification.severity).
_FIRM = ("amount ", "group: ", "safety: ", "data leak: ")

# How the reason begins when the model chose the category (the staff card shows the rest).
MODEL_REASON = "model category: "


def with_model(
    category: str,
    confident: bool,
    severity: str,
    opinion: Opinion,
    rules: ClassificationRules,
    reasons: list[str],
    firm: bool = False,
) -> tuple[str, bool, str]:
    """Category, confidence and severity once the model's opinion is weighed; the model's part in them
    goes to `reasons`. `firm`: the rules' "major" stands whatever the model says (see `firm`)."""
    sure = opinion.probability >= rules.model_category_sure
    if opinion.category != category and (
        (not confident and sure) or opinion.probability >= rules.model_override
    ):
        shown = _shown(opinion)
        why = "the rules' was a guess" if not confident else "the rules' overridden"
        reasons.append(f"{MODEL_REASON}{shown} -> {opinion.category}, {why}")
        category, confident = opinion.category, sure
    elif opinion.category == category and not confident and sure:
        reasons.append(f"{MODEL_REASON}{_shown(opinion)} -> {opinion.category}, agrees with the rules' guess")
        confident = True
    if severity != MAJOR and opinion.major >= rules.model_major:
        severity = MAJOR
        reasons.append(f"model: major {opinion.major:.0%} ({', '.join(opinion.major_words())})")
    elif severity == MAJOR and not firm and opinion.major < rules.model_not_major:
        severity = GENERAL
        reasons.append(f"model: not major, {opinion.major:.0%} (the rules' words above taken back)")
    return category, confident, severity


def firm(reasons: list[str] | tuple[str, ...], lowered: str, rules: ClassificationRules) -> bool:
    """Whether the rules' "major" (their `reasons`) stands whatever the model says: it rests on more than a
    threat word, or the learner says they mean it (an earnest cue in the lower-cased text)."""
    return any(reason.startswith(_FIRM) for reason in reasons) or any(
        cue.lower() in lowered for cue in rules.earnest_cues
    )


def _shown(opinion: Opinion) -> str:
    return f"model {opinion.probability:.0%} ({', '.join(opinion.category_words()) or 'no strong word'})"
