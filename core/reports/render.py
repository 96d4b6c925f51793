"""Drawing the report in a process of its own: `python -m core.reports.render` reads the figures as JSON
on stdin and writes the documents (the PDF, the overview picture) as JSON on stdout.

Drawing holds the interpreter for seconds; in the service's own process it would slow the event loop
that must answer WeChat's passive reply within 5 s. A child process can also be killed at once when
the service stops, where a thread would have to be waited for.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from datetime import datetime
from typing import Any

from core.messages import Document


class DrawingFailed(RuntimeError):
    """The drawing process failed; the message carries the end of what it said."""


async def draw_documents(figures: dict[str, Any], now: datetime, *, overview: bool) -> tuple[Document, ...]:
    request = json.dumps({"figures": figures, "now": now.isoformat(), "overview": overview}).encode()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "core.reports.render",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await process.communicate(request)
    except BaseException:  # cancelled (the service stops): no drawing outlives the pass
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise DrawingFailed(f"drawing the report failed: {err.decode(errors='replace')[-500:]}")
    return tuple(Document(d["filename"], d["mime"], base64.b64decode(d["base64"])) for d in json.loads(out))


def main() -> None:
    from core.reports.pdf import report_documents  # matplotlib only in this process

    request = json.loads(sys.stdin.buffer.read())
    documents = report_documents(
        request["figures"], datetime.fromisoformat(request["now"]), request["overview"]
    )
    answer = [
        {"filename": d.filename, "mime": d.mime, "base64": base64.b64encode(d.content).decode("ascii")}
        for d in documents
    ]
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    main()
