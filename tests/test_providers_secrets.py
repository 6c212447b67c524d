"""No key and no signing secret in anything that comes back from a provider: results,
errors, and what httpx and httpcore log, even when the provider quotes the request back."""

from __future__ import annotations

import base64
import dataclasses
import json
import urllib.parse
from collections.abc import Callable

import httpx
import pytest

from newsletter.compose.message import Message, build_message
from newsletter.compose.personalize import Recipient
from newsletter.compose.render import Rendered
from newsletter.config import ProviderSettings, Settings
from newsletter.delivery.providers import (
    Provider,
    SendResult,
    make_client,
    make_provider,
    provider_info,
)
from newsletter.errors import ProviderError

from fake_provider import KEYS, MAILGUN_DOMAIN, FakeProvider

HTTP_PROVIDERS = ["postmark", "sendgrid", "mailgun", "resend"]
# Characters that change under URL, base64 and JSON encoding, so every form is exercised.
ODD_KEY = "k3y+with/odd=chars~and%25-0123456789"
SECRET = "signing/secret+value=0123456789abcdef"
RENDERED = Rendered(
    subject="Hello",
    html='<p>Hi x-newsletter:name</p><a href="x-newsletter:unsubscribe_url">u</a>',
    text="Hi x-newsletter:name\nx-newsletter:unsubscribe_url\n",
)


def forms(value: str) -> list[str]:
    """The ways a value can come back: as is, URL-encoded, JSON-escaped, in Basic auth."""
    return [
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        json.dumps(value)[1:-1].replace("/", "\\/"),
        base64.b64encode(f"api:{value}".encode()).decode().rstrip("="),
        base64.b64encode(value.encode()).decode().rstrip("="),
    ]


def leaks(text: str, *values: str) -> list[str]:
    """The forms of `values` found in `text` (case aside, as some echoes change case)."""
    return [f for v in values for f in forms(v) if f.lower() in text.lower()]


def messages(settings: Settings, *emails: str) -> list[Message]:
    return [
        build_message(
            settings, "2026-11-26-welcome", RENDERED, Recipient(e, "Ann", f"https://e.org/u?t={n}")
        )
        for n, e in enumerate(emails)
    ]


def configured(settings: Settings, name: str, url: str) -> Settings:
    return dataclasses.replace(
        settings,
        provider=ProviderSettings(name=name, base_url=url, domain=MAILGUN_DOMAIN, timeout=2.0),
    )


def everything(results: list[SendResult]) -> str:
    return "\n".join(f"{r.reason} {r.message_id}" for r in results)


def error_texts(exc: BaseException) -> str:
    """The error as the CLI and --debug would show it, causes included."""
    texts = []
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), str(getattr(seen, "body", ""))]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


@pytest.fixture(params=HTTP_PROVIDERS)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- with the network mocked ------------------------------------------------------------------


def mocked(
    settings: Settings, name: str, answer: Callable[[httpx.Request], httpx.Response]
) -> Provider:
    env = {provider_info(name).key_variable: ODD_KEY, "NEWSLETTER_SECRET_KEY": SECRET}
    c = make_client(5.0, httpx.MockTransport(answer))
    return make_provider(configured(settings, name, "https://api.example"), client=c, environ=env)


def quoting(request: httpx.Request) -> str:
    """Everything secret the request carried, in every form, as a provider might quote it."""
    said = " ".join(f"{k}: {v}" for k, v in request.headers.items())
    return f"{' '.join(forms(ODD_KEY) + forms(SECRET))} {said}"


@pytest.mark.parametrize("status", [200, 400, 401, 422, 429, 500])
def test_quoted_request_is_redacted_from_every_answer(
    settings: Settings, name: str, status: int
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        text = quoting(request)
        shapes = {
            "postmark": [{"ErrorCode": 300, "Message": text}],
            "resend": {"data": [], "errors": [{"index": 0, "message": text}]},
        }
        error = {"message": text, "Message": text}
        body = shapes.get(name, error) if status == 200 else error
        return httpx.Response(status, json=body, headers={"X-Echo": text[:200]})

    try:
        results = mocked(settings, name, answer).send(messages(settings, "a@example.org"))
        text = everything(results)
    except ProviderError as exc:
        text = error_texts(exc)
    assert "[redacted]" in text
    assert leaks(text, ODD_KEY, SECRET) == []


def test_postmark_item_message_quoting_the_key(settings: Settings) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        token = request.headers["X-Postmark-Server-Token"]
        return httpx.Response(
            200,
            json=[{"ErrorCode": 0, "MessageID": "ok"}, {"ErrorCode": 300, "Message": token}],
        )

    results = mocked(settings, "postmark", answer).send(
        messages(settings, "a@example.org", "b@example.org")
    )
    assert results[0].message_id == "ok"
    assert leaks(everything(results), ODD_KEY) == [] and "[redacted]" in results[1].reason


def test_transport_errors_quoting_the_key(settings: Settings, name: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError(f"peer closed: {quoting(request)}")

    results = mocked(settings, name, answer).send(messages(settings, "a@example.org"))
    assert leaks(everything(results), ODD_KEY, SECRET) == []


# --- end to end, with the fake quoting everything back ---------------------------------------


def test_echoing_provider_never_leaks_key_or_secret(
    settings: Settings,
    fake: FakeProvider,
    name: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level("DEBUG")
    monkeypatch.setitem(KEYS, name, ODD_KEY)
    fake.echo, fake.echo_extra = True, f"secret={SECRET}"
    env = {provider_info(name).key_variable: ODD_KEY, "NEWSLETTER_SECRET_KEY": SECRET}
    texts: list[str] = []
    batch = messages(settings, "ok@example.org", "invalid@example.org")
    with make_client(1.0) as c:
        provider = make_provider(configured(settings, name, fake.url), client=c, environ=env)
        for fault in ("ok", "500", "502-html", "429", "html", "garbled", "drop"):
            fake.faults.append(fault)
            texts.append(everything(provider.send(batch)))
    wrong = ODD_KEY + "/wrong"
    with make_client(1.0) as c:
        provider = make_provider(
            configured(settings, name, fake.url),
            client=c,
            environ={**env, provider_info(name).key_variable: wrong},
        )
        with pytest.raises(ProviderError) as info:
            provider.send(batch)
    texts.append(error_texts(info.value))
    said = "\n".join(texts)
    assert "[redacted]" in said  # the fake did quote the request back
    assert "HTTP Request: POST" in caplog.text and "receive_response_headers" in caplog.text
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert leaks(said, ODD_KEY, SECRET, wrong) == []
    assert leaks(logged, ODD_KEY, SECRET, wrong) == []
