"""Each provider's quirks, with httpx.MockTransport standing in for the network."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from email import policy
from email.parser import BytesParser

import httpx
import pytest

from newsletter.compose.message import Message, build_message
from newsletter.compose.personalize import Recipient
from newsletter.compose.render import Rendered
from newsletter.config import Settings
from newsletter.delivery.providers import Options, SendResult, Status
from newsletter.delivery.providers.mailgun import MailgunProvider
from newsletter.delivery.providers.postmark import PostmarkProvider
from newsletter.delivery.providers.resend import ResendProvider, idempotency_key
from newsletter.delivery.providers.sendgrid import SendGridProvider
from newsletter.delivery.test_copies import RetryPolicy, deliver
from newsletter.errors import ProviderAuthError

from fake_provider.recorder import Recorder, client

RENDERED = Rendered(
    subject="Hello",
    html='<p>Hi x-newsletter:name</p><a href="x-newsletter:unsubscribe_url">Unsubscribe</a>',
    text="Hi x-newsletter:name\nUnsubscribe: x-newsletter:unsubscribe_url\n",
)


def messages(settings: Settings, *emails: str, name: str = "Ann <&> Co") -> list[Message]:
    return [
        build_message(
            settings,
            "2026-11-26-welcome",
            RENDERED,
            Recipient(email, name, f"https://example.org/u?t={n}&x=1"),
        )
        for n, email in enumerate(emails)
    ]


# --- Postmark ------------------------------------------------------------------------------


def test_postmark_reads_every_item(settings: Settings) -> None:
    answer = httpx.Response(
        200,
        json=[
            {"ErrorCode": 0, "Message": "OK", "MessageID": "id-1", "To": "a@example.org"},
            {"ErrorCode": 406, "Message": "Inactive recipient", "To": "b@example.org"},
            {"ErrorCode": 429, "Message": "Rate limit exceeded", "To": "c@example.org"},
        ],
    )
    recorder = Recorder(answer)
    provider = PostmarkProvider(Options(client(recorder), "tok"), message_stream="news")
    results = provider.send(messages(settings, "a@example.org", "b@example.org", "c@example.org"))
    assert [r.status for r in results] == [Status.SENT, Status.REJECTED, Status.RETRY]
    assert results[0].message_id == "id-1"
    assert results[1].reason == "Postmark: Inactive recipient (ErrorCode 406)"
    request = recorder.requests[0]
    assert request.url.path == "/email/batch"
    assert request.headers["X-Postmark-Server-Token"] == "tok"
    assert request.headers["Accept"] == "application/json"
    body = json.loads(request.content)
    assert body[0]["MessageStream"] == "news"
    headers = {h["Name"]: h["Value"] for h in body[0]["Headers"]}
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Unsubscribe"].startswith("<https://example.org/u?t=0&x=1>")
    assert body[0]["Metadata"] == {"issue": "2026-11-26-welcome"}
    assert "Hi Ann &lt;&amp;&gt; Co" in body[0]["HtmlBody"]
    assert body[0]["TextBody"].startswith("Hi Ann <&> Co")


def test_postmark_sandbox_uses_the_test_token(settings: Settings) -> None:
    recorder = Recorder(httpx.Response(200, json=[{"ErrorCode": 0, "MessageID": "x"}]))
    PostmarkProvider(Options(client(recorder), "", sandbox=True)).send(
        messages(settings, "a@example.org")
    )
    assert recorder.requests[0].headers["X-Postmark-Server-Token"] == "POSTMARK_API_TEST"


def test_postmark_wrong_length_answer_is_unreadable(settings: Settings) -> None:
    recorder = Recorder(httpx.Response(200, json=[]))
    (result,) = PostmarkProvider(Options(client(recorder), "t")).send(
        messages(settings, "a@example.org")
    )
    assert result.status is Status.UNCERTAIN and "is base_url right?" in result.reason


# --- SendGrid ------------------------------------------------------------------------------


def test_sendgrid_one_body_with_substitutions(settings: Settings) -> None:
    recorder = Recorder(httpx.Response(202, headers={"X-Message-Id": "sg-1"}))
    provider = SendGridProvider(Options(client(recorder), "SG.key"), base_url="https://eu.example")
    batch = messages(settings, "a@example.org", "b@example.org")
    results = provider.send(batch)
    assert [(r.status, r.message_id) for r in results] == [(Status.SENT, "sg-1")] * 2
    request = recorder.requests[0]
    assert str(request.url) == "https://eu.example/v3/mail/send"
    assert request.headers["Authorization"] == "Bearer SG.key"
    body = json.loads(request.content)
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["mail_settings"]["sandbox_mode"]["enable"] is False
    first = body["personalizations"][0]
    assert first["to"] == [{"email": "a@example.org", "name": "Ann <&> Co"}]
    html = body["content"][1]["value"]
    for tag, value in first["substitutions"].items():
        html = html.replace(tag, value)
    assert html == batch[0].html  # merging gives exactly the personalized HTML
    assert first["headers"]["Message-ID"] == batch[0].message_id
    # what differs per recipient travels with each; the rest once, for the whole request
    assert set(first["headers"]) == {"Message-ID", "List-Unsubscribe"}
    assert first["headers"]["List-Unsubscribe"] == batch[0].headers["List-Unsubscribe"]
    shared = {k: v for k, v in batch[0].headers.items() if k not in first["headers"]}
    assert body["headers"] == shared and "List-Unsubscribe-Post" in shared


def test_sendgrid_names_lose_commas(settings: Settings) -> None:
    recorder = Recorder(httpx.Response(202))
    batch = messages(settings, "a@example.org", name="Smith, Ann; Dr")
    SendGridProvider(Options(client(recorder), "k")).send(batch)
    to = json.loads(recorder.requests[0].content)["personalizations"][0]["to"][0]
    assert "," not in to["name"] and ";" not in to["name"]


def test_sendgrid_400_blames_one_personalization(settings: Settings) -> None:
    error = {"errors": [{"message": "Invalid", "field": "personalizations.1.to.0.email"}]}
    recorder = Recorder(httpx.Response(400, json=error))
    results = SendGridProvider(Options(client(recorder), "k")).send(
        messages(settings, "a@example.org", "bad@example.org", "c@example.org")
    )
    assert [r.status for r in results] == [Status.RETRY, Status.REJECTED, Status.RETRY]
    assert "personalizations.1.to.0.email" in results[1].reason


def test_sendgrid_blames_by_field_not_by_wording(settings: Settings) -> None:
    error = {"errors": [{"message": "see personalizations.1 docs", "field": None}]}
    results = SendGridProvider(
        Options(client(Recorder(httpx.Response(400, json=error))), "k")
    ).send(messages(settings, "a@example.org", "b@example.org"))
    assert [r.status for r in results] == [Status.REJECTED] * 2


def test_sendgrid_sandbox_answers_200(settings: Settings) -> None:
    recorder = Recorder(httpx.Response(200))
    provider = SendGridProvider(Options(client(recorder), "k", sandbox=True))
    (result,) = provider.send(messages(settings, "a@example.org"))
    assert result.status is Status.SENT
    assert json.loads(recorder.requests[0].content)["mail_settings"]["sandbox_mode"] == {
        "enable": True
    }
    (other,) = SendGridProvider(Options(client(recorder), "k")).send(
        messages(settings, "a@example.org")
    )
    assert other.status is Status.UNCERTAIN  # 200 without sandbox is not SendGrid's answer


# --- Mailgun -------------------------------------------------------------------------------


def form(request: httpx.Request) -> list[tuple[str, str]]:
    request.read()
    parsed = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode() + request.content
    )
    return [
        (str(p.get_param("name", header="content-disposition")), p.get_content())
        for p in parsed.iter_parts()
    ]


def test_mailgun_batch_with_recipient_variables(settings: Settings) -> None:
    recorder = Recorder(httpx.Response(200, json={"id": "<mg-1@mg>", "message": "Queued."}))
    provider = MailgunProvider(
        Options(client(recorder), "mg-key"), domain="mg.example.org", region="eu"
    )
    batch = messages(settings, "a@example.org", "b@example.org")
    results = provider.send(batch)
    assert [(r.status, r.message_id) for r in results] == [(Status.SENT, "<mg-1@mg>")] * 2
    request = recorder.requests[0]
    assert str(request.url) == "https://api.eu.mailgun.net/v3/mg.example.org/messages"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"api:mg-key").decode()
    assert request.headers["content-type"].startswith("multipart/form-data")
    fields = form(request)
    names = [n for n, _ in fields]
    assert names.count("to") == 2 and "recipient-variables" in names
    values = dict(fields)
    variables = json.loads(values["recipient-variables"])
    # Every variable's name starts with the request's random secret (tests/test_merge_tags.py)
    tag = re.fullmatch(
        r"%recipient\.([0-9a-f]{16})_h:List-Unsubscribe%", values["h:List-Unsubscribe"]
    )
    assert tag is not None, values["h:List-Unsubscribe"]
    secret = tag.group(1)
    assert variables["b@example.org"][f"{secret}_name_html"] == "Ann &lt;&amp;&gt; Co"
    assert variables["a@example.org"][f"{secret}_h:List-Unsubscribe"].startswith(
        "<https://example.org/u?t=0"
    )
    assert values["h:List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    mine = variables["a@example.org"]
    html = values["html"].replace(f"%recipient.{secret}_name_html%", mine[f"{secret}_name_html"])
    html = html.replace(
        f"%recipient.{secret}_unsubscribe_url_html%", mine[f"{secret}_unsubscribe_url_html"]
    )
    assert html == batch[0].html
    assert "o:testmode" not in names


def test_mailgun_refused_batch_is_resent_one_by_one(settings: Settings) -> None:
    refused = httpx.Response(400, json={"message": "to parameter is not a valid address"})
    ok = httpx.Response(200, json={"id": "<one@mg>", "message": "Queued."})
    recorder = Recorder(refused, ok, refused, ok)
    provider = MailgunProvider(
        Options(client(recorder), "k", sandbox=True), domain="mg.example.org"
    )
    results = provider.send(messages(settings, "a@example.org", "b@example.org", "c@example.org"))
    assert [r.status for r in results] == [Status.SENT, Status.REJECTED, Status.SENT]
    assert len(recorder.requests) == 4
    assert all(("o:testmode", "yes") in form(r) for r in recorder.requests)
    assert [n for n, _ in form(recorder.requests[1])].count("to") == 1


# --- Resend --------------------------------------------------------------------------------


def test_resend_idempotency_key_is_stable_per_batch(settings: Settings) -> None:
    recorder = Recorder(
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json={"data": [{"id": "r-1"}, {"id": "r-2"}]}),
    )
    provider = ResendProvider(Options(client(recorder), "re_k", idempotency_scope="issue-x"))
    batch = messages(settings, "a@example.org", "b@example.org")
    results = deliver(provider, batch, RetryPolicy(base_delay=0), sleep=lambda s: None)
    assert [r.message_id for r in results] == ["r-1", "r-2"]
    keys = [r.headers["Idempotency-Key"] for r in recorder.requests]
    assert keys[0] == keys[1] == idempotency_key("issue-x", batch)
    assert idempotency_key("issue-x", batch[:1]) != keys[0]
    assert recorder.requests[0].headers["x-batch-validation"] == "permissive"
    assert json.loads(recorder.requests[0].content)[0]["headers"]["List-Unsubscribe-Post"]


def test_resend_permissive_errors_by_index(settings: Settings) -> None:
    answer = {"data": [{"id": "r-1"}, {"id": "r-3"}], "errors": [{"index": 1, "message": "bad"}]}
    recorder = Recorder(httpx.Response(200, json=answer))
    results = ResendProvider(Options(client(recorder), "re_k")).send(
        messages(settings, "a@example.org", "b@example.org", "c@example.org")
    )
    assert [(r.status, r.message_id) for r in results] == [
        (Status.SENT, "r-1"),
        (Status.REJECTED, ""),
        (Status.SENT, "r-3"),
    ]


def test_resend_concurrent_idempotent_request_is_retried(settings: Settings) -> None:
    busy = {"statusCode": 409, "message": "in progress", "name": "concurrent_idempotent_requests"}
    recorder = Recorder(httpx.Response(409, json=busy))
    (result,) = ResendProvider(Options(client(recorder), "re_k")).send(
        messages(settings, "a@example.org")
    )
    assert result.status is Status.RETRY
    other = {**busy, "name": "invalid_idempotent_request", "message": busy["name"]}
    (result,) = ResendProvider(
        Options(client(Recorder(httpx.Response(409, json=other))), "re_k")
    ).send(messages(settings, "a@example.org"))
    assert result.status is Status.REJECTED  # decided by the error's name, not its wording


# --- shared HTTP handling ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (httpx.ConnectError("refused"), Status.RETRY),
        (httpx.ConnectTimeout("no route"), Status.RETRY),
        (httpx.ReadTimeout("slow"), Status.UNCERTAIN),
        (httpx.RemoteProtocolError("peer closed connection"), Status.UNCERTAIN),
        (httpx.Response(503, text="down"), Status.RETRY),
        (httpx.Response(422, json={"ErrorCode": 300, "Message": "Invalid"}), Status.REJECTED),
    ],
)
def test_transport_failures_and_statuses(
    settings: Settings, answer: httpx.Response | Exception, status: Status
) -> None:
    assert answer_one(settings, answer).status is status


def test_auth_failure_names_variable_and_hides_key(settings: Settings) -> None:
    key = "SG.very-secret-value"
    echo = httpx.Response(401, json={"errors": [{"message": f"bad key {key}"}]})
    with pytest.raises(ProviderAuthError) as info:
        SendGridProvider(Options(client(Recorder(echo)), key)).send(
            messages(settings, "a@example.org")
        )
    text = str(info.value)
    assert "SENDGRID_API_KEY" in text and key not in text and "[redacted]" in text
    mailgun_echo = httpx.Response(
        403, text="denied " + base64.b64encode(b"api:mg-secret-key").decode()
    )
    with pytest.raises(ProviderAuthError) as info:
        MailgunProvider(
            Options(client(Recorder(mailgun_echo)), "mg-secret-key"), domain="d.org"
        ).send(messages(settings, "a@example.org"))
    assert "mg-secret-key" not in str(info.value) and "YXBp" not in str(info.value)


def answer_one(settings: Settings, answer: httpx.Response | Exception) -> SendResult:
    """What the Postmark adapter makes of `answer` to a one-message batch."""
    (result,) = PostmarkProvider(Options(client(Recorder(answer)), "t")).send(
        messages(settings, "a@example.org")
    )
    return result


@pytest.fixture
def retry_after(settings: Settings) -> Callable[[httpx.Response], float | None]:
    """How long the shared HTTP code tells an adapter to wait after a response."""
    return lambda response: answer_one(settings, response).retry_after


@pytest.fixture
def error_text(settings: Settings) -> Callable[[httpx.Response], str]:
    """The provider's own words, as an adapter quotes them after "HTTP <status>: "."""
    return lambda r: answer_one(settings, r).reason.partition(f"HTTP {r.status_code}: ")[2]


