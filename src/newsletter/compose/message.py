"""The message one recipient receives: headers and MIME around the personalized issue.

multipart/alternative with the plain text first and the HTML last (RFC 2046: the last part
a client can show is the best one), UTF-8, quoted-printable so that no line passes 998
bytes (RFC 5322), and the list headers that one-click unsubscribe needs (RFC 2369, 8058).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, localtime
from functools import cached_property

from newsletter.compose.personalize import Personalized, Recipient, personalize
from newsletter.compose.render import Rendered
from newsletter.config import Settings


@dataclass(frozen=True, eq=False)
class Message:
    """What a provider needs to send one email; `headers` are beyond From/To/Subject.

    The body is the issue (`rendered`, shared by every message of a send) with this
    recipient's fields filled in, made only when something asks for `html` or `text`:
    providers that merge the fields themselves (SendGrid, Mailgun) or splice pre-encoded
    JSON (Postmark, Resend) never need one 50 KB copy per recipient.
    """

    issue: str
    sender: str
    to: str
    subject: str
    headers: dict[str, str]
    recipient: Recipient
    rendered: Rendered = field(repr=False)
    reply_to: str | None = None

    @cached_property
    def _body(self) -> Personalized:
        return personalize(self.rendered, self.recipient)

    @property
    def html(self) -> str:
        return self._body.html

    @property
    def text(self) -> str:
        return self._body.text

    @property
    def message_id(self) -> str:
        return self.headers["Message-ID"]


def message_id(issue_key: str, email: str, domain: str, variant: str = "") -> str:
    """Stable per issue and recipient, so a resend is recognisably the same message.

    Test copies pass a `variant`: an inbox that saw a test copy must not take the real
    issue for a duplicate of it.
    """
    seed = f"{issue_key}\0{email.lower()}\0{variant}"
    digest = hashlib.sha256(seed.encode()).hexdigest()[:32]
    return f"<{issue_key}{'.' + variant if variant else ''}.{digest}@{domain}>"


def list_headers(settings: Settings, unsubscribe_url: str) -> dict[str, str]:
    """List-ID and the RFC 8058 one-click unsubscribe pair."""
    return {
        "List-ID": f"{_header_safe(settings.name)} <{settings.list_id}>",
        "List-Unsubscribe": f"<{unsubscribe_url}>, <{settings.unsubscribe_mailto}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def build_message(
    settings: Settings,
    issue_key: str,
    rendered: Rendered,
    recipient: Recipient,
    subject_prefix: str = "",
    id_variant: str = "",
) -> Message:
    """The message for one recipient: the issue personalized, with its headers."""
    headers = {
        "Message-ID": message_id(issue_key, recipient.email, settings.sender_domain, id_variant),
        **list_headers(settings, recipient.unsubscribe_url),
    }
    return Message(
        issue=issue_key,
        sender=settings.sender_text,
        to=mailbox(recipient.name, recipient.email),
        subject=subject_prefix + rendered.subject,
        headers=headers,
        recipient=recipient,
        reply_to=settings.reply_to_text,
        rendered=rendered,
    )


def to_mime(message: Message) -> EmailMessage:
    """The RFC 5322 message, for the outbox and the .eml a build writes."""
    mime = EmailMessage(policy=policy.SMTP)
    mime["From"] = message.sender
    mime["To"] = message.to
    if message.reply_to:
        mime["Reply-To"] = message.reply_to
    mime["Subject"] = message.subject
    mime["Date"] = format_datetime(localtime())
    for name, value in message.headers.items():
        mime[name] = value
    mime["MIME-Version"] = "1.0"
    mime.set_content(message.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    mime.add_alternative(message.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return mime


_EMPTY_FOLD = re.compile(rb"^([!-9;-~]+):\r\n ", re.MULTILINE)


def to_bytes(mime: EmailMessage) -> bytes:
    """Serialise with CRLF, folding headers at 78 columns (RFC 2047 words stay short).

    Python's folder moves a value that almost fits onto a continuation line of its own
    ("Subject:", line break, " Text"); parsers then see a leading space in the value, so those
    lines are joined back (still far below the 998-byte limit).
    """
    raw = mime.as_bytes()
    head, sep, body = raw.partition(b"\r\n\r\n")
    return _EMPTY_FOLD.sub(rb"\1: ", head) + sep + body


_SPECIALS = re.compile(r'[()<>@,;:\\".\[\]]')


def mailbox(name: str, email: str) -> str:
    """ "Name <address>", the name quoted when it must be (what str(Address) gives, faster)."""
    name = _header_safe(name)
    if not name:
        return email
    if _SPECIALS.search(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{email}>"


def _header_safe(value: str) -> str:
    """No line breaks or control characters can reach a header from a name."""
    if value.isprintable() and "  " not in value:
        return value.strip()
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())
