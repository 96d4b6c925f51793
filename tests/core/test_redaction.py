"""The redactor and the log filter on their own: what they hide, and what they leave readable."""

from __future__ import annotations

import logging

import pytest

from core.storage.redaction import SECRET, RedactingFilter, Redactor, install

BOT_TOKEN = "7234567890:AAH3kx9vQ2mPz8LwTn5Rb1Yc4Df6Gh7Jk0L"
OPENID = "oLVPpjqs9BhvzwPj5A-vTYAX3GLc"


def record(msg: str, *args: object, name: str = "complaintbot", exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"GET /bot{BOT_TOKEN}/sendMessage failed")
        except RuntimeError as error:
            exc_info = (type(error), error, error.__traceback__)
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args or None, exc_info)


def test_configured_secrets_are_hidden_as_given_and_url_encoded() -> None:
    redact = Redactor(["pa ss/word+1", None, "", "abc"])  # too short to be hidden: left alone
    assert redact("login pa ss/word+1 failed") == f"login {SECRET} failed"
    assert redact("?password=pa%20ss%2Fword%2B1") == "?password=***"
    assert redact("https://h/x?p=pa+ss%2Fword%2B1") == f"https://h/x?p={SECRET}"
    assert redact("abc stays") == "abc stays"


def test_identifiers_are_hidden_even_when_nothing_is_configured() -> None:
    redact = Redactor()
    assert redact(f"/bot{BOT_TOKEN}/getMe") == f"/bot{SECRET}/getMe"
    assert redact(f"push from {OPENID}") == "push from o***3GLc"
    assert redact("/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s3cr3t") == (
        "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=***"
    )
    assert redact("call 13800138000 or li.lei@example.org") == "call 138****8000 or l***@example.org"
    assert redact("ticket TS-261122-00071: attempt 2 failed") == "ticket TS-261122-00071: attempt 2 failed"


def test_the_filter_redacts_message_arguments_and_tracebacks() -> None:
    rec = record("fetch %s failed for %s", f"?access_token=T-1&openid={OPENID}", "13800138000", exc=True)
    assert RedactingFilter(Redactor()).filter(rec)
    formatted = logging.Formatter().format(rec)
    assert "fetch ?access_token=***&openid=*** failed for 138****8000" in formatted
    assert "RuntimeError" in formatted and BOT_TOKEN not in formatted


def test_the_access_log_keeps_its_fields_and_loses_the_query() -> None:
    rec = record(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "POST",
        f"/wechat?signature=abc&openid={OPENID}",
        "1.1",
        200,
        name="uvicorn.access",
    )
    RedactingFilter(Redactor()).filter(rec)
    assert rec.getMessage() == '127.0.0.1:5000 - "POST /wechat HTTP/1.1" 200'


def test_arguments_that_do_not_fit_the_format_are_still_written_redacted() -> None:
    rec = record("two %s %s", "13800138000")
    RedactingFilter(Redactor()).filter(rec)
    assert "138****8000" in rec.getMessage() and "13800138000" not in rec.getMessage()


def test_install_puts_one_filter_on_each_handler_and_takes_it_off(caplog: pytest.LogCaptureFixture) -> None:
    remove_first = install(Redactor(["first-secret"]))
    remove = install(Redactor(["second-secret"]))  # replaces the first, never stacks
    try:
        logging.getLogger("complaintbot.test").warning("%s and %s", "first-secret", "second-secret")
        assert sum(isinstance(f, RedactingFilter) for f in caplog.handler.filters) == 1
        assert "first-secret and [secret]" in caplog.text
    finally:
        remove()
        remove_first()
    assert not any(isinstance(f, RedactingFilter) for f in caplog.handler.filters)
