"""`complaintbot staff add|list|remove` as an operator uses it."""

from __future__ import annotations

import json
from pathlib import Path

from core.storage.privacy import generate_key
from tests.bot.cli_helpers import complaintbot, one_error_line


def test_staff_directory_from_the_command_line(tmp_path: Path) -> None:
    env = {"COMPLAINTBOT_PRIVACY__KEY": generate_key()}
    assert complaintbot(tmp_path, "db", "upgrade", env=env).returncode == 0
    added = complaintbot(
        tmp_path,
        "staff",
        "add",
        "--name",
        "王老师",
        "--department",
        "teaching",
        "--role",
        "staff",
        "--telegram-id",
        "5550001",
        env=env,
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added #1 王老师 (teaching/staff)"
    complaintbot(
        tmp_path, "staff", "add", "--name", "陈主任", "--department", "service", "--role", "manager", env=env
    )

    listed = json.loads(complaintbot(tmp_path, "staff", "list", "--json", env=env).stdout)
    assert [(s["name"], s["department"], s["role"], s["telegram_id"]) for s in listed] == [
        ("陈主任", "service", "manager", None),
        ("王老师", "teaching", "staff", "5550001"),
    ]
    duplicate = complaintbot(
        tmp_path,
        "staff",
        "add",
        "--name",
        "冒充者",
        "--department",
        "finance",
        "--role",
        "head",
        "--telegram-id",
        "5550001",
        env=env,
    )
    assert one_error_line(duplicate) == "error: Telegram id 5550001 already belongs to #1 王老师"
    bad_role = complaintbot(
        tmp_path, "staff", "add", "--name", "x", "--department", "teaching", "--role", "boss", env=env
    )
    assert "unknown role 'boss'" in one_error_line(bad_role)

    removed = complaintbot(tmp_path, "staff", "remove", "1", env=env)
    assert removed.returncode == 0 and removed.stdout.strip() == "removed #1 王老师"
    after = json.loads(complaintbot(tmp_path, "staff", "list", "--json", env=env).stdout)
    assert [s["name"] for s in after] == ["陈主任"]
    again = complaintbot(tmp_path, "staff", "remove", "1", env=env)
    assert one_error_line(again) == "error: no active staff member #1"

    restored = complaintbot(
        tmp_path,
        "staff",
        "add",
        "--name",
        "王老师",
        "--department",
        "teaching",
        "--role",
        "head",
        "--telegram-id",
        "5550001",
        env=env,
    )
    assert restored.stdout.strip() == "restored (with their history) #1 王老师 (teaching/head)", (
        restored.stderr
    )
    bad_mail = complaintbot(
        tmp_path, "staff", "add", "--name", "x", "--department", "teaching", "--role", "staff",
        "--email", "x@", env=env,
    )  # fmt: skip
    assert one_error_line(bad_mail) == "error: not an e-mail address: 'x@' (e.g. wang@school.example.cn)"
