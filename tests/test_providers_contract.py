"""One contract, every provider: send-test against a loopback server that speaks its API."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from newsletter.compose.message import build_message
from newsletter.compose.personalize import Recipient
from newsletter.compose.render import Rendered
from newsletter.config import ProviderSettings, Settings
from newsletter.delivery.plan import batch_size
from newsletter.delivery.providers import Status, make_client, make_provider, provider_info
from newsletter.delivery.test_copies import RetryPolicy, deliver, send_test
from newsletter.errors import ConfigError, ProviderAuthError

from conftest import EXAMPLE
from fake_provider import KEYS, MAILGUN_DOMAIN, FakeProvider

HTTP_PROVIDERS = ["postmark", "sendgrid", "mailgun", "resend"]
KEY_VARIABLES = {
    "postmark": "POSTMARK_SERVER_TOKEN",
    "sendgrid": "SENDGRID_API_KEY",
    "mailgun": "MAILGUN_API_KEY",
    "resend": "RESEND_API_KEY",
}
FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
ADDRESSES = ["ana@example.org", "bo@example.net", "cy@example.org"]


def configured(settings: Settings, name: str, url: str, timeout: float = 5.0) -> Settings:
    return dataclasses.replace(
        settings,
        provider=ProviderSettings(name=name, base_url=url, domain=MAILGUN_DOMAIN, timeout=timeout),
    )


def env_for(name: str, key: str | None = None) -> dict[str, str]:
    return {KEY_VARIABLES[name]: KEYS[name] if key is None else key}


@pytest.fixture(params=HTTP_PROVIDERS)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_send_reaches_every_recipient_with_headers(
    settings: Settings, issue_dir: Path, fake: FakeProvider, name: str
) -> None:
    report = send_test(
        configured(settings, name, fake.url),
        issue_dir,
        ADDRESSES,
        environ=env_for(name),
        policy=FAST,
    )
    assert [r.status for r in report.results] == [Status.SENT] * 3
    assert all(r.message_id for r in report.results)
    assert sorted(fake.recipients()) == sorted(ADDRESSES)
    ids = set()
    for got in fake.accepted:
        assert got.subject.startswith("[TEST] Millbrook in November")
        assert f"<strong>{got.to}</strong>" in got.html  # the recipient's own address
        assert got.to in got.text and "x-newsletter:" not in got.html + got.text
        assert "token=test" in got.text
        headers = {k.lower(): v for k, v in got.headers.items()}
        assert headers["list-unsubscribe-post"] == "List-Unsubscribe=One-Click"
        assert headers["list-unsubscribe"].startswith("<https://millbrook.example.org/unsub")
        assert "<mailto:" not in headers["list-unsubscribe"]  # unsubscribe_mailto is unset
        assert headers["list-id"].endswith("<millbrook-civic-bulletin.millbrook.example.org>")
        ids.add(headers["message-id"])
    assert len(ids) == 3  # one Message-ID per recipient
    if name in fake.validators:
        assert name in fake.schema_checked  # the body matched the official schema


def test_batches_split_at_the_provider_limit(
    settings: Settings, fake: FakeProvider, name: str
) -> None:
    messages = _messages(settings, [f"r{n}@example.org" for n in range(5)])
    with make_client(5.0) as client:
        provider = make_provider(
            configured(settings, name, fake.url), client=client, environ=env_for(name)
        )
        provider.max_batch = 2  # type: ignore[misc]
        results = deliver(provider, messages, FAST)
    assert [r.status for r in results] == [Status.SENT] * 5
    assert len(fake.seen) == 3
    assert Counter(fake.recipients()) == Counter(f"r{n}@example.org" for n in range(5))


def test_invalid_address_rejected_alone(settings: Settings, fake: FakeProvider, name: str) -> None:
    addresses = ["ok@example.org", "invalid@example.org", "fine@example.org"]
    results = _deliver(settings, fake, name, addresses)
    assert [r.status for r in results] == [Status.SENT, Status.REJECTED, Status.SENT]
    assert "invalid" in results[1].reason.lower() or "address" in results[1].reason.lower()
    assert sorted(fake.recipients()) == ["fine@example.org", "ok@example.org"]


@pytest.mark.parametrize("fault", ["500", "502-html", "429", "drop", "slow"])
def test_transient_faults_are_retried(
    settings: Settings, fake: FakeProvider, name: str, fault: str
) -> None:
    fake.faults.append(fault)
    fake.retry_after = "2"
    fake.slow_seconds = 1.5
    waits: list[float] = []
    messages = _messages(settings, ADDRESSES)
    with make_client(0.5) as client:
        provider = make_provider(
            configured(settings, name, fake.url), client=client, environ=env_for(name)
        )
        results = deliver(provider, messages, FAST, sleep=waits.append)
    assert [r.status for r in results] == [Status.SENT] * 3
    assert len(waits) == 1
    if fault == "429":
        assert waits[0] >= 2.0  # Retry-After honoured
    else:
        assert waits[0] < 1.0
    received = Counter(fake.recipients())
    if fault in ("drop", "slow") and name != "resend":
        # The first request was processed but its answer was lost: sent again.
        assert set(received.values()) <= {1, 2}
    else:
        # Resend's Idempotency-Key makes the retry return the first answer.
        assert received == Counter(ADDRESSES)


def test_gives_up_after_repeated_failures(
    settings: Settings, fake: FakeProvider, name: str
) -> None:
    fake.faults.extend(["500"] * 10)
    results = _deliver(settings, fake, name, ADDRESSES[:1])
    assert results[0].status is Status.FAILED
    assert "gave up after 4 attempts" in results[0].reason and "HTTP 500" in results[0].reason


def test_html_instead_of_json(settings: Settings, fake: FakeProvider, name: str) -> None:
    """A 2xx that is not the provider's answer may still mean "accepted": uncertain."""
    fake.faults.append("html")
    with make_client(5.0) as client:
        provider = make_provider(
            configured(settings, name, fake.url), client=client, environ=env_for(name)
        )
        (result,) = provider.send(_messages(settings, ADDRESSES[:1]))
    assert result.status is Status.UNCERTAIN
    assert "is base_url right?" in result.reason and "text/html" in result.reason


