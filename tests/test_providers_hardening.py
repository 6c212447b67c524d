"""Issue 9 for the adapters: answers that may mean "accepted", keys that cannot travel,
addresses that would carry a key in clear text, huge answers, absurd waits, and the
outbox's private files."""

from __future__ import annotations

import dataclasses
import stat
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from newsletter.audience.importing import import_csv
from newsletter.compose.message import Message, build_message
from newsletter.compose.personalize import Recipient
from newsletter.compose.render import Rendered
from newsletter.config import ProviderSettings, SendingSettings, Settings
from newsletter.delivery.engine import send_issue
from newsletter.delivery.providers import (
    Options,
    Provider,
    Status,
    api_key,
    make_client,
    make_provider,
    provider_info,
)
from newsletter.delivery.providers.mailgun import MailgunProvider
from newsletter.delivery.providers.postmark import PostmarkProvider
from newsletter.delivery.providers.resend import ResendProvider, idempotency_key
from newsletter.delivery.providers.sendgrid import SendGridProvider
from newsletter.errors import ConfigError, ProviderError
from newsletter.storage import open_engine

from fake_provider import KEYS, MAILGUN_DOMAIN, FakeProvider
from fake_provider.recorder import Handler, Recorder, client

HTTP_PROVIDERS = ["postmark", "sendgrid", "mailgun", "resend"]
CAP = 1024 * 1024
RENDERED = Rendered(
    subject="Hello",
    html='<p>Hi x-newsletter:name</p><a href="x-newsletter:unsubscribe_url">u</a>',
    text="Hi x-newsletter:name\nx-newsletter:unsubscribe_url\n",
)


def messages(settings: Settings, *emails: str) -> list[Message]:
    return [
        build_message(
            settings,
            "2026-11-26-welcome",
            RENDERED,
            Recipient(email, "Ann", f"https://example.org/u?t={n}"),
        )
        for n, email in enumerate(emails)
    ]


def never(request: httpx.Request) -> httpx.Response:
    pytest.fail(f"no request may be made, yet one went to {request.url}")


def adapter(name: str, handler: Handler, key: str = "k3y-0123") -> Provider:
    made: dict[str, Callable[[httpx.Client], Provider]] = {
        "postmark": lambda c: PostmarkProvider(Options(c, key)),
        "sendgrid": lambda c: SendGridProvider(Options(c, key)),
        "mailgun": lambda c: MailgunProvider(Options(c, key), domain="mg.example.org"),
        "resend": lambda c: ResendProvider(Options(c, key)),
    }
    return made[name](client(handler))


def configured(settings: Settings, name: str, url: str) -> Settings:
    return dataclasses.replace(
        settings,
        provider=ProviderSettings(name=name, base_url=url, domain=MAILGUN_DOMAIN, timeout=5.0),
    )


@pytest.fixture(params=HTTP_PROVIDERS)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- 1. a 2xx that cannot be read may mean "accepted": uncertain, never rejected --------------

UNREADABLE_2XX = {
    "html from a proxy": httpx.Response(200, html="<html><body>Welcome</body></html>"),
    "not json": httpx.Response(200, text="OK", headers={"Content-Type": "application/json"}),
    "truncated json": httpx.Response(
        200, content=b'[{"ErrorCode": 0, "Messa', headers={"Content-Type": "application/json"}
    ),
    "wrong shape": httpx.Response(200, json={"unexpected": True}),
    "empty": httpx.Response(200),
}


@pytest.mark.parametrize("answer", UNREADABLE_2XX.values(), ids=UNREADABLE_2XX.keys())
def test_unreadable_2xx_is_uncertain(settings: Settings, name: str, answer: httpx.Response) -> None:
    recorder = Recorder(answer)
    results = adapter(name, recorder).send(messages(settings, "a@example.org", "b@example.org"))
    assert [r.status for r in results] == [Status.UNCERTAIN] * 2
    label = {"sendgrid": "SendGrid"}.get(name, name.capitalize())
    assert f"{label} answered HTTP 200" in results[0].reason
    assert "may have" in results[0].reason
    assert len(recorder.requests) == 1  # Mailgun does not send the batch again one by one


def test_unreadable_2xx_reason_quotes_the_answer_redacted(settings: Settings) -> None:
    key = "pm-token-that-is-secret"
    answer = httpx.Response(200, html=f"<p>Proxy</p> got X-Postmark-Server-Token: {key}")
    (result,) = PostmarkProvider(Options(client(Recorder(answer)), key)).send(
        messages(settings, "a@example.org")
    )
    assert result.status is Status.UNCERTAIN
    assert "text/html: <p>Proxy</p>" in result.reason and "[redacted]" in result.reason
    assert key not in result.reason


