"""Reads what the SMTP server accepted with Python's own e-mail parser and checks what a
person's mail client would show: python check.py DIR"""

import json
import sys

import dkim
from email import policy
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

out = Path(sys.argv[1])
record = (out / "dkim.txt").read_bytes()


def dns(name, timeout=5):
    """The one TXT record a DNS lookup would find: the selector's under the domain."""
    return record if name == b"e2e._domainkey.sipline.example." else None

received = sorted(out.glob("*.eml"))
assert len(received) == 2, f"{len(received)} messages"
expected = {
    "<sip.1.2026-12-05.executed.email@sipline>": {
        "subject": "SIP instalment invested: ₹5,000.00 in Parag Parikh Flexi Cap Fund - Direct Plan - Growth",
        "text": ["₹5,000.00", "5 Dec 2026", "Units allotted: 59.343", "NAV: 84.2512 (of 7 Dec 2026)",
                 "Unsubscribe from these messages: https://api.sipline.example/v1/unsubscribe?token=7.sip_executed."],
        "html": ["<strong>₹5,000.00</strong>", "<td>59.343</td>"],
    },
    "<statement.7.2026-11.email@sipline>": {
        "subject": "Your statement for November 2026",
        "text": ["Invested: ₹12,34,567.50", "Current value: ₹13,98,765.43", "13.42%",
                 "https://app.sipline.example/statement?from=2026-11-01&to=2026-11-30&format=pdf"],
        "html": ["<td>₹12,34,567.50</td>", "<td>13.42%</td>", "&amp;to=2026-11-30&amp;format=pdf"],
    },
}
for path in received:
    session = json.loads(path.with_suffix(".json").read_text())
    assert session["tls"], f"{path.name}: sent without TLS"
    assert session["authenticated"], f"{path.name}: sent without AUTH"
    assert session["mail_from"] == "notifications@sipline.example", session
    assert session["rcpt_tos"] == ["priya@example.co.in"], session
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    message_id = message["Message-ID"]
    want = expected.pop(message_id, None)
    assert want is not None, f"unexpected Message-ID {message_id}"
    assert message["Subject"] == want["subject"], message["Subject"]
    assert message["From"].addresses[0].addr_spec == "notifications@sipline.example"
    assert message["To"].addresses[0].addr_spec == "priya@example.co.in"
    assert parsedate_to_datetime(message["Date"]) is not None
    assert message.get_content_type() == "multipart/alternative", message.get_content_type()
    # RFC 8058 one-click unsubscribe: an https link in angle brackets, and the POST marker.
    kind = "sip_executed" if "sip." in message_id else "statement_ready"
    link = message["List-Unsubscribe"]
    assert link.startswith(f"<https://api.sipline.example/v1/unsubscribe?token=7.{kind}.") and link.endswith(">"), link
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click", message["List-Unsubscribe-Post"]
    parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}, parts.keys()
    for needle in want["text"]:
        assert needle in parts["text/plain"], f"{needle!r} not in\n{parts['text/plain']}"
    for needle in want["html"]:
        assert needle in parts["text/html"], f"{needle!r} not in\n{parts['text/html']}"
    assert "{" not in parts["text/plain"], parts["text/plain"]
    # DKIM (RFC 6376) checked by dkimpy, a verifier nobody here wrote, against the published
    # key; the same bytes with the subject or a word of the body changed must fail.
    raw = path.read_bytes()
    signature = message["DKIM-Signature"]
    assert signature and "d=sipline.example" in signature and "s=e2e" in signature, signature
    assert dkim.verify(raw, dnsfunc=dns), f"{path.name}: the DKIM signature does not verify"
    tampered_subject = raw.replace(b"Subject: ", b"Subject: Re: ", 1)
    assert not dkim.verify(tampered_subject, dnsfunc=dns), "a changed subject still verifies"
    head, blank, body = raw.partition(b"\r\n\r\n")
    tampered_body = head + blank + body.replace(b"a", b"b", 1)
    assert tampered_body != raw
    assert not dkim.verify(tampered_body, dnsfunc=dns), "a changed body still verifies"
    print(f"{path.name}: {message['Subject']!r}, multipart/alternative, TLS + AUTH, DKIM verified")
assert not expected, f"not received: {list(expected)}"
auth = json.loads((out / "auth.json").read_text())
assert auth and auth[-1]["ok"], auth