def test_rejected_key_names_the_variable(settings: Settings, fake: FakeProvider, name: str) -> None:
    wrong = "wrong-but-secret-0123456789"
    with pytest.raises(ProviderAuthError) as info:
        _deliver(settings, fake, name, ADDRESSES[:1], key=wrong)
    assert KEY_VARIABLES[name] in str(info.value) and "rejected the API key" in str(info.value)
    assert wrong not in str(info.value)


def test_missing_key(settings: Settings, issue_dir: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=f"set {KEY_VARIABLES[name]} or NEWSLETTER_API_KEY"):
        send_test(
            configured(settings, name, "http://127.0.0.1:9"), issue_dir, ADDRESSES, environ={}
        )


def test_newsletter_api_key_works_for_every_provider(
    settings: Settings, issue_dir: Path, fake: FakeProvider, name: str
) -> None:
    report = send_test(
        configured(settings, name, fake.url),
        issue_dir,
        ADDRESSES[:1],
        environ={"NEWSLETTER_API_KEY": KEYS[name]},
        policy=FAST,
    )
    assert report.results[0].status is Status.SENT


def test_sandbox_uses_the_providers_test_mode(
    settings: Settings, issue_dir: Path, fake: FakeProvider, name: str
) -> None:
    report = send_test(
        configured(settings, name, fake.url),
        issue_dir,
        ADDRESSES[:2],
        environ=env_for(name, "" if name == "postmark" else None),
        sandbox=True,
        policy=FAST,
    )
    assert [r.status for r in report.results] == [Status.SENT] * 2
    if name == "resend":
        assert fake.recipients() == ["delivered+0@resend.dev", "delivered+1@resend.dev"]
    else:
        assert fake.recipients() == []  # validated, not delivered
    body = fake.seen[0]
    if name == "postmark":
        assert body.headers["x-postmark-server-token"] == "POSTMARK_API_TEST"
    if name == "mailgun":
        assert b'name="o:testmode"' in body.body


