"""The IMAP reader's error path with its password configured: a refused login is logged (and retried)
without the password, and nothing of it reaches the database. The other channels' error paths are in
`tests/bot/test_no_secrets_leak.py`."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from channels.mail.imap import ImapSource
from channels.mail.reader import MailReader
from core.context import CoreContext
from core.intake.intake import Intake
from core.storage.redaction import Redactor, install
from tests.bot.test_no_secrets_leak import assert_nothing_leaked
from tests.channels.mail.dovecot import Dovecot


async def test_a_refused_imap_login_is_logged_without_the_password(
    dovecot: Dovecot, core: CoreContext, intake: Intake, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = dovecot.password + "-but-wrong"
    core.redact = Redactor([dovecot.password, wrong])
    caplog.set_level(logging.INFO)
    remove = install(core.redact)
    source = ImapSource(dovecot.account(password=wrong), MailReader(intake, core))
    stop = asyncio.Event()
    reading = asyncio.create_task(source.run(stop))
    try:
        began = time.monotonic()
        while not any("LOGIN" in r.getMessage() for r in caplog.records):
            assert time.monotonic() - began < 20, "the refused login was not logged"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await reading
        remove()
    await assert_nothing_leaked(core, caplog, dovecot.password, wrong)
