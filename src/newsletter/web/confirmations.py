"""Sending the double opt-in emails that /subscribe recorded, and again if they failed.

/subscribe records a request (audience.consent) before it answers; this module sends it
right after the answer, and a loop sends whatever is due: requests whose provider was
down (retried after 1, 2, 4... minutes, up to an hour apart, until the link expires) and
requests left unsent when the server stopped. Before sending, a request is claimed by
moving its next attempt a lease ahead in one UPDATE, so several workers or machines never
send one request twice at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
from collections.abc import Mapping, Sequence
from urllib.parse import quote

import httpx
from sqlalchemy import Engine, select, update

from newsletter.audience.consent import voided_by_leaving
from newsletter.compose.message import Message, build_message
from newsletter.compose.personalize import Recipient
from newsletter.compose.render import Rendered
from newsletter.config import Settings
from newsletter.delivery.providers import (
    Provider,
    SendResult,
    Status,
    make_client,
    make_provider,
)
from newsletter.delivery.tokens import CONFIRM_DAYS, confirm_token
from newsletter.errors import NewsletterError
from newsletter.storage import confirmations, now, stored, subscribers, transaction
from newsletter.web.pages import Pages

log = logging.getLogger("newsletter.web")

ISSUE = "confirmations"  # the outbox's folder for them: .newsletter/outbox/confirmations/
LEASE = dt.timedelta(minutes=2)
FIRST_RETRY = dt.timedelta(minutes=1)
LONGEST_RETRY = dt.timedelta(hours=1)
BATCH = 20


def public_base(settings: Settings) -> str:
    """Where the pages are: unsubscribe_url without its /unsubscribe, else site_url."""
    base = settings.unsubscribe_url
    if base.endswith("/unsubscribe"):
        return base[: -len("/unsubscribe")]
    return settings.site_url.rstrip("/")


class ConfirmationMailer:
    """Sends recorded confirmation requests through the configured provider."""

    def __init__(
        self, settings: Settings, engine: Engine, environ: Mapping[str, str], secret: str
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.environ = environ
        self.secret = secret
        self.pages = Pages(settings)
        self.valid_for = dt.timedelta(days=CONFIRM_DAYS)
        # One HTTP client for the server's life, shared by the threads that send: a new
        # one loads the CA certificates, 0.15 s of CPU, which was most of a subscribe.
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _provider(self) -> Provider:
        """The configured provider on the shared client, with idempotency keys of its own
        (each send is a new scope, as each `send` run is)."""
        with self._lock:
            if self._client is None:
                # A plain http:// base_url (only ever to this machine) needs no certificates.
                plain = self.settings.provider.base_url.startswith("http://")
                self._client = make_client(self.settings.provider.timeout, plain_http=plain)
        return make_provider(
            self.settings,
            None,
            client=self._client,
            environ=self.environ,
            idempotency_scope=f"confirm-{secrets.token_hex(6)}",
        )

    def close(self) -> None:
        """Close the shared client (the app's lifespan does, at shutdown)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def send(self, request_ids: Sequence[int]) -> int:
        """Claim and send these requests (those still due); returns how many went out."""
        claimed = [c for c in (self._claim(i) for i in request_ids) if c is not None]
        if not claimed:
            return 0
        messages = [self._message(*c) for c in claimed]
        try:
            results = self._provider().send(messages)
        except NewsletterError as exc:  # no key, the provider refused it, ...
            # The message may name the provider and its status; never an address.
            log.warning("confirmation emails not sent, retrying later: %s", exc)
            results = [
                SendResult(m.recipient.email, Status.RETRY, reason=str(exc)) for m in messages
            ]
        for (request_id, attempts, *_), result in zip(claimed, results, strict=True):
            self._record(request_id, attempts, result)
        return sum(r.status == Status.SENT for r in results)

    def send_due(self) -> int:
        """Send every request whose time has come, a batch at a time."""
        total = 0
        while True:
            with transaction(self.engine) as conn:
                due = list(
                    conn.scalars(
                        select(confirmations.c.id)
                        .where(confirmations.c.next_attempt_at <= now())
                        .order_by(confirmations.c.next_attempt_at)
                        .limit(BATCH)
                    )
                )
            if not due:
                return total
            sent = self.send(due)
            total += sent
            if len(due) < BATCH:
                return total

    def _claim(self, request_id: int) -> tuple[int, int, str, str, dt.datetime] | None:
        """(id, attempts, address, name, expiry) of a request this process now owns."""
        stamp = now()
        with transaction(self.engine) as conn:
            row = conn.execute(
                select(
                    confirmations.c.attempts,
                    confirmations.c.name,
                    confirmations.c.expires_at,
                    confirmations.c.created_at,
                    subscribers.c.email,
                    subscribers.c.unsubscribed_at,
                )
                .join(subscribers, subscribers.c.id == confirmations.c.subscriber_id)
                .where(confirmations.c.id == request_id)
            ).first()
            if row is None:
                return None
            expires = stored(row.expires_at)
            void = voided_by_leaving(row.created_at, row.unsubscribed_at)
            if expires <= stamp or void:
                why = "left before it was sent" if void else "expired before it was sent"
                conn.execute(
                    update(confirmations)
                    .where(confirmations.c.id == request_id)
                    .values(next_attempt_at=None, error=why)
                )
                return None
            taken = conn.execute(
                update(confirmations)
                .where(
                    confirmations.c.id == request_id,
                    confirmations.c.next_attempt_at <= stamp,
                    confirmations.c.attempts == row.attempts,
                )
                .values(next_attempt_at=stamp + LEASE, attempts=row.attempts + 1)
            ).rowcount
        if not taken:
            return None
        return request_id, row.attempts + 1, row.email, row.name, expires

    def _message(
        self, request_id: int, attempts: int, email: str, name: str, expires: dt.datetime
    ) -> Message:
        token = confirm_token(request_id, int(expires.timestamp()), self.secret)
        context = {
            "name": name,
            "confirm_url": f"{public_base(self.settings)}/confirm?token={quote(token)}",
            "days": max(1, round((expires - now()) / dt.timedelta(days=1))),
        }
        subject = f"Please confirm your subscription to {self.settings.name}"
        rendered = Rendered(
            subject=subject,
            html=self.pages.render("confirmation-email.html", context),
            text=self.pages.render("confirmation-email.txt", context),
            # A token no subscriber's name can contain: the fields are already in.
            nonce=secrets.token_hex(8),
        )
        message = build_message(
            self.settings,
            ISSUE,
            rendered,
            Recipient(email=email, name=name),
            id_variant=f"{request_id}-{attempts}",  # a Message-ID of its own per attempt
        )
        # Not a message of the list: no List-* headers, and auto-replies stay quiet.
        for header in ("List-ID", "List-Unsubscribe", "List-Unsubscribe-Post"):
            message.headers.pop(header, None)
        message.headers["Auto-Submitted"] = "auto-generated"
        return message

    def _record(self, request_id: int, attempts: int, result: SendResult) -> None:
        stamp = now()
        values: dict[str, object]
        if result.status == Status.SENT:
            values = {"sent_at": stamp, "next_attempt_at": None, "error": None}
        elif result.status in (Status.RETRY, Status.UNCERTAIN):
            wait = min(FIRST_RETRY * 2 ** (attempts - 1), LONGEST_RETRY)
            if result.retry_after:
                wait = max(wait, dt.timedelta(seconds=result.retry_after))
            values = {"next_attempt_at": stamp + wait, "error": result.reason[:500]}
        else:  # refused: the address will not take mail; trying again changes nothing
            values = {"next_attempt_at": None, "error": result.reason[:500]}
        with transaction(self.engine) as conn:
            conn.execute(
                update(confirmations).where(confirmations.c.id == request_id).values(values)
            )
