"""The message one recipient receives: headers and MIME around the personalized issue.

multipart/alternative with the plain text first and the HTML last (RFC 2046: the last part
a client can show is the best one), UTF-8, quoted-printable so that no line passes 998
bytes (RFC 5322), and the list headers that one-click unsubscribe needs (RFC 2369, 8058).
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
from dataclasses import dataclass
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime, localtime
from functools import cached_property
from typing import cast

from newsletter.compose.personalize import (
    Personalized,
    Recipient,
    field_values,
    fill,
    personalize,
)
from newsletter.compose.render import Rendered
from newsletter.config import Settings


class Message:
    """What a provider needs to send one email; `headers` are beyond From/To/Subject.

    What every message of an issue to a list shares is its `letterhead`, worked out once;
    a message itself holds only its recipient, their mailbox and Message-ID. The headers,
    the subject and the body (the issue with this recipient's fields filled in) are made
    only when something asks for them: providers that merge the fields themselves
    (SendGrid, Mailgun) or splice pre-encoded JSON (Postmark, Resend) never need one 50 KB
    copy per recipient, nor a dict of headers.
    """

    __slots__ = ("__dict__", "letterhead", "message_id", "recipient", "to")

    def __init__(
        self, letterhead: Letterhead, recipient: Recipient, to: str, message_id: str
    ) -> None:
        self.letterhead = letterhead
        self.recipient = recipient
        self.to = to
        self.message_id = message_id

    @property
    def issue(self) -> str:
        return self.letterhead.issue

    @property
    def sender(self) -> str:
        return self.letterhead.sender

    @property
    def reply_to(self) -> str | None:
        return self.letterhead.reply_to

    @property
    def rendered(self) -> Rendered:
        return self.letterhead.rendered

    @cached_property
    def headers(self) -> dict[str, str]:
        return self.letterhead.headers(self.message_id, self.recipient.unsubscribe_url)

    @cached_property
    def subject(self) -> str:
        parts = self.rendered.subject_parts
        if len(parts) == 1:
            return self.letterhead.subject_prefix + parts[0]
        raw, _ = field_values(self.recipient, self.rendered.slots)
        return self.letterhead.subject_prefix + fill(parts, raw)

    @cached_property
    def _body(self) -> Personalized:
        return personalize(self.rendered, self.recipient)

    @property
    def html(self) -> str:
        return self._body.html

    @property
    def text(self) -> str:
        return self._body.text


@dataclass(frozen=True, eq=False)
class Letterhead:
    """What every message of one issue to one list shares, worked out once per send."""

    issue: str
    rendered: Rendered
    sender: str
    reply_to: str | None
    domain: str  # of the Message-IDs
    list_id: str  # the List-ID header
    mailto: str  # ", <mailto:...>" after the link in List-Unsubscribe, or ""
    subject_prefix: str = ""
    id_variant: str = ""

    @classmethod
    def of(
        cls,
        settings: Settings,
        issue: str,
        rendered: Rendered,
        subject_prefix: str = "",
        id_variant: str = "",
    ) -> Letterhead:
        mailto = f", <{settings.unsubscribe_mailto}>" if settings.unsubscribe_mailto else ""
        return cls(
            issue=issue,
            rendered=rendered,
            sender=settings.sender_text,
            reply_to=settings.reply_to_text,
            domain=settings.sender_domain,
            list_id=_list_id(settings.name, settings.list_id),
            mailto=mailto,
            subject_prefix=subject_prefix,
            id_variant=id_variant,
        )

    @cached_property
    def _id_left(self) -> str:
        variant = "." + _dot_atom(self.id_variant) if self.id_variant else ""
        return f"<{_dot_atom(self.issue)}{variant}."

    def headers(self, message_id: str, unsubscribe_url: str) -> dict[str, str]:
        """Message-ID, List-ID and the RFC 8058 one-click pair (mailto where configured)."""
        return {
            "Message-ID": message_id,
            "List-ID": self.list_id,
            "List-Unsubscribe": self.list_unsubscribe(unsubscribe_url),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }

    def list_unsubscribe(self, unsubscribe_url: str) -> str:
        """The List-Unsubscribe header's value (RFC 2369): the link, then any mailto."""
        return f"<{unsubscribe_url}>{self.mailto}"

    def message(self, recipient: Recipient) -> Message:
        """The message for one recipient (see `message_id` for its Message-ID)."""
        seed = f"{self.issue}\0{recipient.email.lower()}\0{self.id_variant}"
        digest = hashlib.sha256(seed.encode()).hexdigest()[:32]
        return Message(
            self,
            recipient,
            mailbox(recipient.name, recipient.email),
            f"{self._id_left}{digest}@{self.domain}>",
        )


def message_id(issue_key: str, email: str, domain: str, variant: str = "") -> str:
    """Stable per issue and recipient, so a resend is recognisably the same message.

    Test copies pass a `variant`: an inbox that saw a test copy must not take the real
    issue for a duplicate of it. The folder name is made dot-atom text (RFC 5322): a space
    in it would otherwise end the ID there for every mail program.
    """
    seed = f"{issue_key}\0{email.lower()}\0{variant}"
    digest = hashlib.sha256(seed.encode()).hexdigest()[:32]
    left = _dot_atom(issue_key) + ("." + _dot_atom(variant) if variant else "")
    return f"<{left}.{digest}@{domain}>"


_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")


@functools.lru_cache(maxsize=64)
def _dot_atom(text: str) -> str:
    """`text` as dot-atom text: other characters %-encoded, so ordinary names stay as they are.

    Cached: every message of a send has the same issue key.
    """
    out = "".join(c if c in _ATEXT or c == "." else _percent(c) for c in text)
    if out.startswith(".") or out.endswith(".") or ".." in out:
        out = out.replace(".", "%2E")
    return out or "issue"


def _percent(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))


