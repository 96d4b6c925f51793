"""Fixtures shared by the classification tests."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from core.classification.classify import ClassificationRules, rules_from_policy

POLICY_FILE = Path(__file__).resolve().parents[2] / "core" / "policy_default.toml"


@pytest.fixture(scope="session")
def rules_alone() -> ClassificationRules:
    """The shipped policy's rules without the model: what the rules read in a text must not change when the
    model is retrained (the model is tested through made-up models)."""
    with POLICY_FILE.open("rb") as f:
        return replace(rules_from_policy(tomllib.load(f)), model=False)
