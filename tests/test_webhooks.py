"""Provider webhooks: each provider's signature, refusals, replays, batches, bad input.

The routes run on a bare Starlette app mounted at /webhooks, as create_app mounts them,
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select, update
from webhook_samples.signing import (
    BASIC,
    MAILGUN_KEY,
    RESEND_SECRET,
    SendGridKeys,
    TestClient,
    basic_header,
    environ,
    mailgun_body,
    make_client,
    resend_headers,
    sample,
)

from newsletter.audience.subscribers import add_subscriber, get_subscriber
from newsletter.config import Settings, WebhookSettings
from newsletter.errors import ConfigError
from newsletter.storage import deliveries, events, now, sends, subscribers
from newsletter.web.webhooks import webhook_routes

ISSUE = "2026-11-26-welcome"


@pytest.fixture(scope="module")
def keys() -> SendGridKeys:
    return SendGridKeys()


@pytest.fixture
def client(db_settings: Settings, engine: Engine, keys: SendGridKeys) -> Iterator[TestClient]:
    with make_client(db_settings, engine, environ(keys)) as c:
        yield c


def status_of(engine: Engine, email: str) -> str:
    found = get_subscriber(engine, email)
    assert found is not None
    return found.status


def stored(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(events).order_by(events.c.id)))


# --- one signed hard bounce per provider ------------------------------------------------------


def signed(
    provider: str, keys: SendGridKeys, email: str, **kw: Any
) -> tuple[bytes, dict[str, str]]:
    """A documented hard-bounce body for `email`, signed as the provider signs it."""
    if provider == "postmark":
        event = sample("postmark", "bounce") | {"Email": email, "Metadata": {"issue": ISSUE}}
        return json.dumps(event).encode(), basic_header()
    if provider == "sendgrid":
        body = json.dumps([sample("sendgrid", "bounce")[0] | {"email": email, "issue": ISSUE}])
        return body.encode(), keys.headers(body.encode(), kw.get("timestamp"))
    if provider == "mailgun":
        event = sample("mailgun", "failed-permanent")["event-data"]
        event = event | {"recipient": email, "user-variables": {"issue": ISSUE}}
        return mailgun_body(event, kw.get("timestamp"), kw.get("token")), {}
    document = sample("resend", "email.bounced")
    document["data"] |= {"to": [email], "tags": {"issue": ISSUE}}
    body = json.dumps(document).encode()
    return body, resend_headers(body, kw.get("ident"), kw.get("timestamp"))


PROVIDERS = ["postmark", "sendgrid", "mailgun", "resend"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_signed_hard_bounce_bounces_the_subscriber(
    provider: str, client: TestClient, engine: Engine, keys: SendGridKeys
) -> None:
    add_subscriber(engine, "ana@example.org")
    add_subscriber(engine, "bo@example.org")
    with engine.begin() as conn:  # the ledger knows this issue went to ana
        conn.execute(
            insert(sends).values(
                issue=ISSUE, content_hash="c" * 64, provider=provider, created_at=now()
            )
        )
        conn.execute(
            insert(deliveries).values(
                issue=ISSUE,
                email="ana@example.org",
                email_key="ana@example.org",
                state="sent",
                attempt=1,
                updated_at=now(),
            )
        )
    body, headers = signed(provider, keys, "Ana@Example.org")
    answer = client.post(f"/webhooks/{provider}", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"events": 1, "recorded": 1}
    assert status_of(engine, "ana@example.org") == "bounced"
    assert status_of(engine, "bo@example.org") == "active"
    [row] = stored(engine)
    assert (row.provider, row.kind, row.email_key) == (provider, "bounce", "ana@example.org")
    assert row.issue == ISSUE and row.outcome == "active → bounced" and row.applied_at


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_replayed_event_changes_nothing_twice(
    provider: str, client: TestClient, engine: Engine, keys: SendGridKeys
) -> None:
    add_subscriber(engine, "ana@example.org")
    body, headers = signed(provider, keys, "ana@example.org")
    assert client.post(f"/webhooks/{provider}", content=body, headers=headers).status_code == 200
    with engine.begin() as conn:  # she comes back (through confirmation, say)
        conn.execute(update(subscribers).values(status="active"))
    again = client.post(f"/webhooks/{provider}", content=body, headers=headers)
    assert again.status_code == 200 and again.json() == {"events": 1, "recorded": 0}
    assert status_of(engine, "ana@example.org") == "active"
    assert len(stored(engine)) == 1


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun", "resend"])
def test_wrong_signature_is_refused_and_changes_nothing(
    provider: str, client: TestClient, engine: Engine, keys: SendGridKeys
) -> None:
    add_subscriber(engine, "ana@example.org")
    body, headers = signed(provider, keys, "ana@example.org")
    if provider == "mailgun":
        body = body.replace(b'"signature": "', b'"signature": "0')
    elif provider == "sendgrid":
        other = SendGridKeys()  # signed by someone else's key
        headers = other.headers(body)
    else:
        headers = resend_headers(body, secret="whsec_" + "QUJD" * 8)
    tampered = body.replace(b"ana@example.org", b"bo@example.org")
    for attempt in (body, tampered):
        answer = client.post(f"/webhooks/{provider}", content=attempt, headers=headers)
        assert answer.status_code == 401, answer.text
        assert "does not match" in answer.json()["error"]
    assert status_of(engine, "ana@example.org") == "active" and stored(engine) == []


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun", "resend"])
def test_a_stale_timestamp_is_refused_naming_the_window(
    provider: str, client: TestClient, engine: Engine, keys: SendGridKeys
) -> None:
    add_subscriber(engine, "ana@example.org")
    for offset in (-400, 400):  # a replay later, or a clock far ahead
        body, headers = signed(
            provider, keys, "ana@example.org", timestamp=int(time.time()) + offset
        )
        answer = client.post(f"/webhooks/{provider}", content=body, headers=headers)
        assert answer.status_code == 401
        assert "more than 5 minutes from now" in answer.json()["error"]
    assert status_of(engine, "ana@example.org") == "active" and stored(engine) == []


def test_postmark_needs_the_basic_auth_password(client: TestClient, engine: Engine) -> None:
    add_subscriber(engine, "ana@example.org")
    body = json.dumps(sample("postmark", "bounce") | {"Email": "ana@example.org"}).encode()
    for headers in (
        {},
        basic_header(password="wrong"),
        basic_header(user="other"),
        {"Authorization": "Bearer x"},
    ):
        answer = client.post("/webhooks/postmark", content=body, headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Basic")
        assert BASIC[1] not in answer.text
    assert status_of(engine, "ana@example.org") == "active"
    assert (
        client.post("/webhooks/postmark", content=body, headers=basic_header()).status_code == 200
    )
    assert status_of(engine, "ana@example.org") == "bounced"


def test_basic_auth_is_accepted_for_any_provider(db_settings: Settings, engine: Engine) -> None:
    """A provider whose own secret is not set is still served when basic auth is."""
    add_subscriber(engine, "ana@example.org")
    env = {"NEWSLETTER_WEBHOOK_AUTH": ":".join(BASIC)}
    with make_client(db_settings, engine, env) as c:
        body = json.dumps([sample("sendgrid", "spamreport")[0] | {"email": "ana@example.org"}])
        assert c.post("/webhooks/sendgrid", content=body, headers={}).status_code == 401
        assert c.post("/webhooks/sendgrid", content=body, headers=basic_header()).status_code == 200
    assert status_of(engine, "ana@example.org") == "complained"


def test_a_webhook_whose_secret_is_not_set_answers_404(
    db_settings: Settings, engine: Engine, keys: SendGridKeys
) -> None:
    env = {"SENDGRID_WEBHOOK_VERIFICATION_KEY": keys.public}
    with make_client(db_settings, engine, env) as c:
        for provider in ("postmark", "mailgun", "resend", "unknown"):
            assert c.post(f"/webhooks/{provider}", content=b"{}").status_code == 404
        assert c.get("/webhooks/sendgrid").status_code == 405  # wrong method
        assert c.post("/webhooks/sendgrid", content=b"[]").status_code == 401


def test_unusable_secrets_stop_the_app_from_starting(db_settings: Settings, engine: Engine) -> None:
    for env, variable in (
        ({"SENDGRID_WEBHOOK_VERIFICATION_KEY": "not a key"}, "SENDGRID_WEBHOOK_VERIFICATION_KEY"),
        ({"RESEND_WEBHOOK_SECRET": "whsec_%%%"}, "RESEND_WEBHOOK_SECRET"),
        ({"NEWSLETTER_WEBHOOK_AUTH": "no-colon"}, "NEWSLETTER_WEBHOOK_AUTH"),
    ):
        with pytest.raises(ConfigError, match=variable) as caught:
            webhook_routes(db_settings, engine, env)
        assert list(env.values())[0] not in str(caught.value)  # the secret is not echoed


# --- bad input --------------------------------------------------------------------------------


def test_bad_bodies_get_a_clear_status_and_change_nothing(
    client: TestClient, engine: Engine, keys: SendGridKeys
) -> None:
    add_subscriber(engine, "ana@example.org")
    cases = [
        (b"{not json", 400, "not JSON"),
        (b'{"event": "bounce"}', 400, "JSON array"),
        (b"[1, 2]", 400, "event 0 is not a JSON object"),
        (
            json.dumps(
                [{"event": "bounce", "email": "ana@example.org"}, {"event": "bounce"}]
            ).encode(),
            400,
            "event 1 has no recipient",
        ),
        (b"\xff\xfe[]", 400, "not JSON"),
    ]
    for body, status, words in cases:
        answer = client.post("/webhooks/sendgrid", content=body, headers=keys.headers(body))
        assert answer.status_code == status and words in answer.json()["error"], body
    big = b"[" + b" " * (5 * 1024 * 1024) + b"]"
    answer = client.post("/webhooks/sendgrid", content=big, headers=keys.headers(big))
    assert answer.status_code == 413
    assert status_of(engine, "ana@example.org") == "active" and stored(engine) == []


def test_a_sendgrid_batch_is_one_transaction(
    client: TestClient, engine: Engine, keys: SendGridKeys
) -> None:
    people = [f"reader{n}@example.org" for n in range(60)]
    for person in people:
        add_subscriber(engine, person)
    batch = [
        {
            "email": p,
            "event": "bounce",
            "type": "bounce",
            "sg_event_id": f"ev{n}",
            "timestamp": int(time.time()),
        }
        for n, p in enumerate(people)
    ]
    batch.append(
        {"email": people[0], "event": "spamreport", "sg_event_id": "ev0"}
    )  # a replay inside
    body = json.dumps(batch).encode()
    answer = client.post("/webhooks/sendgrid", content=body, headers=keys.headers(body))
    assert answer.json() == {"events": 61, "recorded": 60}
    assert {status_of(engine, p) for p in people} == {"bounced"}
    assert len(stored(engine)) == 60


def test_soft_bounces_count_until_the_limit(
    db_settings: Settings, engine: Engine, keys: SendGridKeys
) -> None:
    settings = dataclasses.replace(
        db_settings, webhooks=WebhookSettings(soft_bounce_limit=3, soft_bounce_days=7)
    )
    add_subscriber(engine, "ana@example.org")
    with make_client(settings, engine, environ(keys)) as c:
        for n in range(3):
            event = sample("mailgun", "failed-temporary")["event-data"] | {
                "recipient": "ana@example.org",
                "id": f"t{n}",
                "timestamp": time.time(),
            }
            answer = c.post("/webhooks/mailgun", content=mailgun_body(event))
            assert answer.status_code == 200
            assert status_of(engine, "ana@example.org") == ("bounced" if n == 2 else "active")
    outcomes = [row.outcome for row in stored(engine)]
    assert outcomes == [
        "soft bounce 1 of 3 in 7 days",
        "soft bounce 2 of 3 in 7 days",
        "active → bounced (soft bounce 3 of 3 in 7 days)",
    ]


def test_a_mailgun_signature_cannot_carry_another_event(client: TestClient, engine: Engine) -> None:
    """Mailgun signs only timestamp and token: a captured signature with another body is refused."""
    add_subscriber(engine, "ana@example.org")
    add_subscriber(engine, "bo@example.org")
    event = sample("mailgun", "complained")["event-data"]
    first = mailgun_body(event | {"recipient": "ana@example.org"}, token="t" * 50)
    assert client.post("/webhooks/mailgun", content=first).status_code == 200
    envelope = json.loads(first)
    envelope["event-data"]["recipient"] = "bo@example.org"
    answer = client.post("/webhooks/mailgun", content=json.dumps(envelope).encode())
    assert answer.status_code == 401 and "already used" in answer.json()["error"]
    assert status_of(engine, "bo@example.org") == "active"
    assert client.post("/webhooks/mailgun", content=first).status_code == 200  # a retry


def test_addresses_and_secrets_stay_out_of_the_logs(
    client: TestClient, engine: Engine, keys: SendGridKeys, caplog: pytest.LogCaptureFixture
) -> None:
    add_subscriber(engine, "ana@example.org")
    caplog.set_level(logging.DEBUG)
    for provider in PROVIDERS:
        body, headers = signed(provider, keys, "ana@example.org")
        client.post(f"/webhooks/{provider}", content=body, headers=headers)
        client.post(f"/webhooks/{provider}", content=body + b" ", headers=headers)
    logged = caplog.text
    assert "webhook sendgrid: 1 events, 1 new" in logged
    for secret in ("ana@example.org", MAILGUN_KEY, RESEND_SECRET, BASIC[1], keys.public):
        assert secret not in logged


# --- any body: a 2xx or a 4xx, never a 500 ------------------------------------------------------

BODIES = st.one_of(
    st.binary(max_size=300),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
        ),
        max_leaves=20,
    ).map(lambda v: json.dumps(v).encode()),
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(
            ["bounce", "dropped", "spamreport", "failed", "complained", "email.bounced"]
        ),
        "RecordType": st.sampled_from(["Bounce", "SpamComplaint", "SubscriptionChange", "Open"]),
        "email": st.text(max_size=30) | st.integers(),
        "Email": st.text(max_size=30) | st.none(),
        "recipient": st.text(max_size=30) | st.lists(st.text(max_size=5)),
        "timestamp": st.integers() | st.floats() | st.text(max_size=12),
        "severity": st.sampled_from(["permanent", "temporary", 3]),
        "type": st.text(max_size=10),
        "ID": st.integers() | st.text(max_size=5),
        "data": st.fixed_dictionaries(
            {},
            optional={
                "to": st.text(max_size=20)
                | st.lists(st.text(max_size=20), max_size=3)
                | st.integers(),
                "bounce": st.dictionaries(st.text(max_size=5), st.text(max_size=5)),
            },
        ),
        "BouncedAt": st.text(max_size=30),
    },
)


def _shaped(provider: str, event: dict[str, Any]) -> bytes:
    if provider == "sendgrid":
        return json.dumps([event]).encode()
    if provider == "mailgun":
        return json.dumps({"event-data": event}).encode()
    return json.dumps(event).encode()


@pytest.fixture
def sqlite_client(settings: Settings, keys: SendGridKeys) -> Iterator[TestClient]:
    from newsletter.storage import open_engine

    engine = open_engine(settings)
    add_subscriber(engine, "ana@example.org")
    with make_client(settings, engine, environ(keys)) as c:
        yield c
    engine.dispose()


@hsettings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    provider=st.sampled_from(PROVIDERS),
    body=BODIES | FIELDS.map(lambda e: json.dumps(e).encode()),
    fields=FIELDS,
    use_fields=st.booleans(),
)
def test_any_body_ends_in_a_2xx_or_a_4xx(
    sqlite_client: TestClient,
    keys: SendGridKeys,
    provider: str,
    body: bytes,
    fields: dict[str, Any],
    use_fields: bool,
) -> None:
    """Correctly signed (so the parsers are reached) or not, nothing is a server error."""
    if use_fields:
        body = _shaped(provider, fields)
    headers: dict[str, str] = basic_header()
    if provider == "sendgrid":
        headers = keys.headers(body)
    elif provider == "resend":
        headers = resend_headers(body)
    elif provider == "mailgun" and use_fields:
        body = mailgun_body(fields)
    answer = sqlite_client.post(f"/webhooks/{provider}", content=body, headers=headers)
    assert 200 <= answer.status_code < 300 or 400 <= answer.status_code < 500, answer.text
