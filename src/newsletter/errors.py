"""One error tree for the whole library.

    NewsletterError                 anything the user can fix; the CLI prints one line, exit 1
    ├── UsageError                  options of a command that do not fit together
    ├── ConfigError                 newsletter.toml, environment variables, workspace lookup
    ├── StorageError                the database: cannot be opened, is locked, refused a write
    ├── ContentError                articles and issues (file, line, key in the message)
    │   ├── FrontMatterError        an article's YAML front matter
    │   └── TemplateError           Jinja2 templates (template name and line)
    ├── SubscriberError             the list: addresses, statuses, segments
    │   └── ImportRejected          a CSV import refused whole; carries the report of every row
    ├── SendError                   sending to the list: nobody to send to, a changed issue,
    │                               another sender at work
    └── ProviderError               an email provider (provider, HTTP status, body excerpt)
        ├── ProviderAuthError       the provider rejected the key
        └── RecipientsRejected      every recipient of several batches in a row was refused

Every raise names one of these classes, and a re-raise chains its cause (`from exc`), so
`--debug` shows the SQL, YAML or HTTP error underneath while the one-line message stays
the user's. Anything else that escapes is a bug and may show a traceback.
"""

from __future__ import annotations

from typing import Any


class NewsletterError(Exception):
    """Base of every error the user can act on; its text says how to fix it."""


class UsageError(NewsletterError):
    """A command's options contradict each other or need a terminal that is not there."""


class ConfigError(NewsletterError):
    """A setting is missing or wrong, in newsletter.toml or the environment."""


class StorageError(NewsletterError):
    """The database could not be opened, was locked, or refused a statement."""


class ContentError(NewsletterError):
    """An issue or article cannot be read or built; the message names file and line."""


class FrontMatterError(ContentError):
    """An article's YAML front matter is broken or has unknown keys."""


class TemplateError(ContentError):
    """A Jinja2 template is missing, malformed or uses an undefined variable."""


class SubscriberError(NewsletterError):
    """An address, status, tag or segment is invalid, or the list refuses a change."""


class ImportRejected(SubscriberError):
    """A CSV import had invalid rows and nothing was imported; `report` lists them."""

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report


class SendError(NewsletterError):
    """A send to the list cannot start or go on (nobody to send to, a changed issue...)."""


class ProviderError(NewsletterError):
    """An email provider refused or failed; carries the provider, HTTP status and body."""

    def __init__(
        self, message: str, *, provider: str = "", status: int | None = None, body: str = ""
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.body = body


class ProviderAuthError(ProviderError):
    """The provider rejected the API key (HTTP 401 or 403): nothing more can be sent."""


class RecipientsRejected(ProviderError):
    """The provider refused every message of several batches in a row; the send stopped."""
