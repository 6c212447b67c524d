"""Provider webhooks: bounces, complaints and unsubscribes become subscriber statuses.

    auth.py       refusals, the body limit, basic auth, the timestamp window
    reading.py    typed fields, times and keys out of a provider's JSON
    postmark.py, sendgrid.py, mailgun.py, resend.py
                  one provider each: how its requests are signed, how its events read
    receive.py    the endpoint they share: authenticate, read, store and apply

The statuses change in the audience layer (audience/feedback.py); nothing here writes
SQL. A provider's route exists only when its secret is set in the environment (its own,
or NEWSLETTER_WEBHOOK_AUTH for basic auth; Postmark has only the latter), so an
unconfigured webhook answers 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Executor
from functools import partial

from starlette.routing import BaseRoute, Route

from newsletter.audience.feedback import Outcome, Report, SoftBounces, record_report_groups
from newsletter.config import Settings
from newsletter.storage import Database
from newsletter.web.group_commit import GroupCommit
from newsletter.web.webhooks import mailgun, postmark, resend, sendgrid
from newsletter.web.webhooks.auth import BasicAuth
from newsletter.web.webhooks.receive import Provider, WebhookEndpoint

PROVIDERS = ("postmark", "sendgrid", "mailgun", "resend")


def configured(environ: Mapping[str, str]) -> list[Provider]:
    """The providers whose webhook can authenticate a request with today's environment."""
    basic = BasicAuth.from_environ(environ)
    found: list[Provider] = []
    if basic is not None:
        found.append(postmark.PostmarkWebhook())
    for module, make in (
        (sendgrid, sendgrid.SendGridWebhook),
        (mailgun, mailgun.MailgunWebhook),
        (resend, resend.ResendWebhook),
    ):
        secret = environ.get(module.SECRET_VARIABLE, "")
        if secret or basic is not None:
            found.append(make(secret or None))
    return found


# Events in one group commit: a few SendGrid batches, or a thousand single events.
EVENTS_PER_COMMIT = 2000
# How long a group waits for company: storing one event alone costs SQLite about four
# times the CPU of storing it among ten, and no provider minds 10 ms more on an answer.
# A group of 100 events (a SendGrid batch) is company enough.
GATHER_SECONDS = 0.010
GATHER_EVENTS = 100


def webhook_routes(
    settings: Settings,
    engine: Database,
    environ: Mapping[str, str],
    writer: Executor | None = None,
) -> list[BaseRoute]:
    """The routes the app mounts under /webhooks: POST /<provider> for each configured one.

    Every provider's events are stored through one GroupCommit (web.group_commit), in the
    `writer` thread the app's other writes use (without one, asyncio's default threads).
    Raises ConfigError for a secret that cannot be used (a key that is not a key), so
    `serve` refuses to start rather than refusing every webhook later.
    """
    basic = BasicAuth.from_environ(environ)
    soft = SoftBounces(settings.webhooks.soft_bounce_limit, settings.webhooks.soft_bounce_days)
    store: GroupCommit[list[Report], list[Outcome]] = GroupCommit(
        partial(record_report_groups, engine, soft=soft),
        writer,
        most=EVENTS_PER_COMMIT,
        weight=len,
        gather=GATHER_SECONDS,
        enough_weight=GATHER_EVENTS,
    )
    return [
        Route(
            f"/{provider.name}",
            WebhookEndpoint(provider, store, basic).handle,
            methods=["POST"],
            name=f"webhook-{provider.name}",
        )
        for provider in configured(environ)
    ]
