"""The plan of a send: to how many, through what, how fast, in batches of what size.

Everything that would stop a send before its first message is checked here, so that the
command line can refuse with one line before it shows the plan or asks anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.audience.subscribers import count_audience
from newsletter.compose.build import load_built
from newsletter.compose.personalize import readable
from newsletter.compose.render import Rendered
from newsletter.config import KEYS, Settings
from newsletter.delivery.ledger import find_send
from newsletter.delivery.providers import api_key, provider_info
from newsletter.delivery.senders import others_at_work
from newsletter.delivery.status import ledger_status
from newsletter.delivery.tokens import secret_key
from newsletter.errors import ConfigError, SendError, UsageError
from newsletter.storage import open_engine


@dataclass(frozen=True)
class Plan:
    issue: str
    subject: str
    provider: str
    audience: int  # messages this run will send, at most
    already_sent: int
    uncertain: int  # lost by an earlier run: resent only with --retry-uncertain
    rate: float
    concurrency: int
    batch_size: int
    resuming: bool
    build: str = ""  # which build is sent: its source hash, shortened
    in_flight_elsewhere: int = 0  # rows other live senders hold
    elsewhere: tuple[str, ...] = ()  # those senders, "pid N on host"

    @property
    def estimate(self) -> float:
        return self.audience / self.rate if self.rate else 0.0


def checked_options(rate: float | None, concurrency: int | None) -> tuple[float | None, int | None]:
    """--rate and --concurrency checked like the [sending] keys they override."""
    return _checked("--rate", "sending.rate", rate), _checked(
        "--concurrency", "sending.concurrency", concurrency
    )


def _checked(flag: str, path: str, value: Any) -> Any:
    if value is None:
        return None
    key = next(k for k in KEYS if k.path == path)
    try:
        return key.check(value)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from exc


def nobody(segment: str) -> SendError:
    who = f"in segment {segment!r}" if segment else "on the list"
    return SendError(
        f"nobody to send to: no active subscribers {who} "
        "(add some with `newsletter subscribers import`)"
    )


def resolve_rate(settings: Settings, provider: str, rate: float | None) -> float:
    """--rate, else [sending] rate, else the provider's conservative default."""
    return rate or settings.sending.rate or provider_info(provider).default_rate


def batch_size(settings: Settings, provider: str, rendered: Rendered | None = None) -> int:
    """The provider's batch limit, or less if configured, or if messages are large.

    A batch of 500 fifty-kilobyte messages would be 26 MB of JSON, and several of those
    in flight cost more memory than they gain speed: a request carries at most the
    provider's request budget. A provider that takes one body a request (SendGrid,
    Mailgun) carries the body once, and each recipient's headers and values.
    """
    info = provider_info(provider)
    size = info.max_batch
    if settings.sending.batch_size:
        size = min(size, settings.sending.batch_size)
    if rendered is not None:
        body = len(rendered.html.encode()) + len(rendered.text.encode())
        if info.shares_body:
            size = min(size, max(1, (info.request_budget - body) // PER_RECIPIENT))
        else:
            size = min(size, max(1, info.request_budget // (body + PER_RECIPIENT)))
    return size


# Bytes a message carries besides the issue's body, at most: its recipient, headers
# (with the signed unsubscribe link) and personal fields.
PER_RECIPIENT = 2048


def plan_send(
    settings: Settings,
    folder: Path,
    *,
    environ: Mapping[str, str],
    segment: str = "",
    rate: float | None = None,
    concurrency: int | None = None,
) -> Plan:
    """What `send` would do; raises for everything that would stop it before it starts.

    The issue builds, the provider is known and has its key, the signing secret is set,
    unsubscribe links are https for a real provider, and somebody is on the list.
    """
    rate, concurrency = checked_options(rate, concurrency)
    issue, rendered = load_built(settings, folder)
    provider = settings.provider.name
    api_key(provider, environ)
    secret_key(environ, provider)
    if provider != "outbox" and not settings.unsubscribe_url.startswith("https://"):
        raise ConfigError(
            f"unsubscribe links must be https:// for one-click unsubscribe (RFC 8058), not "
            f"{settings.unsubscribe_url}; set unsubscribe_url or site_url in newsletter.toml"
        )
    engine = open_engine(settings)
    try:
        record = find_send(engine, issue.key)
        uncertain = 0
        if record is None:
            audience, sent = count_audience(engine, segment), 0
            if audience == 0:
                raise nobody(segment)
        else:
            status = ledger_status(engine, issue.key, settings.sending.lease)
            audience, sent = status.counts["pending"], status.counts["sent"]
            uncertain = status.counts["uncertain"]
        others = others_at_work(engine, issue.key)
    finally:
        engine.dispose()
    return Plan(
        issue=issue.key,
        subject=readable(rendered.subject_parts),  # personal fields as written
        provider=provider,
        audience=audience,
        already_sent=sent,
        uncertain=uncertain,
        rate=resolve_rate(settings, provider, rate),
        concurrency=concurrency or settings.sending.concurrency,
        batch_size=batch_size(settings, provider, rendered),
        resuming=record is not None,
        build=rendered.source_hash[:12],
        in_flight_elsewhere=sum(o.in_flight for o in others),
        elsewhere=tuple(str(o) for o in others),
    )
