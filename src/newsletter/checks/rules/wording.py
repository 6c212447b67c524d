"""The words an inbox shows first, and words that were never meant to go out.

An empty subject needs no rule here: the issue does not build without one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from newsletter.checks.email import BuiltEmail
from newsletter.checks.findings import Found, Place, Severity, rule
from newsletter.compose.render import environment

# Desktop inboxes show about the first 70 to 80 characters of a subject, phones fewer.
SUBJECT_MAX = 80
# "TK" is the editors' mark for "to come"; lorem ipsum is filler text.
_FILLER = re.compile(r"\bTK\b|(?i:lorem ipsum)")
# Jinja2 syntax that reached the finished email. A per-recipient token is this build's
# own ("x-newsletter-<nonce>:"): an article may write "x-newsletter:email", which stays
# text on purpose (compose.personalize), so only the nonce's tokens are leftovers.
_JINJA = r"\{\{|\}\}|\{%|%\}|%7B%7B|%7B%25"


def _leftover(email: BuiltEmail) -> re.Pattern[str]:
    nonce = email.rendered.nonce
    token = rf"|x-newsletter-{re.escape(nonce)}:" if nonce else ""
    return re.compile(_JINJA + token, re.IGNORECASE)


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


@rule("subject-long", Severity.WARNING, f"the subject is over {SUBJECT_MAX} characters")
def subject_long(email: BuiltEmail) -> Found:
    length = len(email.issue.subject)
    if length > SUBJECT_MAX:
        yield (
            f"the subject is {length} characters; inboxes cut it after about {SUBJECT_MAX}",
            email.issue_place("subject"),
        )


@rule("preheader-missing", Severity.WARNING, "no preheader")
def preheader_missing(email: BuiltEmail) -> Found:
    if not email.issue.preheader.strip():
        yield (
            "no preheader: inboxes show the first text of the email instead "
            '("View this email in your browser"); set preheader in issue.toml',
            email.issue_place("preheader"),
        )


@rule("preheader-repeats-subject", Severity.WARNING, "the preheader repeats the subject")
def preheader_repeats_subject(email: BuiltEmail) -> Found:
    subject, preheader = _plain(email.issue.subject), _plain(email.issue.preheader)
    if subject and preheader and (subject.startswith(preheader) or preheader.startswith(subject)):
        yield (
            "the preheader repeats the subject, which the inbox shows beside it; "
            "say something the subject does not",
            email.issue_place("preheader"),
        )


def _template_files(email: BuiltEmail) -> Iterator[Path]:
    env = environment(email.settings)
    for name in email.rendered.templates:
        try:
            _, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - a template gone since the build: nothing to scan
            continue
        if filename:
            yield Path(filename)


@rule("placeholder-text", Severity.ERROR, 'filler left in: "TK" or lorem ipsum')
def placeholder_text(email: BuiltEmail) -> Found:
    paths = [*email.sources, *_template_files(email)]
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for number, line in enumerate(lines, 1):
            for match in _FILLER.finditer(line):
                yield (
                    f'"{match.group(0)}" is a placeholder left in the text',
                    Place(email.shown(path), line=number),
                )


@rule("template-leftover", Severity.ERROR, 'an unrendered "{{", "{%" or field token')
def template_leftover(email: BuiltEmail) -> Found:
    leftover = _leftover(email)
    for element in email.doc.iter():
        if not isinstance(element.tag, str) or element.tag in ("style", "script"):
            continue
        texts: list[Any] = [element.text, *element.attrib.values()]
        texts += [child.tail for child in element]
        for text in texts:
            match = leftover.search(text or "")
            if match:
                yield (
                    f'"{match.group(0)}" reached the email unrendered: {_around(text, match)}',
                    email.html_place(element),
                )
                break
    for number, line in enumerate(email.text.splitlines(), 1):
        match = leftover.search(line)
        if match:
            yield (
                f'"{match.group(0)}" reached the text part unrendered: {_around(line, match)}',
                email.text_place(number),
            )


def _around(text: str, match: re.Match[str]) -> str:
    start, end = max(match.start() - 20, 0), min(match.end() + 20, len(text))
    return repr(" ".join(text[start:end].split()))
