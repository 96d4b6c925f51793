"""A real Dovecot IMAP server for tests and the benchmark: own config, loopback port, foreground process.

Also what tests and the benchmark put into mailboxes (`complaint_mail`) and count afterwards (`tally`).

Each `Dovecot` writes its dovecot.conf into a fresh directory (runtime, state, log, mail homes all in
it), listens on a free 127.0.0.1 port and runs `dovecot -F` in a process group of its own, so that
`kill()` takes the whole server down at once, as a crash or an OOM kill would. The test side talks to
it with the stdlib's imaplib (APPEND, flags), never with the code under test.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path

from sqlalchemy import func, select

from channels.mail.imap_connection import ImapAccount
from core.context import CoreContext
from core.storage.delivery_models import OutboxRow, Unparsed
from core.storage.models import Message, Ticket

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
MISSING = None if os.path.exists(DOVECOT) else f"no Dovecot ({DOVECOT}): apt-get install dovecot-imapd"
USER, PASSWORD = "complaints", "s3cret pass"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}
auth_mechanisms = plain
disable_plaintext_auth = no
{users}
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
# A test server: durability across a power cut is not what is tested, speed is.
mail_fsync = never
# No chroot: it needs root, and this server only ever talks to 127.0.0.1.
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accounts() -> tuple[str, int, int]:
    """Who runs what. Dovecot refuses root for its login processes and for mail access: as root we
    use Debian's own unprivileged users; otherwise everything runs as ourselves (checked as nobody)."""
    if os.geteuid() != 0:
        me, group = pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name
        users = f"default_internal_user = {me}\ndefault_login_user = {me}\ndefault_internal_group = {group}"
        return users, os.geteuid(), os.getegid()
    internal = "dovecot" if _exists("dovecot") else "nobody"
    login = "dovenull" if _exists("dovenull") else "nobody"
    mail = pwd.getpwnam("nobody")
    users = f"default_internal_user = {internal}\ndefault_login_user = {login}"
    return users, mail.pw_uid, mail.pw_gid


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _self_signed(root: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, made here, so the TLS test needs no files from outside."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = root / "cert.pem", root / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class Dovecot:
    def __init__(self, *, tls: bool = False) -> None:
        if MISSING:
            raise RuntimeError(MISSING)
        # Not pytest's tmp_path: the mail processes run unprivileged and must reach their home.
        self.root = Path(tempfile.mkdtemp(prefix="complaintbot-dovecot-"))
        self.root.chmod(0o755)
        self.tls = tls
        self.host, self.port = "127.0.0.1", free_port()
        self.user, self.password = USER, PASSWORD
        users, uid, gid = _accounts()
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir()
        self.home = self.root / "home" / self.user
        self.home.mkdir()
        os.chown(self.home, uid, gid)
        (self.root / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}\n", encoding="utf-8")
        ssl_lines = "ssl = no"
        if tls:
            self.cert, key = _self_signed(self.root)
            ssl_lines = f"ssl = required\nssl_cert = <{self.cert}\nssl_key = <{key}"
        ports = (
            {"imap_port": 0, "imaps_port": self.port} if tls else {"imap_port": self.port, "imaps_port": 0}
        )
        config = CONFIG.format(root=self.root, ssl=ssl_lines, users=users, uid=uid, gid=gid, **ports)
        self.config = self.root / "dovecot.conf"
        self.config.write_text(config, encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def maildir(self) -> Path:
        return self.home / "Maildir"

    def start(self, timeout: float = 5.0) -> None:
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: kill() ends every Dovecot process of ours
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self.process.returncode}:\n{self.log()}")
            try:  # a greeting, not only an open port: the login process must be up
                with self.connect():
                    return
            except (OSError, imaplib.IMAP4.error):
                time.sleep(0.02)
        raise RuntimeError(f"dovecot did not answer on {self.host}:{self.port} in {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        """Take the server down at once, as a crash would: every process of its group, SIGKILL."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(encoding="utf-8", errors="replace")[-4000:] if path.exists() else ""

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def account(self, **changes: object) -> ImapAccount:
        fields: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "tls": self.tls,
            "ssl_context": self.ssl_context() if self.tls else None,
        }
        fields.update(changes)
        return ImapAccount(**fields)  # type: ignore[arg-type]

    # -- the test side, stdlib imaplib ------------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self) -> Iterator[imaplib.IMAP4]:
        if self.tls:
            client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                self.host, self.port, ssl_context=self.ssl_context(), timeout=5
            )
        else:
            client = imaplib.IMAP4(self.host, self.port, timeout=5)
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    @contextlib.contextmanager
    def session(self) -> Iterator[imaplib.IMAP4]:
        with self.connect() as client:
            client.login(self.user, self.password)
            yield client

    def append(self, messages: Iterable[bytes], folder: str = "INBOX", flags: str | None = None) -> int:
        """APPEND each message; how many."""
        count = 0
        with self.session() as client:
            for raw in messages:
                status, _ = client.append(folder, flags, None, raw)
                assert status == "OK", status
                count += 1
        return count

    def search(self, criteria: str, folder: str = "INBOX") -> list[int]:
        with self.session() as client:
            client.select(folder)
            status, data = client.uid("SEARCH", None, criteria)  # type: ignore[arg-type]
            assert status == "OK", data
            return [int(uid) for uid in (data[0] or b"").split()]

    def create(self, folder: str) -> None:
        with self.session() as client:
            client.create(folder)

    def delete(self, folder: str) -> None:
        with self.session() as client:
            client.delete(folder)

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.session() as client:
            client.select(folder)
            return int(client.response("UIDVALIDITY")[1][0] or 0)


# -- what goes into the mailboxes, and what comes out in the database -------------------------------------


def complaint_mail(
    sender: str,
    text: str,
    *,
    subject: str = "投诉",
    name: str | None = None,
    message_id: str | None = None,
    date: datetime | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A learner's e-mail as a mail client writes it (UTF-8, CRLF line ends)."""
    mail = EmailMessage()
    mail["From"] = formataddr((name, sender)) if name else sender
    mail["To"] = "complaints@school.example.cn"
    mail["Subject"] = subject
    mail["Date"] = format_datetime(date or datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    if message_id:
        mail["Message-ID"] = message_id
    for header, value in (headers or {}).items():
        mail[header] = value
    mail.set_content(text)
    return mail.as_bytes(policy=SMTP)


async def tally(core: CoreContext) -> dict[str, int]:
    """Tickets, inbound messages, acknowledgements queued, input kept for staff."""
    queries = {
        "tickets": select(func.count(Ticket.id)),
        "inbound": select(func.count(Message.id)).where(Message.direction == "in"),
        "acks": select(func.count(OutboxRow.id)).where(OutboxRow.kind == "ack"),
        "unparsed": select(func.count(Unparsed.id)),
    }
    async with core.sessions() as session:
        return {name: int(await session.scalar(query) or 0) for name, query in queries.items()}
