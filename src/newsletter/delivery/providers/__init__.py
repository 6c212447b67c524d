"""Email providers behind one small interface, found by name.

    outbox     .eml files under .newsletter/outbox/ (the default; no key, no network)
    postmark   POST /email/batch              X-Postmark-Server-Token
    sendgrid   POST /v3/mail/send             Authorization: Bearer
    mailgun    POST /v3/<domain>/messages     HTTP Basic api:<key>
    resend     POST /emails/batch             Authorization: Bearer, Idempotency-Key

Each adapter turns Messages into its provider's documented request and classifies the
answer (sent / retry / rejected) and nothing else; batching across calls, retries and the
ledger belong to the caller. Each adapter module states its provider's facts as constants
(key variable, batch size, request budget, default rate, idempotency) with the doc they
come from, and `PROVIDERS` is built from those constants alone, so each fact has one home.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

import httpx

from newsletter.config import ProviderSettings, Settings
from newsletter.delivery.providers import mailgun, outbox, postmark, resend, sendgrid
from newsletter.delivery.providers._http import make_client
from newsletter.delivery.providers._secrets import unsendable
from newsletter.delivery.providers.base import Options, Provider, SendResult, Status
from newsletter.errors import ConfigError

__all__ = [
    "PROVIDERS",
    "Options",
    "Provider",
    "ProviderInfo",
    "SendResult",
    "Status",
    "api_key",
    "make_client",
    "make_provider",
    "provider_info",
]


@dataclass(frozen=True)
class ProviderInfo:
    """What the rest of the pipeline may know about a provider before making one."""

    key_variable: str  # the provider's conventional environment variable; "" needs none
    create: Callable[[Settings, Options], Provider]
    default_rate: float  # a conservative default, in messages a second, for sends to the list
    max_batch: int  # messages per request, from the provider's documentation
    request_budget: int  # bytes one request should carry at most
    idempotent: bool  # True when sending a batch again cannot deliver it twice
    shares_body: bool  # one body a request (providers/_merge.py), not one a message


class _Adapter(Protocol):
    """The constants and factory every adapter module defines (a module fits structurally)."""

    NAME: str
    KEY_VARIABLE: str
    MAX_BATCH: int
    REQUEST_BUDGET: int
    DEFAULT_RATE: float
    IDEMPOTENT: bool
    SHARES_BODY: bool

    def create(self, settings: Settings, options: Options) -> Provider: ...


def _info(adapter: _Adapter) -> ProviderInfo:
    return ProviderInfo(
        key_variable=adapter.KEY_VARIABLE,
        create=adapter.create,
        default_rate=adapter.DEFAULT_RATE,
        max_batch=adapter.MAX_BATCH,
        request_budget=adapter.REQUEST_BUDGET,
        idempotent=adapter.IDEMPOTENT,
        shares_body=adapter.SHARES_BODY,
    )


_ADAPTERS: tuple[_Adapter, ...] = (outbox, postmark, sendgrid, mailgun, resend)
PROVIDERS: dict[str, ProviderInfo] = {adapter.NAME: _info(adapter) for adapter in _ADAPTERS}


def provider_info(name: str) -> ProviderInfo:
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ", ".join(PROVIDERS)
        raise ConfigError(f"unknown provider '{name}' (known: {known})") from None


# Environment variables holding secrets besides the provider keys (delivery.tokens reads
# the signing secret; providers/ may not import it, see tests/test_layers.py).
API_KEY_VARIABLE = "NEWSLETTER_API_KEY"
SECRET_VARIABLES = ("NEWSLETTER_SECRET_KEY",)


def api_key(name: str, environ: Mapping[str, str], sandbox: bool = False) -> str:
    """NEWSLETTER_API_KEY, else the provider's own variable; never from a file.

    A key must be able to travel in a header: one with a line break, a control or a
    non-ASCII character is refused here, naming its variable, before any request.
    """
    info = provider_info(name)
    if not info.key_variable:
        return ""
    variable = API_KEY_VARIABLE if environ.get(API_KEY_VARIABLE) else info.key_variable
    key = (environ.get(variable) or "").strip()
    if not key:
        if sandbox and name == "postmark":
            return ""  # the test token needs no key of ours
        raise ConfigError(
            f"no API key for {name}: set {info.key_variable} or {API_KEY_VARIABLE} "
            "in the environment"
        )
    wrong = unsendable(key)
    if wrong:
        raise ConfigError(
            f"{variable} holds {wrong}, which no API key has: copy the key again, "
            "without quotes or line breaks"
        )
    return key


def secrets_in(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Every secret value the environment holds: API keys, the signing secret."""
    names = (API_KEY_VARIABLE, *SECRET_VARIABLES, *(i.key_variable for i in PROVIDERS.values()))
    return tuple(environ[n] for n in dict.fromkeys(names) if n and environ.get(n))


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
    options = Options(client, key, sandbox, idempotency_scope, secrets=secrets_in(environ))
    return info.create(settings, options)
