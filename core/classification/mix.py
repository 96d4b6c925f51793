"""The rules and the model together: the rules decide where they are sure and say which words decided;
the model decides where they are unsure or silent, and may add "major" that the rules missed.

A missed major complaint loses the managers' alert, a false one only hurries a general complaint, so the
model can make a complaint major but never takes "major" away from the rules.
"""

from __future__ import annotations

from core.classification.model import Opinion
from core.classification.rules import ClassificationRules
from core.classification.severity import MAJOR

__all__ = ["MODEL_REASON", "with_model"]

# How the reason begins when the model chose the category (the staff card shows the rest).
MODEL_REASON = "model category: "


def with_model(
    category: str,
    confident: bool,
    severity: str,
    opinion: Opinion,
    rules: ClassificationRules,
    reasons: list[str],
) -> tuple[str, bool, str]:
    """Category, confidence and severity once the model's opinion is weighed; the model's part in them
    goes to `reasons`."""
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
    return category, confident, severity


def _shown(opinion: Opinion) -> str:
    return f"model {opinion.probability:.0%} ({', '.join(opinion.category_words()) or 'no strong word'})"