def list_headers(settings: Settings, unsubscribe_url: str) -> dict[str, str]:
    """List-ID and the RFC 8058 one-click unsubscribe pair (mailto only where configured)."""
    headers = Letterhead.of(settings, "", Rendered("", "", "")).headers("", unsubscribe_url)
    del headers["Message-ID"]
    return headers


def build_message(
    settings: Settings,
    issue_key: str,
    rendered: Rendered,
    recipient: Recipient,
    subject_prefix: str = "",
    id_variant: str = "",
) -> Message:
    """The message for one recipient: the issue personalized, with its headers."""
    return Letterhead.of(settings, issue_key, rendered, subject_prefix, id_variant).message(
        recipient
    )


@functools.lru_cache(maxsize=8)
def _list_id(name: str, list_id: str) -> str:
    return f"{header_safe(name)} <{list_id}>"


class _PlainWhenAscii(UnstructuredHeader):
    """An unstructured header whose ASCII value is folded at its spaces, never encoded.

    Python folds a word too long for a 78-column line (an unsubscribe URL with its token)
    by encoding the whole value as RFC 2047 words, "=?utf-8?q?=3Chttps=3A//...": mail
    programs then find no URL in List-Unsubscribe and offer no one-click unsubscribe.
    RFC 5322 lets a line run to 998 bytes, so ASCII values stay as they are, folded only
    between words; values that are not ASCII (a subject in French) are encoded as before.
    """

    name: str  # set by BaseHeader, which the registry mixes in

    def fold(self, *, policy: Policy) -> str:
        value = str(self)
        words = re.split(r" (?=\S)", value)
        if not value.isascii() or len(self.name) + 2 + max(map(len, words)) > _LINE_LIMIT:
            return BaseHeader.fold(cast(BaseHeader, self), policy=policy)
        width = policy.max_line_length or _LINE_LIMIT
        lines, line = [], f"{self.name}: {words[0]}"
        for word in words[1:]:
            if len(line) + 1 + len(word) <= width:
                line += " " + word
            else:
                lines.append(line)
                line = " " + word
        lines.append(line)
        return policy.linesep.join(lines) + policy.linesep


_LINE_LIMIT = 998  # RFC 5322 2.1.1, without the CRLF
_HEADERS = HeaderRegistry(default_class=_PlainWhenAscii)
_HEADERS.map_to_type("subject", cast("type[BaseHeader]", _PlainWhenAscii))
_POLICY = policy.SMTP.clone(header_factory=_HEADERS)


def to_mime(message: Message) -> EmailMessage:
    """The RFC 5322 message, for the outbox and the .eml a build writes."""
    mime = EmailMessage(policy=_POLICY)
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
    name = header_safe(name)
    if not name:
        return email
    if _SPECIALS.search(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{email}>"


def header_safe(value: str) -> str:
    """No line breaks or control characters can reach a header from a name."""
    if value.isprintable() and "  " not in value:
        return value.strip()
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())
