"""Addressing the issue to one subscriber: their fields, a signed unsubscribe link, headers.

The issue was rendered and inlined once; here each recipient costs a join of its
pre-split parts (compose.personalize) and an HMAC for the link (tokens).
"""

from __future__ import annotations

from newsletter.compose.message import Message, build_message
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
        self.base = settings.unsubscribe_url

    def message(self, subscriber_id: int, email: str, name: str) -> Message:
        token = unsubscribe_token(subscriber_id, self.issue, self.secret)
        recipient = Recipient(email=email, name=name, unsubscribe_url=f"{self.base}?token={token}")
        return build_message(self.settings, self.issue, self.rendered, recipient)
