"""`complaintbot init`, `db upgrade` and `tickets`, run as the installed script, each in its own directory."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet

import core.storage.db
from bot.app import build
from bot.config import Settings, load_settings
from core.messages import InboundMessage
from core.rules.policy import DEFAULT_POLICY_TEXT
from core.storage.privacy import generate_key
from core.tickets.moves import apply_move
from core.tickets.queries import get_ticket
from core.tickets.search import SCAN
from core.tickets.workflow import Actor
from tests.bot.cli_helpers import Call, Result, complaintbot, complaintbot_many, migrated, one_error_line
from tests.core.test_search import add_tickets

SHANGHAI = ZoneInfo("Asia/Shanghai")
REFUND = "我要退费！交了3000元，机构一直拖着不退。请回电 13812348000"
TEACHING = "The teacher keeps skipping chapters and the materials are outdated."
# A learner's words that Rich would read as markup: `[/]` closes nothing (a MarkupError), `[bold]` would
# vanish into a style, `:thumbs_up:` would become an emoji, and an escaped trailing backslash would show
# doubled. The table must show them as written.
MARKUP = "[/] [bold]tutor[/bold] :thumbs_up: \\"
MARKUP_COURSE = "[/]HSK 5 [red]evening[/red] :fire:"
ROW_KEYS = {
    "number",
    "status",
    "category",
    "severity",
    "department",
    "channel",
    "created_at",
    "owner",
    "due_at",
    "overdue",
    "summary",
}


@dataclass(frozen=True)
class InitRuns:
    directory: Path
    first: Result
    first_config: str
    first_mode: int
    again: Result
    after_again: str
    forced: Result


@pytest.fixture(scope="module")
def init_runs(tmp_path_factory: pytest.TempPathFactory) -> InitRuns:
    """One directory, three `init`s: the first writes, the second refuses, `--force` overwrites."""
    directory = tmp_path_factory.mktemp("site")
    first = complaintbot(directory, "init")
    config = directory / "complaintbot.toml"
    first_config, first_mode = config.read_text(encoding="utf-8"), stat.S_IMODE(config.stat().st_mode)
    again = complaintbot(directory, "init")
    after_again = config.read_text(encoding="utf-8")
    forced = complaintbot(directory, "init", "--force")
    return InitRuns(directory, first, first_config, first_mode, again, after_again, forced)


def privacy_key(config_text: str) -> str:
    key = tomllib.loads(config_text)["privacy"]["key"]
    assert isinstance(key, str)
    Fernet(key)  # raises if it is not a usable Fernet key
    return key


def test_init_writes_config_policy_and_database(init_runs: InitRuns) -> None:
    assert init_runs.first.returncode == 0, init_runs.first.stderr
    assert len(init_runs.first.stdout.strip().splitlines()) == 1, init_runs.first.stdout
    assert "complaintbot.toml" in init_runs.first.stdout
    assert init_runs.first_mode == 0o600  # it holds the privacy key
    privacy_key(init_runs.first_config)
    assert "@PRIVACY_KEY@" not in init_runs.first_config
    assert (init_runs.directory / "policy.toml").read_text(encoding="utf-8") == DEFAULT_POLICY_TEXT
    assert migrated(init_runs.directory / "var" / "complaintbot.db")


def test_second_init_refuses_and_keeps_the_key(init_runs: InitRuns) -> None:
    line = one_error_line(init_runs.again)
    assert "--force" in line
    assert init_runs.after_again == init_runs.first_config  # the key that encrypts the data is not lost


def test_init_force_rewrites_the_files_but_never_the_key_the_data_was_written_with(
    init_runs: InitRuns,
) -> None:
    assert init_runs.forced.returncode == 0, init_runs.forced.stderr
    config = init_runs.directory / "complaintbot.toml"
    text = config.read_text(encoding="utf-8")
    assert privacy_key(text) == privacy_key(init_runs.first_config)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_a_command_with_another_key_refuses_in_one_line(init_runs: InitRuns) -> None:
    # A lost key file regenerated, or a second instance configured apart: it must not write data the
    # others cannot read (nor miss every learner by their blind index).
    other = {"COMPLAINTBOT_PRIVACY__KEY": generate_key()}
    calls = {
        name: Call(init_runs.directory, args, other)
        for name, args in (("list", ("tickets", "list")), ("upgrade", ("db", "upgrade")))
    }
    for result in complaintbot_many(calls).values():
        line = one_error_line(result)
        assert "[privacy] key cannot read this database" in line, line
    assert complaintbot(init_runs.directory, "tickets", "list").returncode == 0  # the right key still works


@dataclass(frozen=True)
class Seeded:
    directory: Path
    overdue: str  # a refund complaint from January, its claim clock long past due
    fresh: str  # an English complaint received now
    markup: str  # a complaint whose text and course look like Rich markup


def site_settings(directory: Path) -> Settings:
    """The settings `complaintbot init` wrote in `directory`, as the commands run there read them."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.upper().startswith("COMPLAINTBOT_")]:
            mp.delenv(name)
        settings = load_settings(directory / "complaintbot.toml")
    # Relative paths in the config are relative to where the service runs: the site directory.
    settings.service.var_dir = directory / settings.service.var_dir
    assert settings.policy.file is not None
    settings.policy.file = directory / settings.policy.file
    return settings


