"""Email providers behind one small interface, found by name.

    outbox     .eml files under .newsletter/outbox/ (the default; no key, no network)
    postmark   POST /email/batch              X-Postmark-Server-Token
    sendgrid   POST /v3/mail/send             Authorization: Bearer
    mailgun    POST /v3/<domain>/messages     HTTP Basic api:<key>
    resend     POST /emails/batch             Authorization: Bearer, Idempotency-Key

Each adapter turns Messages into its provider's documented request and classifies the
answer (sent / retry / rejected) and nothing else; batching across calls, retries and the
ledger belong to the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import httpx

from newsletter.config import ProviderSettings, Settings
from newsletter.delivery.providers._http import make_client
from newsletter.delivery.providers.base import Provider, SendResult, Status
from newsletter.delivery.providers.mailgun import MailgunProvider
from newsletter.delivery.providers.outbox import OutboxProvider
from newsletter.delivery.providers.postmark import PostmarkProvider
from newsletter.delivery.providers.resend import ResendProvider
from newsletter.delivery.providers.sendgrid import SendGridProvider
from newsletter.errors import ConfigError

__all__ = [
    "PROVIDERS",
    "Provider",
    "SendResult",
    "Status",
    "api_key",
    "make_client",
    "make_provider",
]


@dataclass(frozen=True)
class Options:
    """What a factory gets besides the settings."""

    client: httpx.Client
    key: str
    sandbox: bool
    idempotency_scope: str


@dataclass(frozen=True)
class ProviderInfo:
    key_variable: str  # the provider's conventional environment variable; "" needs none
    create: Callable[[Settings, Options], Provider]
    # A conservative default rate, in messages per second, for sends to the list.
    default_rate: float
    max_batch: int  # messages per request, from the provider's documentation


def _mailgun(settings: Settings, o: Options) -> Provider:
    p = settings.provider
    if not p.domain:
        raise ConfigError(
            "Mailgun needs the sending domain: set [provider] domain in newsletter.toml "
            "or NEWSLETTER_PROVIDER_DOMAIN"
        )
    return MailgunProvider(
        o.client, o.key, domain=p.domain, region=p.region, base_url=p.base_url, sandbox=o.sandbox
    )


PROVIDERS: dict[str, ProviderInfo] = {
    "outbox": ProviderInfo(
        "", lambda s, o: OutboxProvider(s.state_dir / "outbox"), 1000.0, OutboxProvider.max_batch
    ),
    "postmark": ProviderInfo(
        "POSTMARK_SERVER_TOKEN",
        lambda s, o: PostmarkProvider(
            o.client,
            o.key,
            base_url=s.provider.base_url,
            message_stream=s.provider.message_stream,
            sandbox=o.sandbox,
        ),
        50.0,
        PostmarkProvider.max_batch,
    ),
    "sendgrid": ProviderInfo(
        "SENDGRID_API_KEY",
        lambda s, o: SendGridProvider(
            o.client, o.key, base_url=s.provider.base_url, sandbox=o.sandbox
        ),
        50.0,
        SendGridProvider.max_batch,
    ),
    "mailgun": ProviderInfo("MAILGUN_API_KEY", _mailgun, 50.0, MailgunProvider.max_batch),
    "resend": ProviderInfo(
        "RESEND_API_KEY",
        lambda s, o: ResendProvider(
            o.client,
            o.key,
            base_url=s.provider.base_url,
            sandbox=o.sandbox,
            idempotency_scope=o.idempotency_scope,
        ),
        # Resend allows 2 requests a second per team by default; 100 emails a request.
        100.0,
        ResendProvider.max_batch,
    ),
}


def provider_info(name: str) -> ProviderInfo:
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ", ".join(PROVIDERS)
        raise ConfigError(f"unknown provider '{name}' (known: {known})") from None


def api_key(name: str, environ: Mapping[str, str], sandbox: bool = False) -> str:
    """NEWSLETTER_API_KEY, else the provider's own variable; never from a file."""
    info = provider_info(name)
    if not info.key_variable:
        return ""
    key = environ.get("NEWSLETTER_API_KEY") or environ.get(info.key_variable) or ""
    if not key.strip():
        if sandbox and name == "postmark":
            return ""  # the test token needs no key of ours
        raise ConfigError(
            f"no API key for {name}: set {info.key_variable} or NEWSLETTER_API_KEY "
            "in the environment"
        )
    return key.strip()


def make_provider(
    settings: Settings,
    name: str | None = None,
    *,
    client: httpx.Client,
    environ: Mapping[str, str],
    sandbox: bool = False,
    idempotency_scope: str = "newsletter",
) -> Provider:
    chosen = (name or settings.provider.name).lower()
    info = provider_info(chosen)
    if chosen != settings.provider.name:
        # [provider] base_url and the like belong to the configured provider, not this one.
        settings = replace(settings, provider=ProviderSettings(name=chosen))
    key = api_key(chosen, environ, sandbox)
    return info.create(settings, Options(client, key, sandbox, idempotency_scope))
