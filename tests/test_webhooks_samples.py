"""Every documented event body (tests/webhook_samples/) does what its kind says.

Each body is posted as the provider documents it, byte for byte (Mailgun's envelope is
signed again with a fresh timestamp, its event-data unchanged), to an address that is
on the list and active.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from webhook_samples.signing import (
    SAMPLES,
    SendGridKeys,
    TestClient,
    basic_header,
    environ,
    mailgun_body,
    make_client,
    resend_headers,
)

from newsletter.audience.subscribers import add_subscriber, get_subscriber
from newsletter.config import Settings
from newsletter.storage import events, open_engine

# (provider, sample, the kind stored, the status the address is left in)
CASES = [
    ("postmark", "bounce", "bounce", "bounced"),
    ("postmark", "spam-complaint", "complaint", "complained"),
    ("postmark", "subscription-change", "bounce", "bounced"),
    ("sendgrid", "bounce", "bounce", "bounced"),
    ("sendgrid", "blocked", "soft_bounce", "active"),
    ("sendgrid", "dropped", "bounce", "bounced"),
    ("sendgrid", "deferred", "other", "active"),
    ("sendgrid", "delivered", "other", "active"),
    ("sendgrid", "spamreport", "complaint", "complained"),
    ("sendgrid", "unsubscribe", "unsubscribe", "unsubscribed"),
    ("sendgrid", "group_unsubscribe", "unsubscribe", "unsubscribed"),
    ("mailgun", "failed-permanent", "bounce", "bounced"),
    ("mailgun", "failed-temporary", "soft_bounce", "active"),
    ("mailgun", "complained", "complaint", "complained"),
    ("mailgun", "unsubscribed", "unsubscribe", "unsubscribed"),
    ("resend", "email.bounced", "bounce", "bounced"),
    ("resend", "email.complained", "complaint", "complained"),
    ("resend", "email.delivery_delayed", "other", "active"),
]


def test_every_sample_file_has_a_case() -> None:
    files = {(p.parent.name, p.stem) for p in SAMPLES.glob("*/*.json")}
    assert files == {(provider, name) for provider, name, _, _ in CASES}


@pytest.fixture(scope="module")
def keys() -> SendGridKeys:
    return SendGridKeys()


@pytest.fixture
def list_engine(settings: Settings) -> Iterator[Engine]:
    engine = open_engine(settings)
    yield engine
    engine.dispose()


def recipient(provider: str, document: object) -> str:
    if provider == "postmark":
        assert isinstance(document, dict)
        return str(document.get("Email") or document["Recipient"])
    if provider == "sendgrid":
        assert isinstance(document, list)
        return str(document[0]["email"])
    assert isinstance(document, dict)
    if provider == "mailgun":
        return str(document["event-data"]["recipient"])
    return str(document["data"]["to"][0])


@pytest.mark.parametrize(("provider", "name", "kind", "status"), CASES)
def test_documented_event(
    provider: str,
    name: str,
    kind: str,
    status: str,
    settings: Settings,
    list_engine: Engine,
    keys: SendGridKeys,
) -> None:
    raw = (SAMPLES / provider / f"{name}.json").read_bytes()
    document = json.loads(raw)
    address = recipient(provider, document)
    add_subscriber(list_engine, address)
    headers: dict[str, str] = {}
    if provider == "postmark":
        headers = basic_header()
    elif provider == "sendgrid":
        headers = keys.headers(raw)
    elif provider == "mailgun":
        raw = mailgun_body(document["event-data"])
    else:
        headers = resend_headers(raw)
    client: TestClient
    with make_client(settings, list_engine, environ(keys)) as client:
        answer = client.post(f"/webhooks/{provider}", content=raw, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"events": 1, "recorded": 1}
    found = get_subscriber(list_engine, address)
    assert found is not None and found.status == status
    with list_engine.connect() as conn:
        row = conn.execute(select(events)).one()
    assert (row.provider, row.kind) == (provider, kind)
    assert row.occurred_at.year < 2026  # the provider's own time, not the time it arrived
    assert "Content" not in row.payload  # Postmark's full dump of the message is not kept
