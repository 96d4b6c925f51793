"""`complaintbot run` with the e-mail channel: a complaint appended to the mailbox (a real Dovecot) is
acknowledged through a real SMTP server, threaded and tagged, and marked read only after its commit."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from standins.smtp import Received, SmtpStandIn
from tests.bot.cli_helpers import SCRIPT, clean_env
from tests.bot.test_service import free_port
from tests.channels.mail.dovecot import Dovecot, complaint_mail


def test_the_running_service_reads_the_mailbox_and_acknowledges_by_smtp(
    dovecot: Dovecot, smtp: SmtpStandIn, tmp_path: Path
) -> None:
    env = clean_env(
        COMPLAINTBOT_WEB__PORT=str(free_port()),
        COMPLAINTBOT_CHANNELS__EMAIL__IMAP_HOST=dovecot.host,
        COMPLAINTBOT_CHANNELS__EMAIL__IMAP_PORT=str(dovecot.port),
        COMPLAINTBOT_CHANNELS__EMAIL__IMAP_USER=dovecot.user,
        COMPLAINTBOT_CHANNELS__EMAIL__IMAP_PASSWORD=dovecot.password,
        COMPLAINTBOT_CHANNELS__EMAIL__IMAP_TLS="false",
        COMPLAINTBOT_CHANNELS__EMAIL__SMTP_HOST=smtp.host,
        COMPLAINTBOT_CHANNELS__EMAIL__SMTP_PORT=str(smtp.port),
        COMPLAINTBOT_CHANNELS__EMAIL__SMTP_TLS="none",
        COMPLAINTBOT_CHANNELS__EMAIL__FROM_ADDRESS="complaints@school.example.cn",
    )
    dovecot.append(
        [complaint_mail("li.ming@163.com", "老师上课总是迟到，教学质量很差", message_id="<c1@163.com>")]
    )
    log = tmp_path / "run.log"
    with log.open("w") as out:
        process = subprocess.Popen([SCRIPT, "run"], cwd=tmp_path, stdout=out, stderr=out, env=env)
        try:
            for _ in range(300):  # the acknowledgement and the first question arrive within seconds
                if len(smtp.recorder.received) >= 2:
                    break
                time.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)  # a bound, not a timing: the machine may be busy
    said = log.read_text()
    assert code == 0, said
    assert "channel email: reading imap://" in said, said

    def body(received: Received) -> str:
        part = received.message().get_body(preferencelist=("plain",))
        return str(part.get_content()) if part is not None else ""

    # The acknowledgement and the first question leave together, in either order.
    [ack] = [r for r in smtp.recorder.received if "投诉接收确认" in body(r)]
    [ask] = [r for r in smtp.recorder.received if r is not ack]
    assert "课程" in body(ask)
    mail = ack.message()
    assert ack.rcpt_tos == ["li.ming@163.com"]
    assert str(mail["Subject"]).startswith("Re: [TS-") and mail["In-Reply-To"] == "<c1@163.com>"
    assert mail["Auto-Submitted"] == "auto-replied"
    assert dovecot.search("UNSEEN") == [] and len(dovecot.search("SEEN")) == 1  # read once committed
    listed = subprocess.run(
        [SCRIPT, "tickets", "list", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"channel": "email"' in listed.stdout
