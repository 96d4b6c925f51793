"""Database and file-system trouble: one line on stderr naming the problem, a non-zero exit, no password."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError

from bot import cli
from bot.config import load_settings
from core.storage.privacy import generate_key
from tests.bot.cli_helpers import Call, Result, complaintbot_many, one_error_line

PASSWORD = "s3cret-pw"
REFUSED = "postgresql://nobody@127.0.0.1:1/x"  # nothing listens on port 1
SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104


class FakePostgres:
    """A server that answers every login the way PostgreSQL refuses one: an ErrorResponse, FATAL.

    The database named `nosuch` does not exist; any other login has the wrong password.
    """

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=5)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:  # closed
                return
            # A client that goes away early is no concern: wait for the next one.
            with conn, contextlib.suppress(OSError, struct.error, ValueError):
                self._refuse(conn)

    @staticmethod
    def _read(conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise ConnectionError("client closed")
            data += chunk
        return data

    def _refuse(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        while True:
            length, code = struct.unpack("!ii", self._read(conn, 8))
            body = self._read(conn, length - 8)
            if code not in (SSL_REQUEST, GSSENC_REQUEST):
                break
            conn.sendall(b"N")  # no encryption here: the client goes on in plain text
        parts = body.split(b"\0")
        params = {k.decode(): v.decode() for k, v in zip(parts[0::2], parts[1::2], strict=False) if k}
        if params.get("database") == "nosuch":
            sqlstate, message = "3D000", 'database "nosuch" does not exist'
        else:
            sqlstate, message = "28P01", f'password authentication failed for user "{params.get("user")}"'
        fields = b"".join(
            tag + value.encode() + b"\0"
            for tag, value in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", sqlstate), (b"M", message))
        )
        fields += b"\0"
        conn.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)


@pytest.fixture(scope="module")
def postgres() -> Iterator[FakePostgres]:
    server = FakePostgres()
    yield server
    server.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, postgres: FakePostgres) -> dict[str, Result]:
    here = tmp_path_factory.mktemp("errors")  # no config file: the defaults and the environment
    (here / "a_file").write_text("not a directory\n", encoding="utf-8")
    key = generate_key()

    def database(url: str, *args: str) -> Call:
        return Call(here, args, {"COMPLAINTBOT_DATABASE__URL": url, "COMPLAINTBOT_PRIVACY__KEY": key})

    fake = f"127.0.0.1:{postgres.port}"
    calls = {
        "refused_list": database(REFUSED, "tickets", "list"),
        "refused_upgrade": database(REFUSED, "db", "upgrade"),
        "refused_run": database(REFUSED, "run"),
        "refused_init": database(REFUSED, "init", "--dir", str(here / "site")),
        "wrong_password": database(f"postgresql://app:{PASSWORD}@{fake}/complaints", "tickets", "list"),
        "no_database": database(f"postgresql://app:{PASSWORD}@{fake}/nosuch", "db", "upgrade"),
        "unknown_driver": database("foo://x", "tickets", "list"),
        "not_a_url": database("not a url", "tickets", "list"),
        "bad_port": database(f"postgresql://app:{PASSWORD}@db.example:port/x", "db", "upgrade"),
        "driver_missing": database(f"mysql://app:{PASSWORD}@127.0.0.1/x", "tickets", "list"),
        "sqlite_unwritable": database("sqlite:////proc/nope/complaintbot.db", "db", "upgrade"),
        "init_proc": Call(here, ("init", "--dir", "/proc/nope")),
        "init_on_a_file": Call(here, ("init", "--dir", str(here / "a_file"))),
    }
    return complaintbot_many(calls)


@pytest.mark.parametrize(
    ("case", "mentions"),
    [
        ("refused_list", f"cannot reach the database {REFUSED}: connection refused"),
        ("refused_upgrade", f"cannot reach the database {REFUSED}: connection refused"),
        ("refused_run", f"cannot reach the database {REFUSED}: connection refused"),
        ("refused_init", f"cannot reach the database {REFUSED}: connection refused"),
        ("wrong_password", 'password authentication failed for user "app"'),
        ("no_database", 'database "nosuch" does not exist'),
        ("unknown_driver", "unknown database driver 'foo' in foo://x"),
        ("not_a_url", "COMPLAINTBOT_DATABASE__URL is not a valid database URL"),
        ("bad_port", "COMPLAINTBOT_DATABASE__URL is not a valid database URL"),
        ("driver_missing", "mysql://app:***@127.0.0.1/x"),
        ("sqlite_unwritable", "cannot open the database sqlite:////proc/nope/complaintbot.db"),
        ("init_proc", "cannot create /proc/nope"),
        ("init_on_a_file", "a_file is not a directory"),
    ],
)
def test_trouble_is_one_line_naming_it(runs: dict[str, Result], case: str, mentions: str) -> None:
    line = one_error_line(runs[case])
    assert line.startswith("error: ") and mentions in line, line
    assert PASSWORD not in runs[case].stderr


@pytest.mark.parametrize("case", ["wrong_password", "no_database"])
def test_login_refusals_show_the_url_without_its_password(
    runs: dict[str, Result], postgres: FakePostgres, case: str
) -> None:
    line = one_error_line(runs[case])
    assert f"cannot connect to the database postgresql://app:***@127.0.0.1:{postgres.port}/" in line, line


# ---- what stays a traceback -------------------------------------------------------------


@pytest.fixture
def sqlite_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CLI's state as after loading a config with a perfectly good database URL."""
    for name in [n for n in os.environ if n.upper().startswith("COMPLAINTBOT_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "complaintbot.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/x.db"\n', encoding="utf-8")
    monkeypatch.setattr(cli.State, "config", config)
    monkeypatch.setattr(cli.State, "settings", load_settings(config))


def raising(exc: BaseException) -> object:
    raise exc


@pytest.mark.usefixtures("sqlite_settings")
@pytest.mark.parametrize(
    "bug",
    [
        RuntimeError("a bug"),
        IntegrityError("INSERT INTO tickets ...", {}, Exception("UNIQUE constraint failed")),
        ArgumentError("Column expression expected"),  # the URL is fine: this one is ours
        ModuleNotFoundError("No module named 'something_we_forgot'"),
    ],
)
def test_bugs_keep_their_traceback(bug: Exception) -> None:
    with pytest.raises(type(bug)):
        cli.guarded(lambda: raising(bug))


@pytest.mark.usefixtures("sqlite_settings")
def test_operational_database_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    locked = OperationalError("UPDATE tickets ...", {}, Exception("database is locked"))
    with pytest.raises(typer.Exit) as exit_info:
        cli.guarded(lambda: raising(locked))
    assert exit_info.value.exit_code != 0
    assert capsys.readouterr().err.strip().endswith("x.db: database is locked")
