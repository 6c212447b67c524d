"""Provider-side merging, for providers that personalize a shared body themselves.

SendGrid (substitutions) and Mailgun (recipient-variables) take one HTML and one text body
per request plus each recipient's values, instead of a whole body per recipient. The issue
already holds per-recipient tokens, so the shared body is the issue with the provider's
merge tags in their place: HTML fields get HTML-escaped values, text fields raw ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from newsletter.compose.message import Message
from newsletter.compose.personalize import FIELDS, field_values, fill


def shared_body(batch: Sequence[Message], tag: Callable[[str], str]) -> tuple[str, str] | None:
    """(html, text) with merge tags, if the whole batch is one issue with one subject."""
    first = batch[0]
    rendered = first.rendered
    if rendered is None or any(
        m.rendered is not rendered or m.subject != first.subject for m in batch
    ):
        return None
    html = fill(rendered.html_parts, {f: tag(f"{f}_html") for f in FIELDS})
    text = fill(rendered.text_parts, {f: tag(f) for f in FIELDS})
    return html, text


def merge_values(message: Message) -> dict[str, str]:
    """A recipient's values for the merge tags: raw for text, `<field>_html` for HTML."""
    raw, escaped = field_values(message.recipient)
    return {**raw, **{f"{field}_html": value for field, value in escaped.items()}}
