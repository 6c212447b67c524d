"""The plain-text part: there, and saying as much as the HTML.

Some readers and many spam filters read it; a missing or stub text part is a spam signal
(SpamAssassin's MIME_HTML_ONLY) and leaves plain-text readers with nothing.
"""

from __future__ import annotations

from typing import Any

from newsletter.checks.email import BuiltEmail
from newsletter.checks.findings import Found, Severity, rule

# The text part may be shorter (no alt texts, no navigation), not half as long.
SHORTEST_SHARE = 0.5
_HIDDEN = frozenset({"head", "style", "script", "title"})


def _text_part(email: BuiltEmail) -> str:
    part = email.message.get_body(preferencelist=("plain",))
    if part is None or part.get_content_type() != "text/plain":
        return ""
    content: str = part.get_content()
    return content


@rule("text-missing", Severity.ERROR, "the message has no plain-text part")
def text_missing(email: BuiltEmail) -> Found:
    if not _text_part(email).strip():
        yield (
            "the message has no plain-text part, or an empty one; check the issue's "
            f"{email.issue.template}.txt template",
            email.text_place(),
        )


def visible_words(email: BuiltEmail) -> int:
    """Words a reader sees in the HTML body (not the hidden preheader)."""
    body = email.doc.find("body")
    return 0 if body is None else _words(body, hidden=False)


def _words(element: Any, hidden: bool) -> int:
    style = (element.get("style") or "").replace(" ", "").lower()
    hidden = hidden or element.tag in _HIDDEN or "display:none" in style
    count = 0 if hidden else len((element.text or "").split())
    for child in element:
        if isinstance(child.tag, str):
            count += _words(child, hidden)
        if not hidden:
            count += len((child.tail or "").split())
    return count


@rule("text-short", Severity.WARNING, "the text part is much shorter than the HTML")
def text_short(email: BuiltEmail) -> Found:
    text = _text_part(email)
    if not text.strip():
        return  # text-missing says so
    html_words, text_words = visible_words(email), len(text.split())
    if html_words and text_words < SHORTEST_SHARE * html_words:
        yield (
            f"the text part has {text_words} words, the HTML {html_words}: plain-text "
            f"readers miss most of the issue; check {email.issue.template}.txt",
            email.text_place(),
        )
