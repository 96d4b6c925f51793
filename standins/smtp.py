"""A real SMTP server in-process (aiosmtpd on a free loopback port) that keeps what it is given.

It runs in aiosmtpd's own thread and event loop, so a test's `await` on the client never waits on
itself. Replies can be scripted (a 451 for the next DATA, a 550 for one address) the way a real
server refuses, and the server can demand AUTH, STARTTLS or implicit TLS with a certificate the
test makes (`make_certificate`), trusted by the client through its own `ssl.SSLContext`.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One accepted message, as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    login: str | None  # who authenticated, if anyone
    tls: bool
    peer: Any = None  # the client's (host, port): one per connection

    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Recorder:
    """The aiosmtpd handler. `rcpt_replies` / `data_replies` answer the next RCPT / DATA commands
    (then normal service resumes); `refuse` answers every RCPT to that address."""

    received: list[Received] = field(default_factory=list)
    rcpt_replies: list[str] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        content = envelope.original_content or b""
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        transport = server.transport  # implicit TLS: the connection was TLS from its first byte
        tls = session.ssl is not None or (
            transport is not None and transport.get_extra_info("ssl_object") is not None
        )
        mail_from, rcpt_tos = str(envelope.mail_from), list(envelope.rcpt_tos)
        self.received.append(Received(mail_from, rcpt_tos, content, login, tls, session.peer))
        return "250 2.0.0 accepted"


@dataclass(frozen=True)
class SmtpStandIn:
    host: str
    port: int
    recorder: Recorder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def password_check(users: Mapping[str, str]) -> Any:
    """An aiosmtpd authenticator accepting exactly these login/password pairs (PLAIN and LOGIN)."""

    def check(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword) and users.get(data.login.decode()) == data.password.decode():
            return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)

    return check


@contextmanager
def run_smtp(recorder: Recorder | None = None, **smtp_options: Any) -> Iterator[SmtpStandIn]:
    """Serve until the block ends. `smtp_options` go to aiosmtpd: `authenticator`, `auth_required`,
    `auth_require_tls`, `tls_context` + `require_starttls` (STARTTLS), `ssl_context` (implicit TLS)."""
    recorder = recorder or Recorder()
    port = free_port()
    controller = Controller(recorder, hostname=HOST, port=port, **smtp_options)
    controller.start()
    try:
        yield SmtpStandIn(HOST, port, recorder)
    finally:
        controller.stop()


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1: the server's context and a client's that trusts it."""

    cert_file: Path
    key_file: Path
    pem: str

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.pem)


def make_certificate(directory: Path) -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "complaintbot test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_file.write_bytes(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return Certificate(cert_file, key_file, pem.decode("ascii"))
