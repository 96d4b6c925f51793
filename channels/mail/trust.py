"""What our own receiving mail server says of a mail's sender (RFC 8601 `Authentication-Results`).

Anyone can write an `Authentication-Results` header into a mail; only the one our server added is
believed: it is the topmost (a server prepends its header), and it names the `authserv-id` the
operator configured. A mail passes when DMARC passed for the very domain of its From address (the
alignment DMARC itself checks); it fails when DMARC or SPF failed there. Anything else says nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

Verdict = Literal["pass", "fail"]

_COMMENT = re.compile(r"\([^()]*\)")
# "method=result" and the properties after it ("header.from=example.com"), in one resinfo.
_RESULT = re.compile(r"^\s*([a-z0-9-]+)\s*=\s*([a-z]+)\b(.*)$", re.I | re.S)
_PROPERTY = re.compile(r"([a-z0-9-]+\.[a-z0-9-]+)\s*=\s*(\S+)", re.I)


def sender_verdict(headers: Sequence[str], authserv_id: str | None, address: str) -> Verdict | None:
    """The verdict of our server on `address` (the From address), from the mail's
    `Authentication-Results` headers as they appear, topmost first; None when it gave none."""
    if not authserv_id or not headers:
        return None
    top = _COMMENT.sub(" ", _COMMENT.sub(" ", headers[0]))  # comments nest at most twice in practice
    server, _, rest = top.partition(";")
    if not server.split() or server.split()[0].lower() != authserv_id.strip().lower():
        return None  # not written by our server: an anonymous claim
    domain = address.rpartition("@")[2].strip().lower()
    verdict: Verdict | None = None
    for resinfo in rest.split(";"):
        found = _RESULT.match(resinfo)
        if found is None:
            continue
        method, result, properties = found.group(1).lower(), found.group(2).lower(), found.group(3)
        props = {key.lower(): value.strip("\"'").lower() for key, value in _PROPERTY.findall(properties)}
        if method == "dmarc":
            aligned = props.get("header.from", domain) == domain
            if result == "pass" and aligned:
                return "pass"
            if result == "fail" and aligned:
                verdict = "fail"
        elif method == "spf" and result == "fail":
            verdict = "fail"
    return verdict
