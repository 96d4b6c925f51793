"""The recorded pushes in `pushes/`: XML of each message and event the Official Account sends us, as
WeChat's server posts it in plaintext mode (one element a line, text in CDATA sections).

    xml = push("text", Content="课程是雅思口语班", MsgId="24893127548374700", CreateTime=TS)

`push` reads a sample and, for a test's own variation, replaces the text of named elements (kept in a
CDATA section when the sample has one there). Encryption and signing are `signing`'s.
"""

from __future__ import annotations

import re
from pathlib import Path

PUSHES = Path(__file__).parent / "pushes"
SAMPLES = sorted(path.stem for path in PUSHES.glob("*.xml"))
OPENID = "oJ7xZ5m1kQ3vR8sT2uW4yA6cE9gI"  # the learner of every sample
CREATED = 1759197600  # every sample's CreateTime: 2025-09-30 10:00 in Shanghai


def push(name: str, **elements: object) -> str:
    """The sample `name` (a file stem in `pushes/`), with the text of the named elements replaced."""
    xml = (PUSHES / f"{name}.xml").read_text(encoding="utf-8")
    for tag, value in elements.items():
        pattern = re.compile(rf"<{tag}>(<!\[CDATA\[)?.*?(\]\]>)?</{tag}>", re.S)
        match = pattern.search(xml)
        if match is None:
            raise KeyError(f"pushes/{name}.xml has no <{tag}>")
        text = f"<![CDATA[{value}]]>" if match.group(1) else str(value)
        xml = xml[: match.start()] + f"<{tag}>{text}</{tag}>" + xml[match.end() :]
    return xml
