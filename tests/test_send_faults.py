"""Sending through outages and strange answers: nothing burnt, nothing lost, one clear line.

Each case is a finding of the hardening review; counted at the loopback fake provider.
"""

from __future__ import annotations

import email
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from email import policy
from pathlib import Path

import pytest
from test_engine import ENV, populate, tuned
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.delivery.engine import send_issue
from newsletter.delivery.pacing import TokenBucket
from newsletter.delivery.status import ledger_status
from newsletter.errors import ConfigError, UsageError
from newsletter.storage import open_engine

from conftest import EXAMPLE
from fake_provider import KEYS, FakeProvider


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_outage_longer_than_the_retries_leaves_everyone_pending(
    settings: Settings, issue_dir: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    engine = open_engine(settings)
    addresses = populate(engine, tmp_path, 12)
    down = tuned(settings, "postmark", f"http://127.0.0.1:{closed_port()}", batch_size=4)
    report = send_issue(down, issue_dir, environ=ENV)
    assert report.sent == 0 and report.failed == 0 and not report.finished
    assert "the provider kept failing" in report.stopped and not report.interrupted
    status = ledger_status(engine, EXAMPLE, 600)
    assert status.counts["pending"] == 12 and status.counts["failed"] == 0
    # The provider is back: the same command sends everyone, once.
    up = tuned(settings, "postmark", fake.url, batch_size=4)
    again = send_issue(up, issue_dir, environ=ENV)
    assert again.finished and again.sent == 12
    assert Counter(fake.recipients()) == Counter(addresses)


def test_5xx_outlasting_the_retries_stops_with_exit_2_and_nothing_failed(
    settings: Settings, workspace: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    populate(open_engine(settings), tmp_path, 6)
    fake.faults.extend(["500"] * 40)
    fake.retry_after = "0"
    result = _cli_send(workspace, fake, {"NEWSLETTER_PROVIDER_RETRY_DELAY": "0.01"})
    assert result.returncode == 2, result.stderr
    assert "Run the same command again when the provider is back" in result.stderr
    assert "Traceback" not in result.stderr
    status = ledger_status(open_engine(settings), EXAMPLE, 600)
    assert status.counts["pending"] == 6 and status.counts["failed"] == 0


def test_retry_failed_resends_what_the_provider_refused(
    settings: Settings, issue_dir: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    engine = open_engine(settings)
    populate(engine, tmp_path, 4)
    populate(engine, tmp_path, 2, prefix="inactive")  # the fake refuses these (406)
    postmark = tuned(settings, "postmark", fake.url, batch_size=10)
    first = send_issue(postmark, issue_dir, environ=ENV)
    assert (first.sent, first.failed) == (4, 2)
    again = send_issue(postmark, issue_dir, environ=ENV, retry_failed=True)
    assert (again.sent, again.failed) == (0, 2)  # refused again, never sent twice
    assert max(Counter(fake.recipients()).values()) == 1
    assert len(fake.seen) == 2


def test_a_very_long_retry_after_stops_the_run_saying_until_when(
    settings: Settings, issue_dir: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    engine = open_engine(settings)
    populate(engine, tmp_path, 6)
    fake.faults.append("429")
    fake.retry_after = "99999999"
    started = time.monotonic()
    report = send_issue(tuned(settings, "postmark", fake.url, batch_size=3, concurrency=1),
                        issue_dir, environ=ENV)  # fmt: skip
    assert time.monotonic() - started < 30, "it waited for the provider's absurd pause"
    assert "the provider asked to wait 99999999 s (until" in report.stopped
    status = ledger_status(engine, EXAMPLE, 600)
    assert status.counts["pending"] + status.counts["sent"] == 6 and status.counts["failed"] == 0


def test_a_short_retry_after_shows_on_the_progress_line(
    settings: Settings, issue_dir: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    populate(open_engine(settings), tmp_path, 4)
    fake.faults.append("429")
    fake.retry_after = "1"
    notes: list[str] = []
    report = send_issue(
        tuned(settings, "postmark", fake.url, batch_size=2, concurrency=1),
        issue_dir,
        environ=ENV,
        progress=lambda p: notes.append(p.note),
    )
    assert report.finished and report.sent == 4
    assert any(n.startswith("the provider asked to wait until ") for n in notes), notes


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"rate": float("nan")}, "--rate: "),
        ({"rate": -1.0}, "--rate: must be at least 0"),
        ({"concurrency": 0}, "--concurrency: must be at least 1"),
        ({"concurrency": 1000}, "--concurrency: must be at least 1 and at most 64"),
    ],
)
def test_bad_options_are_refused_before_anything_is_claimed(
    settings: Settings, issue_dir: Path, tmp_path: Path, options: dict[str, float], expected: str
) -> None:
    engine = open_engine(settings)
    populate(engine, tmp_path, 3)
    with pytest.raises(UsageError, match=expected):
        send_issue(tuned(settings), issue_dir, environ=ENV, **options)  # type: ignore[arg-type]
    assert not ledger_status(engine, EXAMPLE, 600).exists


@pytest.mark.parametrize("key", ["abc\ndef-0123456789", "clé-0123456789", "a\x00b-0123456789"])
def test_a_malformed_key_is_refused_before_anything_is_claimed(
    settings: Settings, issue_dir: Path, tmp_path: Path, fake: FakeProvider, key: str
) -> None:
    engine = open_engine(settings)
    populate(engine, tmp_path, 3)
    with pytest.raises(ConfigError, match="POSTMARK_SERVER_TOKEN"):
        send_issue(tuned(settings, "postmark", fake.url), issue_dir,
                   environ={**ENV, "POSTMARK_SERVER_TOKEN": key})  # fmt: skip
    assert not ledger_status(engine, EXAMPLE, 600).exists and not fake.seen


def test_the_token_bucket_starts_with_at_most_a_second_of_tokens() -> None:
    stop = threading.Event()
    slow = TokenBucket(0.0001, 1)
    stopper = threading.Timer(0.3, stop.set)
    started = time.monotonic()  # before the timer starts: its 0.3 s all come after this
    stopper.start()
    assert not slow.take(1, stop)  # waits (until stopped), never sends at once
    assert time.monotonic() - started >= 0.25
    fast = TokenBucket(10, 10)
    assert fast.take(10, threading.Event())  # one second's worth is there at once


def _cli_send(
    workspace: Path, fake: FakeProvider, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.run(
        [sys.executable, "-m", "newsletter", "send", "welcome", "--yes", *args],
        cwd=workspace,
        env={
            **clean,
            **ENV,
            "NEWSLETTER_PROVIDER": "postmark",
            "NEWSLETTER_PROVIDER_BASE_URL": fake.url,
            "NEWSLETTER_SENDING_RATE": "100000",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_ctrl_c_quits_at_once(
    settings: Settings, workspace: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    engine = open_engine(settings)
    populate(engine, tmp_path, 20)
    fake.delay = 5.0  # the provider answers long after the second Ctrl-C
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", "welcome", "--yes"],
        cwd=workspace,
        env={**clean, **ENV, "NEWSLETTER_PROVIDER": "postmark",
             "NEWSLETTER_PROVIDER_BASE_URL": fake.url, "NEWSLETTER_PROVIDER_TIMEOUT": "60",
             "NEWSLETTER_SENDING_BATCH_SIZE": "5", "NEWSLETTER_SENDING_RATE": "100000"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not fake.seen and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    quit_at = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert time.monotonic() - quit_at < 10, "the second Ctrl-C waited for the provider"
    assert process.returncode == 130, (out, err)
    assert "Quit: the batches on the wire are uncertain" in err and "Traceback" not in err
    status = ledger_status(engine, EXAMPLE, 600)
    assert status.counts["in_flight"] == 0
    assert 0 < status.counts["uncertain"] <= 20 and status.counts["sent"] == 0
    fake.delay = 0.0


def test_send_test_takes_display_names_and_sends_once_per_inbox(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)
    result = CliRunner().invoke(
        app,
        ["send-test", "welcome", "--to", "Zoë Ngata <zoe@example.org>", "--to", "ME@example.org",
         "--to", "me@example.org"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 of 2 sent" in result.output
    sent = sorted((workspace / ".newsletter" / "outbox" / EXAMPLE).glob("*.eml"))
    to = sorted(str(email.message_from_bytes(p.read_bytes(), policy=policy.default)["To"])
                for p in sent)  # fmt: skip
    assert to == ["Test Reader <ME@example.org>", "Zoë Ngata <zoe@example.org>"]


def test_status_of_an_issue_not_sent_yet_says_who_it_would_go_to(
    settings: Settings, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(open_engine(settings), tmp_path, 7)
    monkeypatch.chdir(workspace)
    result = CliRunner().invoke(app, ["status", "welcome"])
    assert result.exit_code == 0, result.output
    assert "has not been sent yet; it would go to 7 active subscribers" in result.output


def test_status_cuts_a_long_list_at_twenty(
    settings: Settings, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    fake: FakeProvider,
) -> None:  # fmt: skip
    populate(open_engine(settings), tmp_path, 30, prefix="inactive")  # all refused
    _cli_send(workspace, fake, {"NEWSLETTER_SENDING_MAX_FAILED_BATCHES": "20"})
    monkeypatch.chdir(workspace)
    short = CliRunner().invoke(app, ["status", "welcome"]).output
    assert short.count("\nfailed ") == 20 and "... and 10 more failed (--all" in short
    full = CliRunner().invoke(app, ["status", "welcome", "--all"]).output
    assert full.count("\nfailed ") == 30


def test_the_database_and_its_folder_are_private(settings: Settings, tmp_path: Path) -> None:
    engine = open_engine(settings)
    populate(engine, tmp_path, 2)
    engine.dispose()
    state = settings.state_dir
    assert state.stat().st_mode & 0o777 == 0o700
    for path in state.glob("newsletter.db*"):
        assert path.stat().st_mode & 0o777 == 0o600, path


_ = KEYS  # the fake's keys are in ENV
