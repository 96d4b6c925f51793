"""Fixtures of the mail channel's tests: real mail servers on loopback ports, one block per server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from standins.smtp import Certificate, SmtpStandIn, make_certificate, run_smtp
from tests.channels.mail.dovecot import MISSING, Dovecot

# ---- SMTP (aiosmtpd, in-process): the sender's tests ------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[SmtpStandIn]:
    """A plain SMTP server (no TLS, no AUTH) that records every message it accepts."""
    with run_smtp() as server:
        yield server


@pytest.fixture(scope="session")
def smtp_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made once per session (STARTTLS and implicit TLS)."""
    return make_certificate(tmp_path_factory.mktemp("smtp-tls"))


# ---- end of SMTP -------------------------------------------------------------------------------------


# ---- Dovecot (IMAP, a real server per test, own config on a loopback port): the reader's tests ------


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A fresh Dovecot with one empty mailbox; skipped where Dovecot is not installed (CI installs it)."""
    if MISSING:
        pytest.skip(MISSING)
    server = Dovecot()
    try:
        server.start()
        yield server
    finally:
        server.close()


# ---- end of Dovecot ----------------------------------------------------------------------------------