def test_retry_after_forms(retry_after: Callable[[httpx.Response], float | None]) -> None:
    assert retry_after(httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    date = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after(date) == 0.0  # in the past
    assert retry_after(httpx.Response(429, headers={"ratelimit-reset": "3"})) == 3.0
    assert retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    assert retry_after(httpx.Response(429)) is None


def test_error_text_shapes(error_text: Callable[[httpx.Response], str]) -> None:
    assert error_text(httpx.Response(422, json={"ErrorCode": 300, "Message": "Bad"})) == (
        "Bad (300)"
    )
    assert error_text(httpx.Response(400, json={"message": "nope"})) == "nope"
    assert error_text(httpx.Response(502, text="<h1>Bad gateway</h1>")).startswith("text/plain")


# --- deliver -------------------------------------------------------------------------------


class Scripted:
    """A provider whose answers are scripted, to test deliver's loop on its own."""

    name = "scripted"
    max_batch = 2

    def __init__(self, *rounds: list[SendResult]) -> None:
        self.rounds = list(rounds)
        self.batches: list[list[str]] = []

    def send(self, batch: list[Message]) -> list[SendResult]:  # type: ignore[override]
        self.batches.append([m.recipient.email for m in batch])
        answer = self.rounds.pop(0)
        return [
            SendResult(m.recipient.email, r.status, r.message_id, r.reason, r.retry_after)
            for m, r in zip(batch, answer, strict=False)
        ]


def test_deliver_retries_only_what_failed_and_waits(settings: Settings) -> None:
    retry = SendResult("", Status.RETRY, reason="HTTP 429", retry_after=3.0)
    sent = SendResult("", Status.SENT, "id")
    provider = Scripted([sent, retry], [sent], [sent])
    waits: list[float] = []
    batch = messages(settings, "a@example.org", "b@example.org", "c@example.org")
    results = deliver(provider, batch, RetryPolicy(base_delay=0.1), waits.append, lambda: 0.0)
    assert [r.status for r in results] == [Status.SENT] * 3
    assert provider.batches == [
        ["a@example.org", "b@example.org"],
        ["c@example.org"],
        ["b@example.org"],
    ]
    assert waits == [3.0]


def test_deliver_backoff_is_capped_and_gives_up(settings: Settings) -> None:
    retry = SendResult("", Status.RETRY, reason="HTTP 500")
    provider = Scripted(*([[retry]] * 4))
    waits: list[float] = []
    policy = RetryPolicy(attempts=4, base_delay=10, max_delay=15)
    (result,) = deliver(
        provider, messages(settings, "a@example.org"), policy, waits.append, lambda: 0.999
    )
    assert result.status is Status.FAILED and "gave up after 4 attempts: HTTP 500" in result.reason
    assert waits == pytest.approx([9.995, 14.9925, 14.9925])


def test_deliver_stops_when_asked_to_wait_too_long(settings: Settings) -> None:
    retry = SendResult("", Status.RETRY, reason="HTTP 429", retry_after=3600)
    waits: list[float] = []
    (result,) = deliver(Scripted([retry]), messages(settings, "a@example.org"), None, waits.append)
    assert result.status is Status.FAILED and "asked to wait 3600 s" in result.reason
    assert waits == []


@pytest.mark.parametrize("name", ['Ann <&> "Co"', "Zoë “quoted” \\ back", "", "tab\there"])
def test_spliced_bodies_equal_plain_encoding(settings: Settings, name: str) -> None:
    import orjson

    from newsletter.delivery.providers.postmark import build_request

    rendered = Rendered(
        subject="S",
        html='<p>“Hi” x-newsletter:name</p><a href="x-newsletter:unsubscribe_url">u</a>\n\t\\',
        text="Hi x-newsletter:name — x-newsletter:email\n",
    )
    batch = [
        build_message(
            settings,
            "i",
            rendered,
            Recipient(f"r{n}@example.org", name, 'https://e.org/u?a=1&b="2"'),
        )
        for n in range(3)
    ]
    # What the Postmark adapter puts on the wire, spliced from the escaped parts.
    recorder = Recorder(httpx.Response(200, json=[{"ErrorCode": 0, "MessageID": "x"}] * 3))
    PostmarkProvider(Options(client(recorder), "t"), message_stream="broadcast").send(batch)
    spliced = recorder.requests[0].read()
    assert spliced == orjson.dumps(build_request(batch, "broadcast"))
