"""The workspace still carries what `newsletter init` wrote for the editor to replace.

Only init's literal values fire: example.org and example.com themselves (not a
subdomain such as millbrook.example.org, which the repository's example uses) and the
sample postal address. A sender on a domain nobody owns fails SPF and DMARC, and a
postal address that is not one breaks CAN-SPAM.
"""

from __future__ import annotations

import tomllib
from urllib.parse import urlsplit

from newsletter.checks.email import BuiltEmail
from newsletter.checks.findings import Found, Severity, rule
from newsletter.workspace import STARTER_CONFIG

# The domains RFC 2606 reserves for examples, which init's newsletter.toml uses.
PLACEHOLDER_DOMAINS = frozenset({"example.org", "example.com"})
SAMPLE_POSTAL_ADDRESS: str = tomllib.loads(STARTER_CONFIG)["postal_address"]


def _placeholder_domain(domain: str) -> bool:
    return domain.lower().rstrip(".") in PLACEHOLDER_DOMAINS


@rule("placeholder-sender", Severity.ERROR, "the sender is still init's example.org address")
def placeholder_sender(email: BuiltEmail) -> Found:
    settings = email.settings
    if _placeholder_domain(settings.sender.domain):
        yield (
            f"the sender {settings.sender.addr_spec} is init's placeholder; "
            "set `from` to an address on your own domain",
            email.setting_place("from"),
        )
    if settings.reply_to is not None and _placeholder_domain(settings.reply_to.domain):
        yield (
            f"replies go to {settings.reply_to.addr_spec}, init's placeholder; "
            "set `reply_to` to a mailbox someone reads",
            email.setting_place("reply_to"),
        )


@rule("placeholder-site", Severity.ERROR, "the site URL is still init's example.org")
def placeholder_site(email: BuiltEmail) -> Found:
    host = urlsplit(email.settings.site_url).hostname or ""
    if _placeholder_domain(host):
        yield (
            f"site_url {email.settings.site_url} is init's placeholder: links, images and "
            "the unsubscribe page would point there; set it to your website",
            email.setting_place("site_url"),
        )


@rule("placeholder-address", Severity.ERROR, "the postal address is init's sample")
def placeholder_address(email: BuiltEmail) -> Found:
    if email.settings.postal_address.strip() == SAMPLE_POSTAL_ADDRESS:
        yield (
            f'postal_address is the sample "{SAMPLE_POSTAL_ADDRESS}"; '
            "the law asks for your real postal address in every issue",
            email.setting_place("postal_address"),
        )