def broken_body(status: int, error: Exception) -> httpx.Response:
    """An answer whose status came, then the connection broke while reading its body."""

    def body() -> Iterator[bytes]:
        yield b'[{"ErrorCode": 0, "MessageID": "x"'
        raise error

    return httpx.Response(status, content=body(), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "error", [httpx.ReadError("connection reset by peer"), httpx.ReadTimeout("slow body")]
)
def test_connection_lost_while_reading_a_2xx_is_uncertain(
    settings: Settings, error: Exception
) -> None:
    (result,) = PostmarkProvider(Options(client(Recorder(broken_body(200, error))), "t")).send(
        messages(settings, "a@example.org")
    )
    assert result.status is Status.UNCERTAIN and "HTTP 200" in result.reason


def test_connection_lost_while_reading_an_error_keeps_its_status(settings: Settings) -> None:
    (result,) = PostmarkProvider(
        Options(client(Recorder(broken_body(503, httpx.ReadError("reset")))), "t")
    ).send(messages(settings, "a@example.org"))
    assert result.status is Status.RETRY and "HTTP 503" in result.reason


def test_garbled_answer_is_not_sent_again_on_resume(
    settings: Settings, issue_dir: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    """The provider took the batch but its answer came back unreadable: the rows are
    uncertain, and running the send again does not mail them a second time."""
    engine = open_engine(settings)
    csv = tmp_path / "list.csv"
    csv.write_text("email\n" + "".join(f"r{n}@example.org\n" for n in range(6)))
    import_csv(engine, csv)
    engine.dispose()
    fake.faults.extend(["ok", "garbled"])
    tuned = dataclasses.replace(
        configured(settings, "postmark", fake.url),
        sending=dataclasses.replace(SendingSettings(rate=100000), batch_size=3, concurrency=1),
    )
    env = {"NEWSLETTER_SECRET_KEY": "s" * 32, "POSTMARK_SERVER_TOKEN": KEYS["postmark"]}
    first = send_issue(tuned, issue_dir, environ=env)
    assert first.sent == 3 and len(first.uncertain) == 3
    again = send_issue(tuned, issue_dir, environ=env)
    assert again.sent == 0
    assert set(Counter(fake.recipients()).values()) == {1} and len(fake.recipients()) == 6


# --- 3. plain http only to this machine ------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com",
        "http://10.0.0.7:8080/",
        "http://localhost.example.com",
        "http://0.0.0.0:9",
        "http://[2001:db8::1]/",
    ],
)
def test_plain_http_to_another_machine_is_refused(settings: Settings, name: str, url: str) -> None:
    env = {provider_info(name).key_variable: KEYS[name]}
    with make_client(5.0, httpx.MockTransport(never)) as c:
        with pytest.raises(ConfigError) as info:
            make_provider(configured(settings, name, url), client=c, environ=env)
    text = str(info.value)
    assert "provider.base_url" in text and "NEWSLETTER_PROVIDER_BASE_URL" in text
    assert "https" in text and "\n" not in text


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com",
        "http://127.0.0.1:9",
        "http://127.8.9.10",
        "http://localhost:9/",
        "http://LOCALHOST:9/",
        "http://[::1]:9",
    ],
)
def test_https_anywhere_and_http_to_loopback_are_allowed(
    settings: Settings, name: str, url: str
) -> None:
    env = {provider_info(name).key_variable: KEYS[name]}
    with make_client(5.0, httpx.MockTransport(never)) as c:
        provider = make_provider(configured(settings, name, url), client=c, environ=env)
    assert provider.name == name


# --- 4. keys that cannot travel in a header ---------------------------------------------------


@pytest.mark.parametrize("bad", ["\n", "\x00", "é", "\u2028", "\x7f", "\r"])
def test_key_with_a_character_no_header_can_carry(settings: Settings, name: str, bad: str) -> None:
    key = f"abc{bad}def-secret"
    for variable in (provider_info(name).key_variable, "NEWSLETTER_API_KEY"):
        with pytest.raises(ConfigError) as info:
            api_key(name, {variable: key})
        text = str(info.value)
        assert variable in text and "\n" not in text and "def-secret" not in text
        with make_client(5.0, httpx.MockTransport(never)) as c, pytest.raises(ConfigError):
            make_provider(configured(settings, name, "https://a.example"), client=c,
                          environ={variable: key})  # fmt: skip


def test_key_surrounding_whitespace_is_still_trimmed() -> None:
    assert api_key("postmark", {"POSTMARK_SERVER_TOKEN": "  tok-123\n"}) == "tok-123"


def test_a_header_that_cannot_be_encoded_is_one_redacted_error(settings: Settings) -> None:
    """An adapter made directly with such a key fails before sending, without the key."""
    key = "tok-é-secret"
    with pytest.raises(ProviderError) as info:
        PostmarkProvider(Options(client(never), key)).send(messages(settings, "a@example.org"))
    assert key not in str(info.value) and "é-secret" not in str(info.value)
    assert info.value.__cause__ is None or key not in str(info.value.__cause__)