@pytest.fixture(scope="module")
def seeded(init_runs: InitRuns) -> Seeded:
    """Complaints written through the core API into the database `init` made, with its config."""
    directory = init_runs.directory
    settings = site_settings(directory)

    async def seed() -> tuple[str, str, str]:
        app = build(settings)
        try:
            await core.storage.db.upgrade(app.engine)
            january = datetime(2026, 1, 5, 10, 0, tzinfo=SHANGHAI)
            refund = InboundMessage(
                channel="wechat",
                external_id="wx-1",
                sender_id="oLearnerOpenId1",
                text=REFUND,
                received_at=january,
                sender_name="李明",
            )
            now = datetime.now(UTC)
            teaching = InboundMessage(
                channel="email",
                external_id="<m1@example.com>",
                sender_id="ann@example.com",
                text=TEACHING,
                received_at=now,
                subject="Skipped chapters",
            )
            markup = InboundMessage(
                channel="wechat",
                external_id="wx-2",
                sender_id="oLearnerOpenId2",
                text=MARKUP,
                received_at=now,
            )
            first = await app.intake.receive(refund, january)
            second = await app.intake.receive(teaching, now)
            third = await app.intake.receive(markup, now)
            async with app.core.sessions() as session:  # the course is a learner's answer too
                ticket = await get_ticket(session, third.ticket_number, app.core.prefix)
                ticket.course = MARKUP_COURSE
                await session.commit()
            async with app.core.sessions() as session, session.begin():  # a staff correction to export
                ticket = await get_ticket(session, second.ticket_number, app.core.prefix)
                manager = Actor(kind="staff", name="Chen", role="manager", department="service", staff_id=1)
                await apply_move(app.core, session, ticket, "severity", manager, now, severity="major")
            return first.ticket_number, second.ticket_number, third.ticket_number
        finally:
            await app.close()

    overdue, fresh, markup = asyncio.run(seed())
    return Seeded(directory, overdue, fresh, markup)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Working directories other than the shared site, each set up for one command."""
    names = ("fresh", "override", "unmigrated", "typo", "broken", "policy", "env", "report")
    dirs = {name: tmp_path_factory.mktemp(name) for name in names}
    (dirs["override"] / "complaintbot.toml").write_text(
        f'[database]\nurl = "sqlite:///{dirs["override"]}/file.db"\n', encoding="utf-8"
    )
    (dirs["typo"] / "complaintbot.toml").write_text('[databse]\nurl = "sqlite:///x.db"\n', encoding="utf-8")
    (dirs["broken"] / "complaintbot.toml").write_text("[web\nport = 8080\n", encoding="utf-8")
    (dirs["policy"] / "complaintbot.toml").write_text(
        f'[policy]\nfile = "policy.toml"\n[privacy]\nkey = "{generate_key()}"\n', encoding="utf-8"
    )
    (dirs["policy"] / "policy.toml").write_text('[stages.claim]\nhours = "soon"\n', encoding="utf-8")
    return dirs


@pytest.fixture(scope="module")
def runs(seeded: Seeded, dirs: dict[str, Path]) -> dict[str, Result]:
    """Every other command of this module, started side by side (they share nothing they write)."""
    site, override = seeded.directory, dirs["override"]
    calls = {
        "list": Call(site, ("tickets", "list", "--json")),
        "list_closed": Call(site, ("tickets", "list", "--status", "closed", "--json")),
        "list_overdue": Call(site, ("tickets", "list", "--status", "overdue", "--json")),
        "list_human": Call(site, ("tickets", "list")),  # piped: rich's default 80 columns
        "search_words": Call(site, ("tickets", "list", "--search", "teacher CHAPTERS", "--json")),
        "search_phone": Call(site, ("tickets", "list", "--search", "138****8000", "--json")),
        "search_empty": Call(site, ("tickets", "list", "--search", " ")),
        "list_human_wide": Call(site, ("tickets", "list"), {"COLUMNS": "200"}),
        "list_page": Call(site, ("tickets", "list", "--limit", "2")),
        "list_page_json": Call(site, ("tickets", "list", "--json", "--limit", "2", "--offset", "2")),
        "version": Call(site, ("--version",)),
        "help": Call(site, ("--help",), {"COLUMNS": "200"}),
        "help_list": Call(site, ("tickets", "list", "--help"), {"COLUMNS": "200"}),
        "unknown_option": Call(site, ("tickets", "list", "--bogus")),
        "missing_argument": Call(site, ("tickets", "show")),
        "limit_zero": Call(site, ("tickets", "list", "--limit", "0")),
        "bad_log_level": Call(site, ("--log-level", "loud", "tickets", "list")),
        "show_markup": Call(site, ("tickets", "show", seeded.markup)),
        "show_json": Call(site, ("tickets", "show", seeded.overdue, "--json")),
        "show_human": Call(site, ("tickets", "show", seeded.overdue)),
        "db_upgrade_fresh": Call(dirs["fresh"], ("db", "upgrade")),
        "db_upgrade_env": Call(
            override, ("db", "upgrade"), {"COMPLAINTBOT_DATABASE__URL": f"sqlite:///{override}/other.db"}
        ),
        "classify_export": Call(site, ("classify", "export")),
        "classify_export_file": Call(site, ("classify", "export", "--out", str(site / "corrections.jsonl"))),
        "classify_export_nowhere": Call(
            site, ("classify", "export", "--out", str(site / "no" / "such.jsonl"))
        ),
        "report_json": Call(site, ("report", "--month", "2026-01", "--json")),
        "report_finance": Call(site, ("report", "--month", "2026-01", "--department", "teaching", "--json")),
        "report_out": Call(site, ("report", "--month", "2026-01", "--out", str(dirs["report"]))),
        "report_bad_month": Call(site, ("report", "--month", "2026-13")),
        "credit_json": Call(site, ("credit", "--quarter", "2026Q1", "--json")),
        "credit_bad_quarter": Call(site, ("credit", "--quarter", "2026Q5")),
        "report_bad_department": Call(site, ("report", "--month", "2026-01", "--department", "canteen")),
        "bad_check_digit": Call(site, ("tickets", "show", "TS-261122-00072")),
        "no_such_ticket": Call(site, ("tickets", "show", "TS-261122-00071")),
        "bad_status": Call(site, ("tickets", "list", "--status", "bogus")),
        "missing_config": Call(site, ("--config", "missing.toml", "tickets", "list")),
        "unknown_key": Call(dirs["typo"], ("tickets", "list")),
        "invalid_toml": Call(dirs["broken"], ("tickets", "list")),
        "bad_policy": Call(dirs["policy"], ("tickets", "list")),
        "bad_env_port": Call(dirs["env"], ("tickets", "list"), {"COMPLAINTBOT_WEB__PORT": "notaport"}),
        "never_migrated": Call(
            dirs["unmigrated"], ("tickets", "list"), {"COMPLAINTBOT_PRIVACY__KEY": generate_key()}
        ),
    }
    return complaintbot_many(calls)


def json_out(result: Result) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def has_offset(text: str) -> bool:
    return datetime.fromisoformat(text).utcoffset() is not None


def test_db_upgrade_without_any_config_creates_the_default_database(
    runs: dict[str, Result], dirs: dict[str, Path]
) -> None:
    result = runs["db_upgrade_fresh"]
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == ["database is up to date"]
    fresh = dirs["fresh"]
    assert migrated(fresh / "var" / "complaintbot.db")
    # It needed a privacy key and made one: the operator is told where, since losing it loses the data.
    assert (fresh / "var" / "privacy.key").is_file()
    assert "privacy.key" in result.stderr


def test_environment_overrides_the_config_file(runs: dict[str, Result], dirs: dict[str, Path]) -> None:
    result = runs["db_upgrade_env"]
    assert result.returncode == 0, result.stderr
    override = dirs["override"]
    assert migrated(override / "other.db")
    assert not (override / "file.db").exists()
    assert not (override / "var" / "complaintbot.db").exists()


def test_tickets_list_json_lists_the_open_tickets(runs: dict[str, Result], seeded: Seeded) -> None:
    listed = json_out(runs["list"])
    rows = listed["tickets"]
    assert (listed["total"], listed["offset"]) == (len(rows), 0)
    by_number = {row["number"]: row for row in rows}
    assert set(by_number) == {seeded.overdue, seeded.fresh, seeded.markup}
    for row in rows:
        assert set(row) >= ROW_KEYS, set(row)
        assert row["category"] in ("teaching", "service", "fees", "other")
        assert row["severity"] in ("general", "major")
        assert has_offset(row["created_at"]) and has_offset(row["due_at"])
    refund = by_number[seeded.overdue]
    assert (refund["category"], refund["department"], refund["channel"]) == ("fees", "finance", "wechat")
    assert refund["created_at"] == "2026-01-05T10:00:00+08:00"
    assert refund["overdue"] is True
    assert by_number[seeded.fresh]["channel"] == "email" and by_number[seeded.fresh]["overdue"] is False


def test_classify_export_writes_corrections_as_labelled_examples(
    runs: dict[str, Result], seeded: Seeded
) -> None:
    result = runs["classify_export"]
    assert result.returncode == 0, result.stderr
    [example] = [json.loads(line) for line in result.stdout.splitlines()]
    assert (example["ticket"], example["field"]) == (seeded.fresh, "severity")
    assert (example["classified"], example["corrected"]) == ("general", "major")
    assert example["text"] == TEACHING and example["actor"] == "Chen (service/manager)"
    assert example["features"]["language"] == "en" and example["features"]["reasons"]
    written = runs["classify_export_file"]
    assert written.returncode == 0 and "1 correction(s) written" in written.stderr, written.stderr
    assert (seeded.directory / "corrections.jsonl").read_text(encoding="utf-8") == result.stdout
    assert one_error_line(runs["classify_export_nowhere"]).startswith("error: cannot write ")


def test_tickets_list_pages_and_says_how_many_more(runs: dict[str, Result], seeded: Seeded) -> None:
    page = runs["list_page"]
    assert page.returncode == 0, page.stderr
    assert "… and 1 more of 3: --offset 2 for the next page" in page.stdout
    last = json_out(runs["list_page_json"])
    assert (last["total"], last["offset"], last["limit"], len(last["tickets"])) == (3, 2, 2, 1)


def test_version_and_help_read_as_an_operator_meets_the_commands(runs: dict[str, Result]) -> None:
    assert runs["version"].stdout.strip().startswith("complaintbot ")
    section = runs["help"].stdout.split("Commands:")[1].splitlines()
    commands = [line.split()[0] for line in section if line.startswith("  ") and not line.startswith("   ")]
    assert commands[:6] == ["init", "run", "demo", "tickets", "staff", "sweep"] and commands[-1] == "db"
    for name in ("help", "help_list"):
        assert "<bool>" not in runs[name].stdout and "--version" in runs["help"].stdout
    assert "--at TIME" in runs["help_list"].stdout and "--limit LIMIT" in runs["help_list"].stdout


def test_tickets_list_by_status(runs: dict[str, Result], seeded: Seeded) -> None:
    assert json_out(runs["list_closed"])["tickets"] == []
    assert [row["number"] for row in json_out(runs["list_overdue"])["tickets"]] == [seeded.overdue]


def test_tickets_list_human_shows_whole_numbers(runs: dict[str, Result], seeded: Seeded) -> None:
    result = runs["list_human"]
    assert result.returncode == 0, result.stderr
    # Staff copy the number into the next command: even 80 columns must not cut it short.
    assert seeded.overdue in result.stdout and seeded.fresh in result.stdout, result.stdout


def test_tickets_list_human_prints_learner_markup_as_written(runs: dict[str, Result], seeded: Seeded) -> None:
    for name in ("list_human", "list_human_wide"):
        result = runs[name]
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    wide = runs["list_human_wide"].stdout
    assert seeded.markup in wide
    # On one line at 200 columns: brackets, colons and the last backslash as the learner typed them.
    assert f" {MARKUP} " in wide, wide


def test_tickets_show_human_prints_learner_markup_as_written(runs: dict[str, Result]) -> None:
    result = runs["show_markup"]
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert f"course: {MARKUP_COURSE} " in result.stdout, result.stdout
    assert f"wechat: {MARKUP}\n" in result.stdout, result.stdout


def test_personal_data_in_messages_is_masked_unless_full_which_is_audited(
    runs: dict[str, Result], seeded: Seeded
) -> None:
    masked = json.dumps(json_out(runs["show_json"])["messages"], ensure_ascii=False)
    assert "138****8000" in masked and "13812348000" not in masked
    full = complaintbot(seeded.directory, "tickets", "show", seeded.overdue, "--json", "--full")
    assert full.returncode == 0, full.stderr
    view = json_out(full)
    assert "13812348000" in json.dumps(view["messages"], ensure_ascii=False)
    disclosed = [e for e in view["events"] if e["action"] == "disclosed"]
    assert len(disclosed) == 1 and disclosed[0]["actor"].startswith("operator:")


def test_tickets_show_json_carries_what_interfaces_promise(runs: dict[str, Result], seeded: Seeded) -> None:
    view = json_out(runs["show_json"])
    for key in (
        "number",
        "status",
        "category",
        "severity",
        "department",
        "channel",
        "created_at",
        "first_contact",
        "owner",
        "clocks",
        "messages",
        "events",
    ):
        assert key in view, key
    assert view["number"] == seeded.overdue
    assert (view["category"], view["severity"], view["department"]) == ("fees", "major", "finance")
    assert view["channel"] == "wechat" and view["owner"] is None
    assert view["first_contact"] == "service"
    assert datetime.fromisoformat(view["created_at"]).utcoffset() == timedelta(hours=8)

    assert view["clocks"], "a new ticket runs clocks"
    for clock in view["clocks"]:
        assert {"stage", "due_at", "met_at", "escalation_level"} <= set(clock)
        assert has_offset(clock["due_at"])
        assert clock["met_at"] is None or has_offset(clock["met_at"])
    claim = {c["stage"]: c for c in view["clocks"]}["claim"]
    assert claim["met_at"] is None and datetime.fromisoformat(claim["due_at"]) < datetime.now(UTC)

    # The learner's words come back decrypted with the configured key.
    inbound = view["messages"][0]
    assert (inbound["direction"], inbound["channel"], inbound["text"]) == (
        "in",
        "wechat",
        REFUND.replace("13812348000", "138****8000"),
    )
    assert has_offset(inbound["at"])
    assert view["events"], "intake leaves an audit trail"
    for event in view["events"]:
        assert {"at", "actor", "action"} <= set(event) and has_offset(event["at"])
    assert view["events"][0]["action"] == "received"


def test_tickets_show_human_prints_the_number_and_clocks(runs: dict[str, Result], seeded: Seeded) -> None:
    result = runs["show_human"]
    assert result.returncode == 0, result.stderr
    assert seeded.overdue in result.stdout
    assert "clocks" in result.stdout and "claim" in result.stdout
    # The terminal may wrap the line; the learner's words are there, the phone number masked.
    assert "我要退费" in result.stdout and "138****8000" in result.stdout
    assert "13812348000" not in result.stdout


@pytest.mark.parametrize(
    ("case", "mentions"),
    [
        ("bad_check_digit", "TS-261122-00072"),
        ("no_such_ticket", "TS-261122-00071"),
        ("bad_status", "bogus"),
        ("missing_config", "missing.toml"),
        ("unknown_key", "databse"),
        ("invalid_toml", "TOML"),
        ("bad_policy", "stages.claim.hours"),
        ("bad_env_port", "COMPLAINTBOT_WEB__PORT"),
        ("report_bad_month", "YYYY-MM"),
        ("credit_bad_quarter", "YYYYQn"),
        ("report_bad_department", "canteen"),
        ("unknown_option", "--bogus (see `complaintbot tickets list --help`)"),
        ("missing_argument", "(see `complaintbot tickets show --help`)"),
        ("limit_zero", "'--limit'"),
        ("bad_log_level", "'loud': use debug, info, warning, error"),
    ],
)
def test_bad_input_is_one_line_on_stderr(runs: dict[str, Result], case: str, mentions: str) -> None:
    line = one_error_line(runs[case])
    assert mentions in line, line


def test_tickets_on_a_database_never_migrated_says_what_to_do(runs: dict[str, Result]) -> None:
    assert "db upgrade" in one_error_line(runs["never_migrated"])


def test_privacy_rotate_retires_the_old_key(tmp_path: Path) -> None:
    assert complaintbot(tmp_path, "init").returncode == 0
    old = privacy_key((tmp_path / "complaintbot.toml").read_text(encoding="utf-8"))
    alone = one_error_line(complaintbot(tmp_path, "privacy", "rotate", "--yes"))
    assert "put a new one in front" in alone and "privacy new-key" in alone
    new = complaintbot(tmp_path, "privacy", "new-key").stdout.strip()
    Fernet(new)
    rotated = complaintbot(
        tmp_path, "privacy", "rotate", "--yes", env={"COMPLAINTBOT_PRIVACY__KEY": f"{new},{old}"}
    )
    assert rotated.returncode == 0, rotated.stderr
    assert "remove every key but the first" in rotated.stdout
    stale = one_error_line(complaintbot(tmp_path, "tickets", "list", env={"COMPLAINTBOT_PRIVACY__KEY": old}))
    assert "cannot read this database" in stale
    fresh = complaintbot(tmp_path, "tickets", "list", env={"COMPLAINTBOT_PRIVACY__KEY": new})
    assert fresh.returncode == 0, fresh.stderr


def test_report_json_counts_the_month(runs: dict[str, Result], seeded: Seeded) -> None:
    figures = json.loads(runs["report_json"].stdout)
    assert figures["schema_version"] == 1 and figures["month"] == "2026-01"
    assert figures["period"]["start"] == "2026-01-01T00:00:00+08:00"
    assert figures["totals"]["received"] == 1  # the January refund; the others came in this month
    assert [w["by_channel"] for w in figures["weekly_by_channel"] if w["total"]] == [{"wechat": 1}]
    assert figures["by_category_department"] == [{"category": "fees", "department": "finance", "count": 1}]
    claim = next(s for s in figures["stages"] if s["stage"] == "claim")
    assert claim == {"stage": "claim", "met": 0, "breached": 1, "pending": 0}  # never claimed, long overdue
    other = json.loads(runs["report_finance"].stdout)
    assert other["department"] == "teaching" and other["totals"]["received"] == 0


def test_report_out_writes_the_pdf_and_the_charts(runs: dict[str, Result], dirs: dict[str, Path]) -> None:
    assert runs["report_out"].returncode == 0, runs["report_out"].stderr
    written = sorted(p.name for p in dirs["report"].iterdir())
    assert "report-2026-01.pdf" in written and len(written) == 10
    assert (dirs["report"] / "report-2026-01.pdf").read_bytes().startswith(b"%PDF")
    assert "report-2026-01.pdf" in runs["report_out"].stdout


def test_credit_json_keeps_a_finished_quarters_grades_with_their_inputs(runs: dict[str, Result]) -> None:
    assert runs["credit_json"].returncode == 0, runs["credit_json"].stderr
    credit = json.loads(runs["credit_json"].stdout)
    assert credit["schema_version"] == 1 and credit["quarter"] == "2026Q1" and credit["final"] is True
    [finance] = [g for g in credit["grades"] if g["kind"] == "department"]
    assert finance["key"] == "finance" and finance["grade"] == "not_graded"  # one complaint, none closed
    assert finance["inputs"]["received"] == 1 and finance["inputs"]["closed"] == 0
    assert finance["inputs"]["deadlines_breached"] >= 1 and finance["inputs"]["min_closed"] == 5


def test_tickets_list_search_finds_by_words_and_phone_tail(runs: dict[str, Result], seeded: Seeded) -> None:
    assert [row["number"] for row in json_out(runs["search_words"])["tickets"]] == [seeded.fresh]
    found = json_out(runs["search_phone"])
    assert [row["number"] for row in found["tickets"]] == [seeded.overdue] and found["total"] == 1
    assert "13812348000" not in runs["search_phone"].stdout  # masked as everywhere else
    empty = runs["search_empty"]
    assert empty.returncode != 0 and "--search: give words" in empty.stderr


def test_tickets_list_search_counts_every_match_and_says_what_it_did_not_read(tmp_path: Path) -> None:
    assert complaintbot(tmp_path, "init").returncode == 0
    settings = site_settings(tmp_path)

    async def seed() -> None:
        app = build(settings)
        try:
            await add_tickets(app.core, SCAN + 1, datetime.now(UTC))
        finally:
            await app.close()

    asyncio.run(seed())
    results = complaintbot_many(
        {
            "number": Call(tmp_path, ("tickets", "list", "--search", "200101", "--offset", "5000", "--json")),
            "words_json": Call(tmp_path, ("tickets", "list", "--search", "课程安排", "--json")),
            "words": Call(tmp_path, ("tickets", "list", "--search", "课程安排", "--limit", "2")),
        }
    )
    by_number = json_out(results["number"])  # the database counts them all
    assert by_number["total"] == SCAN + 1 and [t["number"] for t in by_number["tickets"]] == [
        "TS-200101-00000"
    ]
    assert "searched_newest" not in by_number
    by_words = json_out(results["words_json"])
    assert (by_words["total"], by_words["searched_newest"], len(by_words["tickets"])) == (SCAN, SCAN, 50)
    said = results["words"].stdout
    assert f"… and {SCAN - 2} more of {SCAN}" in said and f"(searched the newest {SCAN} tickets" in said
