"""A provider with its HTTP client, open for the length of a send or a test send."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from newsletter.config import Settings
from newsletter.delivery.providers import Provider, make_client, make_provider


@contextlib.contextmanager
def open_provider(
    settings: Settings,
    *,
    environ: Mapping[str, str],
    name: str | None = None,
    sandbox: bool = False,
    idempotency_scope: str = "newsletter",
) -> Iterator[Provider]:
    """The configured provider (or `name`), its one client closed when the block ends."""
    # A plain http:// base_url (only ever to this machine) needs no TLS certificates.
    plain_http = (name is None or name == settings.provider.name) and (
        settings.provider.base_url.startswith("http://")
    )
    with make_client(settings.provider.timeout, plain_http=plain_http) as client:
        yield make_provider(
            settings,
            name,
            client=client,
            environ=environ,
            sandbox=sandbox,
            idempotency_scope=idempotency_scope,
        )
