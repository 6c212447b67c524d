"""Per-recipient fields, filled into the finished (inlined) issue.

The templates emit a placeholder token for each field. A token looks like a URL with its
own scheme ("x-newsletter:email"), which matters twice: it holds no space, which lxml
would URL-escape inside href values, and premailer's base_url rewriting leaves URLs with
another scheme alone, so an unsubscribe link survives inlining intact.

The issue is split at its tokens once; each recipient then costs one list copy and one
join, a few microseconds even for a large issue.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsletter.compose.render import Rendered

FIELDS = ("name", "email", "unsubscribe_url")
TOKENS = {field: f"x-newsletter:{field}" for field in FIELDS}
_TOKEN = re.compile(r"x-newsletter:(" + "|".join(FIELDS) + r")\b")


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str = ""
    unsubscribe_url: str = ""


@dataclass(frozen=True)
class Personalized:
    """The issue as one recipient receives it."""

    subject: str
    html: str
    text: str


def split_tokens(content: str) -> list[str]:
    """[literal, field, literal, field, ..., literal]: fields sit at the odd indexes."""
    return _TOKEN.split(content)


def fill(parts: list[str], values: dict[str, str]) -> str:
    out = parts[:]
    out[1::2] = [values[field] for field in parts[1::2]]
    return "".join(out)


def field_values(recipient: Recipient) -> tuple[dict[str, str], dict[str, str]]:
    """The recipient's fields as they go into text, and HTML-escaped as they go into HTML."""
    raw = {
        "name": _one_line(recipient.name),
        "email": _one_line(recipient.email),
        "unsubscribe_url": _one_line(recipient.unsubscribe_url),
    }
    return raw, {field: _escape(value) for field, value in raw.items()}


_HTML_SPECIAL = re.compile(r"[&<>\"']")


def _escape(value: str) -> str:
    """For HTML: escaped, and ASCII like the inlined issue (see inline.ascii_html)."""
    if _HTML_SPECIAL.search(value):
        value = html.escape(value, quote=True)
    return value if value.isascii() else value.encode("ascii", "xmlcharrefreplace").decode()


def personalize(rendered: Rendered, recipient: Recipient) -> Personalized:
    """Fill the recipient's fields: HTML-escaped in the HTML, as they are in the text."""
    raw, escaped = field_values(recipient)
    return Personalized(
        subject=rendered.subject,
        html=fill(rendered.html_parts, escaped),
        text=fill(rendered.text_parts, raw),
    )


def _one_line(value: str) -> str:
    return " ".join(value.split()) if ("\n" in value or "\r" in value) else value