def test_registry_states_each_adapters_own_facts(
    settings: Settings, fake: FakeProvider, name: str
) -> None:
    info = provider_info(name)
    with make_client(5.0) as client:
        provider = make_provider(
            configured(settings, name, fake.url), client=client, environ=env_for(name)
        )
    assert (info.max_batch, info.idempotent) == (provider.max_batch, provider.idempotent)
    assert info.key_variable == KEY_VARIABLES[name]
    assert 0 < info.request_budget <= 8_000_000 and info.default_rate > 0


def test_a_full_batch_of_a_large_issue_fits_the_request_budget(
    settings: Settings, fake: FakeProvider, name: str
) -> None:
    """plan.batch_size: a provider that carries the body once a request takes its whole
    batch limit; one that carries it in every message, as many as its budget holds."""
    words = " ".join(f"word{n}" for n in range(9_000))  # ~80 KB of HTML and text
    info = provider_info(name)
    configured_settings = configured(settings, name, fake.url)
    rendered = Rendered(subject="Large", html=f"<p>{words} x-newsletter:name</p>", text=words)
    size = batch_size(configured_settings, name, rendered)
    if info.shares_body:
        assert size == info.max_batch
    else:
        assert size < info.max_batch and size * len(words) * 2 <= info.request_budget
    messages = _messages(settings, [f"r{n}@example.org" for n in range(size)], rendered)
    with make_client(30.0) as client:
        provider = make_provider(configured_settings, client=client, environ=env_for(name))
        results = provider.send(messages)
    assert [r.status for r in results] == [Status.SENT] * size
    assert len(fake.seen) == 1 and len(fake.seen[0].body) <= info.request_budget


def test_unknown_provider(settings: Settings, issue_dir: Path) -> None:
    with pytest.raises(ConfigError, match="unknown provider 'pigeon' \\(known: outbox, postmark"):
        send_test(settings, issue_dir, ADDRESSES, environ={}, provider_name="pigeon")


# --- the command line ----------------------------------------------------------------------


