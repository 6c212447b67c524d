"""What a build is made from, as one hash, so that a send knows its build is today's.

Modification times cannot tell: a deleted article leaves nothing newer behind, `cp -p`
brings back an older time, and a setting in the environment has no time at all. So a
build records a SHA-256 of its inputs: the issue as issue.toml gives it, the bytes of each
article file and of each local image it shows, every setting that can change the email,
the package's version, and the templates it rendered (by name and content, wherever the
loader found them). A build whose recorded hash differs from today's is rebuilt before
anything is sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from newsletter import __version__
from newsletter.compose.issue import Issue
from newsletter.config import Settings

# Settings that reach the email, and those that cannot; a test holds them to Settings.
OUTPUT_SETTINGS = (
    "name",
    "sender",
    "reply_to",
    "site_url",
    "postal_address",
    "language",
    "direction",
    "list_id",
    "unsubscribe_url",
    "unsubscribe_mailto",
    "archive_url",
    "drop_lines",
)
UNUSED_SETTINGS = ("root", "database_url", "provider", "sending", "topics", "webhooks")


def inputs_digest(issue: Issue, settings: Settings) -> str:
    """Everything but the templates: the issue, its article files and the settings."""
    record = {
        "version": __version__,
        "settings": {name: _plain(getattr(settings, name)) for name in OUTPUT_SETTINGS},
        "issue": {
            "key": issue.key,
            "subject": issue.subject,
            "preheader": issue.preheader,
            "intro": issue.intro,
            "date": issue.date.isoformat(),
            "template": issue.template,
        },
        "articles": [[a.source.name, a.digest] for a in issue.articles],
    }
    images = [[a.source.name, i.ref, i.digest] for a in issue.articles for i in a.images]
    if images:  # only then: the hash of an issue without local images stays as it was
        record["images"] = images
    return _sha256(record)


def token_nonce(inputs: str) -> str:
    """The per-build part of the recipient tokens: no article can contain its own hash."""
    return _sha256(["tokens", inputs])[:20]


def source_hash(inputs: str, templates: Mapping[str, str]) -> str:
    """The hash a build records: its inputs and each template's name and content digest."""
    return _sha256([inputs, sorted(templates.items())])


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return str(value)  # an email.headerregistry.Address


def _sha256(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
