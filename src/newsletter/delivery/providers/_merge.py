"""Provider-side merging, for providers that personalize a shared body themselves.

SendGrid (substitutions) and Mailgun (recipient-variables) take one HTML and one text body
per request plus each recipient's values, instead of a whole body per recipient. The issue
already holds per-recipient tokens, so the shared body is the issue with the provider's
merge tags in their place: HTML fields get HTML-escaped values, text fields raw ones.

The provider fills a tag wherever it finds one, in an article's text as much as in our
field positions. So every request names its tags with a fresh random secret that no
article can contain, and each adapter may rewrite the literal text between the fields
(`html_literal`, `text_literal`) where the provider has merge syntax of its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

from newsletter.compose.message import Letterhead, Message
from newsletter.compose.personalize import FIELDS, field_values, fill
from newsletter.compose.render import Rendered

Rewrite = Callable[[str], str]
# The headers that differ from one recipient to the next: they travel with each
# recipient's values, the others once a request.
PER_RECIPIENT_HEADERS = ("Message-ID", "List-Unsubscribe")


def _as_is(text: str) -> str:
    return text


def fresh_secret() -> str:
    """The random part of one request's merge tags: 64 bits no article can guess."""
    return secrets.token_hex(8)


def shares_body(batch: Sequence[Message]) -> bool:
    """Whether one body and one set of request-wide fields (the sender, the subject, the
    headers every message carries) serve the whole batch: one issue, to one list."""
    first = batch[0].letterhead
    return all(m.letterhead is first or _alike(m.letterhead, first) for m in batch)


def _alike(one: Letterhead, other: Letterhead) -> bool:
    """Letterheads that differ at most in what each message has of its own (test copies
    make one a message, each with its own Message-IDs)."""
    return (
        one.rendered is other.rendered
        and (one.issue, one.sender, one.reply_to, one.list_id, one.mailto, one.subject_prefix)
        == (other.issue, other.sender, other.reply_to, other.list_id, other.mailto,
            other.subject_prefix)
    )  # fmt: skip


def merge_names(rendered: Rendered) -> dict[str, str]:
    """The merge variable of each field the issue uses: its name, or s<n> for a personal
    field (whose token part holds dots and hex no provider's syntax should see)."""
    names = {name: name for name in FIELDS}
    names.update({slot.key: f"s{n}" for n, slot in enumerate(rendered.slots)})
    return names


def shared_body(
    batch: Sequence[Message],
    tag: Callable[[str], str],
    *,
    html_literal: Rewrite = _as_is,
    text_literal: Rewrite = _as_is,
) -> tuple[str, str, str] | None:
    """(subject, html, text) with merge tags, if the whole batch is one issue with one
    subject.

    Only the literal text between the fields goes through `html_literal`/`text_literal`:
    the tags themselves must reach the provider intact.
    """
    if not shares_body(batch):
        return None
    first = batch[0]
    rendered = first.rendered
    names = merge_names(rendered)
    html_tags = {key: tag(f"{name}_html") for key, name in names.items()}
    text_tags = {key: tag(name) for key, name in names.items()}
    html = fill(_literals(rendered.html_parts, html_literal), html_tags)
    text = fill(_literals(rendered.text_parts, text_literal), text_tags)
    subject = fill(_literals(rendered.subject_parts, text_literal), text_tags)
    return text_literal(first.letterhead.subject_prefix) + subject, html, text


def _literals(parts: list[str], rewrite: Rewrite) -> list[str]:
    """[literal, field, literal, ...] with each literal rewritten, the fields left alone."""
    if rewrite is _as_is:
        return parts
    out = parts[:]
    out[0::2] = [rewrite(part) for part in parts[0::2]]
    return out


class MergeFields:
    """The values one request's recipients need, under the keys the provider reads them
    by: only the fields the shared body holds, worked out once per request.

    Once per recipient of a batch, on a send's hot path: the names, tags and which value
    goes where are looked up here once, not for every message, and no value is sent for
    a field the issue never uses.
    """

    def __init__(
        self,
        rendered: Rendered,
        key: Callable[[str], str],
        *,
        html_value: Rewrite = _as_is,
        text_value: Rewrite = _as_is,
    ) -> None:
        names = merge_names(rendered)
        # Values made literal as the shared body's text is (see shared_body).
        self.html_value, self.text_value = html_value, text_value
        self.slots = rendered.slots
        in_html = dict.fromkeys(rendered.html_parts[1::2])
        in_text = dict.fromkeys([*rendered.text_parts[1::2], *rendered.subject_parts[1::2]])
        self.html = [(key(f"{names[field]}_html"), field) for field in in_html]
        self.text = [(key(names[field]), field) for field in in_text]

    def values(self, message: Message) -> dict[str, str]:
        raw, escaped = field_values(message.recipient, self.slots)
        html, text = self.html_value, self.text_value
        out = {key: html(escaped[field]) for key, field in self.html}
        for key, field in self.text:
            out[key] = text(raw[field])
        return out
