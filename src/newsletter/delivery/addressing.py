"""Addressing the issue to one subscriber: their fields, a signed unsubscribe link, headers.

The issue was rendered and inlined once, and what every message of the send shares (the
letterhead: sender, List-ID, the Message-ID's left part) is worked out once here; each
recipient then costs an HMAC for the link (tokens), a hash for the Message-ID and one
small object. Headers and bodies are made only if a provider asks (compose.message).
"""

from __future__ import annotations

from collections.abc import Mapping

from newsletter.compose.message import Letterhead, Message
from newsletter.compose.personalize import Recipient
from newsletter.compose.render import Rendered
from newsletter.config import Settings
from newsletter.delivery.tokens import unsubscribe_token


class Addresser:
    """Makes the message of one issue for any subscriber of the list."""

    def __init__(self, settings: Settings, issue: str, rendered: Rendered, secret: str) -> None:
        self.settings = settings
        self.issue = issue
        self.rendered = rendered
        self.secret = secret
        self.base = f"{settings.unsubscribe_url}?token="
        self.letterhead = Letterhead.of(settings, issue, rendered)

    def message(
        self, subscriber_id: int, email: str, name: str, fields: Mapping[str, str] | None = None
    ) -> Message:
        """`fields`: the subscriber's personal fields, keyed by compose.fields.field_key."""
        url = self.base + unsubscribe_token(subscriber_id, self.issue, self.secret)
        return self.letterhead.message(Recipient(email, name, url, fields or {}))
