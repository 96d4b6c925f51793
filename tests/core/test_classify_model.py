"""The model shipped beside the rules: what staff see when it weighs in, and the policy switches for it."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.classification.classify import ClassificationRules, classify, rules_from_policy, why
from core.classification.model import MODEL_FILE, Model, load_model, normalise

POLICY_FILE = Path(__file__).resolve().parents[2] / "core" / "policy_default.toml"


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    return tomllib.loads(POLICY_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rules(policy: dict[str, Any]) -> ClassificationRules:
    return rules_from_policy(policy)


def test_the_package_ships_a_model_and_the_default_policy_uses_it(rules: ClassificationRules) -> None:
    model = load_model()
    assert model is not None and MODEL_FILE.is_file()
    assert set(model.categories) == {name for name, _ in rules.categories}
    assert rules.model and 0 < rules.model_major < 1


@pytest.mark.parametrize(
    "text",
    [
        # Safety, in none of the rules' safety words: a hot-water urn sparking, a stairwell unlit.
        "开水房那个烧水器的插头一插上就噼里啪啦冒火花，好几次了，早晚要出事",
        "The boiler room door is propped open and kids keep wandering near the exposed wiring",
        # Personal data passed on, in none of the rules' leak words.
        "报名才三天就有陌生人加我微信推销贷款，还叫得出我名字",
    ],
)
def test_a_paraphrased_major_complaint_is_major_and_the_card_says_why(
    rules: ClassificationRules, text: str
) -> None:
    result = classify(text, rules)
    assert result.severity == "major"
    line = why(result)
    assert "; major: " in line
    # Whatever made it major, the card names it: a rule's word or the model's strongest features.
    assert any(reason in line for reason in result.reasons if reason.startswith(("safety: ", "model: ")))


def test_without_the_model_the_rules_decide_alone(rules: ClassificationRules) -> None:
    text = "开水房那个烧水器的插头一插上就噼里啪啦冒火花，好几次了，早晚要出事"
    alone = classify(text, replace(rules, model=False))
    assert not any(reason.startswith("model") for reason in alone.reasons)


def test_the_model_never_takes_major_away_from_the_rules(rules: ClassificationRules) -> None:
    # A model that finds every complaint general and teaching, with certainty.
    doubter = Model(("teaching", "service", "fees", "other"), (9.0, 0.0, 0.0, 0.0, -9.0), {}, "a test")
    text = "退费一直拖着，我交的8000元到现在还没退回来"
    result = classify(text, rules, doubter)
    assert result.severity == "major"
    assert "amount 8000 yuan >= 1000" in result.reasons
    # The rules were sure of the category: the model overrides it at model_override, never above 1.
    assert result.category == "teaching" and any("the rules' overridden" in r for r in result.reasons)
    assert classify(text, replace(rules, model_override=1.01), doubter).category == "fees"


def test_where_the_rules_guess_the_model_decides_and_says_why(rules: ClassificationRules) -> None:
    # A model that is sure of "service" whenever it sees "嗯哼", a word no rule knows.
    weights = {"嗯哼": (0.0, 6.0, 0.0, 0.0, 0.0)}
    model = Model(("teaching", "service", "fees", "other"), (0.0, 0.0, 0.0, 0.0, -5.0), weights, "a test")
    text = "你好，在吗？嗯哼"
    guess = classify(text, replace(rules, model=False))
    assert not guess.confident
    result = classify(text, rules, model)
    assert result.category == "service" and result.confident
    line = why(result)
    assert line.startswith("service: model ") and "嗯哼" in line and "(a guess)" not in line


def test_an_unsure_model_leaves_the_guess_for_staff_to_check(rules: ClassificationRules) -> None:
    undecided = Model(("teaching", "service", "fees", "other"), (0.0, 0.0, 0.0, 0.0, -5.0), {}, "a test")
    result = classify("你好，在吗？有件事情想说一下", rules, undecided)
    assert not result.confident and "(a guess)" in why(result)


def test_the_model_reads_any_amount_of_the_same_shape_alike() -> None:
    # Full-width digits, spacing and case fold away; the amount parser reads the sum, the model its shape.
    assert normalise("Paid  ６,５00") == normalise("paid 3,200") == "paid 0,000"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("model", "yes"),
        ("model_major", "high"),
        ("model_category_sure", -0.5),
    ],
)
def test_the_policy_rejects_wrong_model_settings(policy: dict[str, Any], key: str, value: object) -> None:
    changed = json.loads(json.dumps(policy))
    changed["classification"][key] = value
    with pytest.raises((TypeError, ValueError)):
        rules_from_policy(changed)


def test_the_trainer_writes_a_model_the_classifier_reads(tmp_path: Path, rules: ClassificationRules) -> None:
    from benchmarks.train_classifier import Sample, fit, write

    texts = [
        ("老师讲得太快了", 0, 0.0), ("老师讲课听不懂", 0, 0.0), ("班主任不回消息", 1, 0.0),
        ("客服态度差", 1, 0.0), ("退费拖了两个月", 2, 1.0), ("多收了钱", 2, 0.0), ("平台老是卡", 3, 0.0),
        ("教室太吵", 3, 0.0),
    ]  # fmt: skip
    model = fit([Sample(normalise(t), c, m) for t, c, m in texts], min_count=1, l2=0.001, steps=200)
    path = tmp_path / "model.json"
    write(model, path, "8 examples")
    loaded = load_model(path)
    assert loaded is not None and loaded.trained_on == "8 examples"
    assert loaded.opinion(normalise("退费拖了好久")).category == "fees"
    assert classify("这个平台老是卡", rules, loaded).category == "other"