def _cli(workspace: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    clean = {k: v for k, v in clean.items() if k not in KEY_VARIABLES.values()}
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=workspace,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _provider_env(name: str, url: str) -> dict[str, str]:
    return {
        "NEWSLETTER_PROVIDER": name,
        "NEWSLETTER_PROVIDER_BASE_URL": url,
        "NEWSLETTER_PROVIDER_DOMAIN": MAILGUN_DOMAIN,
        "NEWSLETTER_PROVIDER_TIMEOUT": "2",
        "NEWSLETTER_PROVIDER_RETRIES": "3",
        "NEWSLETTER_PROVIDER_RETRY_DELAY": "0.01",
    }


def test_cli_send_test_reports_each_recipient(
    workspace: Path, fake: FakeProvider, name: str
) -> None:
    fake.faults.append("429")
    fake.retry_after = "1"
    env = {**_provider_env(name, fake.url), **env_for(name)}
    result = _cli(
        workspace,
        "send-test",
        "welcome",
        "--to",
        "ana@example.org",
        "--to",
        "invalid@example.org",
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout.splitlines()[0].startswith("sent    ana@example.org  ")
    assert result.stderr.startswith("rejected invalid@example.org  ")
    assert f"1 of 2 sent through {name}: [TEST] Millbrook" in result.stdout
    assert (workspace / "build" / EXAMPLE / "rendered.json").is_file()  # built on the way
    assert not (workspace / ".newsletter" / "newsletter.db").exists()  # no ledger


@pytest.mark.parametrize("debug", [False, True])
def test_cli_never_prints_the_key(
    workspace: Path, fake: FakeProvider, name: str, debug: bool
) -> None:
    secret = KEYS[name]
    flags = ["--debug"] if debug else []
    env = {**_provider_env(name, fake.url), **env_for(name)}
    fake.faults.extend(["500"] * 3)
    failing = _cli(workspace, *flags, "send-test", "welcome", "--to", "a@example.org", env=env)
    assert failing.returncode == 1
    assert "gave up after 3 attempts" in failing.stderr and "HTTP 500" in failing.stderr
    assert not fake.faults
    wrong = _cli(
        workspace,
        *flags,
        "send-test",
        "welcome",
        "--to",
        "a@example.org",
        env={**env, KEY_VARIABLES[name]: secret + "-wrong"},
    )
    assert wrong.returncode == 1 and "rejected the API key" in wrong.stderr
    if debug:
        assert "Traceback" in wrong.stderr
    for run in (failing, wrong):
        assert secret not in run.stdout + run.stderr


def test_cli_exit_1_when_nothing_sent(workspace: Path, fake: FakeProvider) -> None:
    env = {**_provider_env("postmark", fake.url), **env_for("postmark")}
    result = _cli(workspace, "send-test", "welcome", "--to", "inactive@example.org", env=env)
    assert result.returncode == 1
    assert "marked as inactive" in result.stderr and "(ErrorCode 406)" in result.stderr


def test_cli_bad_input_lines(workspace: Path) -> None:
    result = _cli(workspace, "send-test", "welcome", "--to", "not-an-address", env={})
    assert result.returncode == 1
    assert result.stderr.startswith("Error: invalid address 'not-an-address'")
    result = _cli(
        workspace, "send-test", "welcome", "--to", "a@example.org", "--provider", "postmark", env={}
    )
    assert result.returncode == 1
    assert result.stderr == (
        "Error: no API key for postmark: set POSTMARK_SERVER_TOKEN or NEWSLETTER_API_KEY "
        "in the environment\n"
    )


def test_cli_outbox_default(workspace: Path) -> None:
    result = _cli(workspace, "send-test", "welcome", "--to", "me@example.org", env={})
    assert result.returncode == 0, result.stderr
    outbox = workspace / ".newsletter" / "outbox" / EXAMPLE
    (eml,) = outbox.glob("*.eml")
    assert "[TEST] Millbrook" in eml.read_text()
    assert '"to": "me@example.org"' in (outbox / "index.jsonl").read_text()


# --- helpers -------------------------------------------------------------------------------


def _messages(settings: Settings, addresses: list[str], rendered: Rendered | None = None) -> list:  # type: ignore[type-arg]
    rendered = rendered or Rendered(
        subject="Hello",
        html="<p>Hi x-newsletter:name, x-newsletter:email</p>"
        "<a href='x-newsletter:unsubscribe_url'>u</a>",
        text="Hi x-newsletter:name\nx-newsletter:unsubscribe_url\n",
    )
    return [
        build_message(
            settings,
            "2026-11-26-welcome",
            rendered,
            Recipient(email=a, name="Reader", unsubscribe_url=f"https://example.org/u?t={n}"),
        )
        for n, a in enumerate(addresses)
    ]


def _deliver(
    settings: Settings, fake: FakeProvider, name: str, addresses: list[str], key: str | None = None
) -> list:  # type: ignore[type-arg]
    with make_client(5.0) as client:
        provider = make_provider(
            configured(settings, name, fake.url), client=client, environ=env_for(name, key)
        )
        return deliver(provider, _messages(settings, addresses), FAST, sleep=lambda s: None)


def test_key_never_in_logs(
    settings: Settings, fake: FakeProvider, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    fake.faults.extend(["500", "drop", "html"])
    _deliver(settings, fake, name, ADDRESSES[:1])
    with pytest.raises(ProviderAuthError):
        _deliver(settings, fake, name, ADDRESSES[:1], key=KEYS[name] + "-wrong")
    assert "HTTP Request: POST" in caplog.text  # httpx did log, at DEBUG and INFO
    assert KEYS[name] not in caplog.text
