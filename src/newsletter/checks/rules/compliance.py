"""What the law and the big inbox providers ask of every bulk email.

A visible unsubscribe link in the body and the URL in the text part (Gmail, Yahoo,
CAN-SPAM); RFC 8058 one-click headers with an https URL (Gmail and Yahoo since 2024);
the sender's postal address (CAN-SPAM); and a From that names who sends it.
"""

from __future__ import annotations

import re

from newsletter.checks.email import BuiltEmail
from newsletter.checks.findings import Found, Severity, rule

_ANGLE_URLS = re.compile(r"<([^>]*)>")


@rule("unsubscribe-link", Severity.ERROR, "no unsubscribe link in the HTML or the text")
def unsubscribe_link(email: BuiltEmail) -> Found:
    base = email.settings.unsubscribe_url
    hrefs = [(a.get("href") or "").strip() for a in email.doc.iter("a")]
    if not any(href.startswith(base) for href in hrefs):
        yield (
            f"the HTML has no link to {base}; the template must show {{{{ unsubscribe_url }}}} "
            "as a link",
            email.html_place(email.doc.find("body")),
        )
    if email.text.strip() and base not in email.text:  # no text at all: text-missing
        yield (
            f"the text part does not show {base}; the text template must include "
            "{{ unsubscribe_url }}",
            email.text_place(),
        )


@rule("list-unsubscribe", Severity.ERROR, "no one-click List-Unsubscribe headers (RFC 8058)")
def list_unsubscribe(email: BuiltEmail) -> Found:
    value = email.message.get("List-Unsubscribe")
    if value is None:
        yield "the message has no List-Unsubscribe header", email.header_place("List-Unsubscribe")
    elif not any(url.startswith("https://") for url in _ANGLE_URLS.findall(str(value))):
        yield (
            f"List-Unsubscribe holds no https URL ({value}): Gmail and Yahoo need one for "
            "one-click unsubscribe; make unsubscribe_url (or site_url) https",
            email.header_place("List-Unsubscribe"),
        )
    post = email.message.get("List-Unsubscribe-Post")
    if post is None or str(post).strip() != "List-Unsubscribe=One-Click":
        yield (
            "the message has no List-Unsubscribe-Post: List-Unsubscribe=One-Click header",
            email.header_place("List-Unsubscribe-Post"),
        )


def _words(text: str) -> str:
    return " ".join(text.split())


@rule("postal-address", Severity.ERROR, "no postal address in the email")
def postal_address(email: BuiltEmail) -> Found:
    address = _words(email.settings.postal_address)
    if not address:
        yield (
            "no postal address: set postal_address in newsletter.toml (the law asks for one)",
            email.setting_place("postal_address"),
        )
        return
    body = email.doc.find("body")
    if address not in _words(body.text_content() if body is not None else ""):
        yield (
            "the HTML does not show the postal address; the template must include "
            "{{ newsletter.postal_address }}",
            email.html_place(body),
        )
    if email.text.strip() and address not in _words(email.text):
        yield (
            "the text part does not show the postal address; the text template must "
            "include {{ newsletter.postal_address }}",
            email.text_place(),
        )


@rule("sender-identity", Severity.WARNING, "the From header names nobody")
def sender_identity(email: BuiltEmail) -> Found:
    if not email.settings.sender.display_name.strip():
        yield (
            f"the sender is a bare address ({email.settings.sender.addr_spec}): inboxes show "
            'it instead of a name; write `from = "Name <address>"`',
            email.setting_place("from"),
        )
