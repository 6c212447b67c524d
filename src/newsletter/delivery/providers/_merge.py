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

from newsletter.compose.message import Message
from newsletter.compose.personalize import FIELDS, field_values, fill

Rewrite = Callable[[str], str]


def _as_is(text: str) -> str:
    return text


def fresh_secret() -> str:
    """The random part of one request's merge tags: 64 bits no article can guess."""
    return secrets.token_hex(8)


def shares_body(batch: Sequence[Message]) -> bool:
    """Whether the whole batch is one issue with one subject, so one body can serve it."""
    first = batch[0]
    rendered = first.rendered
    return rendered is not None and all(
        m.rendered is rendered and m.subject == first.subject for m in batch
    )


def shared_body(
    batch: Sequence[Message],
    tag: Callable[[str], str],
    *,
    html_literal: Rewrite = _as_is,
    text_literal: Rewrite = _as_is,
) -> tuple[str, str] | None:
    """(html, text) with merge tags, if the whole batch is one issue with one subject.

    Only the literal text between the fields goes through `html_literal`/`text_literal`:
    the tags themselves must reach the provider intact.
    """
    if not shares_body(batch):
        return None
    rendered = batch[0].rendered
    html = fill(_literals(rendered.html_parts, html_literal), {f: tag(f"{f}_html") for f in FIELDS})
    text = fill(_literals(rendered.text_parts, text_literal), {f: tag(f) for f in FIELDS})
    return html, text


def _literals(parts: list[str], rewrite: Rewrite) -> list[str]:
    """[literal, field, literal, ...] with each literal rewritten, the fields left alone."""
    if rewrite is _as_is:
        return parts
    out = parts[:]
    out[0::2] = [rewrite(part) for part in parts[0::2]]
    return out


def merge_values(message: Message) -> dict[str, str]:
    """A recipient's values for the merge tags: raw for text, `<field>_html` for HTML."""
    raw, escaped = field_values(message.recipient)
    return {**raw, **{f"{field}_html": value for field, value in escaped.items()}}