def test_resend_idempotency_key_is_ascii_for_any_issue(settings: Settings) -> None:
    batch = messages(settings, "a@example.org")
    plain = idempotency_key("2026-11-26-welcome", batch)
    assert plain.startswith("2026-11-26-welcome/")  # unchanged for the usual issue keys
    key = idempotency_key("2026-11-26-café\u2028", batch)
    assert key.isascii() and key.isprintable()
    recorder = Recorder(httpx.Response(200, json={"data": [{"id": "r-1"}]}))
    provider = ResendProvider(
        Options(client(recorder), "re_k", idempotency_scope="2026-11-26-café")
    )
    (result,) = provider.send(batch)
    assert result.status is Status.SENT


# --- 5. answers are read up to a cap ----------------------------------------------------------


class Lazy:
    """A body of `size` bytes made as it is read; counts what was pulled."""

    def __init__(self, size: int) -> None:
        self.size, self.pulled = size, 0

    def __iter__(self) -> Iterator[bytes]:
        chunk = b"x" * 65536
        while self.pulled < self.size:
            self.pulled += len(chunk)
            yield chunk


@pytest.mark.parametrize(("status", "expected"), [(200, Status.UNCERTAIN), (500, Status.RETRY),
                                                  (422, Status.REJECTED)])  # fmt: skip
def test_huge_answers_are_read_up_to_the_cap(
    settings: Settings, name: str, status: int, expected: Status
) -> None:
    body = Lazy(200 * 1024 * 1024)
    answer = httpx.Response(status, content=body, headers={"Content-Type": "application/json"})
    results = adapter(name, Recorder(answer)).send(messages(settings, "a@example.org"))
    assert [r.status for r in results] == [expected]
    assert body.pulled <= CAP + 65536
    assert f"HTTP {status}" in results[0].reason and len(results[0].reason) < 2000


@pytest.mark.parametrize("fault", ["huge", "huge-500"])
def test_huge_answer_from_the_fake_is_cut_short(
    settings: Settings, fake: FakeProvider, fault: str
) -> None:
    fake.faults.append(fault)
    fake.huge_size = 200 * 1024 * 1024
    with make_client(5.0) as c:
        provider = make_provider(
            configured(settings, "postmark", fake.url),
            client=c,
            environ={"POSTMARK_SERVER_TOKEN": KEYS["postmark"]},
        )
        tracemalloc.start()
        try:
            (result,) = provider.send(messages(settings, "a@example.org"))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert result.status is (Status.UNCERTAIN if fault == "huge" else Status.RETRY)
    assert peak < 16 * CAP
    for _ in range(100):  # the fake notices the hang-up on its next write
        if fake.huge_sent:
            break
        time.sleep(0.02)
    assert 0 < fake.huge_sent < 40 * CAP  # socket buffers, not 200 MB


# --- 6. waits the provider asks for -----------------------------------------------------------


def retry_after(settings: Settings, **headers: str) -> float | None:
    (result,) = PostmarkProvider(
        Options(client(Recorder(httpx.Response(429, headers=headers))), "t")
    ).send(messages(settings, "a@example.org"))
    return result.retry_after


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "99999999"}, 99999999.0),  # absurd but a number: the engine caps it
        ({"Retry-After": "-5"}, 0.0),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "-inf"}, None),
        ({"Retry-After": "1e999"}, None),
        ({"Retry-After": "Wed, 21 Oct 99999 07:28:00 GMT"}, None),
        ({"ratelimit-reset": "9" * 400}, None),
        ({"ratelimit-reset": "nan"}, None),
        ({"x-ratelimit-reset": "9" * 400}, None),
        ({"x-ratelimit-reset": "9" * 5000}, None),
        ({"ratelimit-reset": "3"}, 3.0),
        ({"Retry-After": "7"}, 7.0),
    ],
)
def test_absurd_waits_parse_to_something_sane(
    settings: Settings, headers: dict[str, str], expected: float | None
) -> None:
    assert retry_after(settings, **headers) == expected


def test_far_future_http_date_is_finite(settings: Settings) -> None:
    wait = retry_after(settings, **{"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"})
    assert wait is not None and 0 < wait < float("inf")


# --- 8. the outbox keeps subscribers' data to its owner --------------------------------------


def test_outbox_files_are_private(settings: Settings) -> None:
    with make_client(5.0, httpx.MockTransport(never)) as c:
        provider = make_provider(settings, "outbox", client=c, environ={})
        results = provider.send(messages(settings, "a@example.org", "b@example.org"))
    assert [r.status for r in results] == [Status.SENT] * 2
    outbox = settings.state_dir / "outbox"
    folder = outbox / "2026-11-26-welcome"
    for path in (outbox, folder):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    files = list(folder.iterdir())
    assert len(files) == 3
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_outbox_tightens_an_index_left_open_by_an_older_version(settings: Settings) -> None:
    folder = settings.state_dir / "outbox" / "2026-11-26-welcome"
    folder.mkdir(parents=True)
    folder.chmod(0o755)
    (folder / "index.jsonl").write_text("")
    (folder / "index.jsonl").chmod(0o644)
    with make_client(5.0, httpx.MockTransport(never)) as c:
        make_provider(settings, "outbox", client=c, environ={}).send(
            messages(settings, "a@example.org")
        )
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "index.jsonl").stat().st_mode) == 0o600
