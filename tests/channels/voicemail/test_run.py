"""`complaintbot run` with the voicemail channel configured: a file dropped in the spool and a signed
POST both become tickets while the service runs, and it says how it takes voicemail."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.bot.cli_helpers import SCRIPT, clean_env
from tests.bot.test_service import free_port
from tests.channels.voicemail import recorded

SECRET = "voicemail-test-secret"


def _tickets(cwd: Path, env: dict[str, str]) -> list[dict[str, object]]:
    done = subprocess.run(
        [SCRIPT, "tickets", "list", "--status", "all", "--json"],
        cwd=cwd,
        env=env,
        capture_output=True,
        check=True,
    )
    found: list[dict[str, object]] = json.loads(done.stdout)["tickets"]
    return found


def test_the_running_service_takes_voicemail_from_the_spool_and_the_webhook(tmp_path: Path) -> None:
    port = free_port()
    spool = tmp_path / "spool"
    env = clean_env(
        COMPLAINTBOT_WEB__PORT=str(port),
        COMPLAINTBOT_CHANNELS__VOICEMAIL__SPOOL_DIR=str(spool),
        COMPLAINTBOT_CHANNELS__VOICEMAIL__SECRET=SECRET,
    )
    err = tmp_path / "run.err"
    with err.open("w") as stderr:
        process = subprocess.Popen([SCRIPT, "run"], cwd=tmp_path, stdout=stderr, stderr=stderr, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60  # a bound on a busy machine, not a timing
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            # A producer writes into tmp/ and renames into new/, as INTERFACES.md asks.
            (spool / "tmp" / "call-1.json").write_bytes(recorded.body("asterisk_full"))
            (spool / "tmp" / "call-1.json").rename(spool / "new" / "call-1.json")
            body = recorded.body("asterisk_minimal")  # another call, from another caller
            stamp = str(int(time.time()))
            signature = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
            answer = httpx.post(
                f"{base}/voicemail",
                content=body,
                headers={"X-Voicemail-Signature": signature, "X-Voicemail-Timestamp": stamp},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
            deadline = time.monotonic() + 60
            while not (spool / "cur" / "call-1.json").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert (spool / "cur" / "call-1.json").exists(), err.read_text()
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
    log = err.read_text()
    assert code == 0, log
    assert f"channel voicemail: POST /voicemail, spool {spool}" in log
    tickets = _tickets(tmp_path, env)
    assert sorted(str(t["channel"]) for t in tickets) == ["voicemail", "voicemail"]
    assert answer.json()["ticket"] in {t["number"] for t in tickets}
