"""One error tree for the whole library.

    NewsletterError                 anything the user can fix; the CLI prints one line, exit 1
    ├── ConfigError                 newsletter.toml, environment variables, workspace lookup
    ├── ContentError                articles and issues (file, line, key in the message)
    │   ├── FrontMatterError        an article's YAML front matter
    │   └── TemplateError           Jinja2 templates (template name and line)
    ├── SubscriberError             the list: addresses, imports, statuses
    └── ProviderError               an email provider (provider, HTTP status, body excerpt)
        ├── ProviderAuthError       the provider rejected the key
        └── RecipientsRejected      every recipient of a batch was refused

Anything else that escapes is a bug and may show a traceback.
"""

from __future__ import annotations


class NewsletterError(Exception):
    """Base of every error the user can act on; its text says how to fix it."""


class ConfigError(NewsletterError):
    pass


class ContentError(NewsletterError):
    pass


class FrontMatterError(ContentError):
    pass


class TemplateError(ContentError):
    pass


class SubscriberError(NewsletterError):
    pass


class ProviderError(NewsletterError):
    def __init__(
        self, message: str, *, provider: str = "", status: int | None = None, body: str = ""
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.body = body


class ProviderAuthError(ProviderError):
    pass


class RecipientsRejected(ProviderError):
    pass
