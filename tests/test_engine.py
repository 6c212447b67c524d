"""Sending to the list: exactly once, through faults, crashes and several senders."""

from __future__ import annotations

import dataclasses
import email
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from email import policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from newsletter.audience.importing import import_csv
from newsletter.audience.subscribers import add_subscriber, remove_subscriber
from newsletter.config import ProviderSettings, SendingSettings, Settings, load_settings
from newsletter.delivery import ledger
from newsletter.delivery.engine import send_issue
from newsletter.delivery.providers._splice import Splicer
from newsletter.delivery.senders import Sender
from newsletter.delivery.status import ledger_status
from newsletter.delivery.tokens import read_unsubscribe_token
from newsletter.errors import ConfigError, NewsletterError, SendError, SubscriberError
from newsletter.storage import deliveries, departures, open_engine, transaction

from conftest import EXAMPLE
from fake_provider import KEYS, FakeProvider

SECRET = "a-test-signing-secret-0123456789"
ENV = {
    "NEWSLETTER_SECRET_KEY": SECRET,
    "POSTMARK_SERVER_TOKEN": KEYS["postmark"],
    "RESEND_API_KEY": KEYS["resend"],
}


def populate(engine: Engine, tmp_path: Path, count: int, prefix: str = "reader") -> list[str]:
    addresses = [f"{prefix}{n}@example.org" for n in range(count)]
    lines = ["email,name,tags"] + [
        f"{a},Reader {n},{'news' if n % 2 == 0 else 'events'}" for n, a in enumerate(addresses)
    ]
    path = tmp_path / f"{prefix}.csv"
    path.write_text("\n".join(lines) + "\n")
    import_csv(engine, path)
    return addresses


def tuned(
    settings: Settings, provider: str = "outbox", url: str = "", **sending: float
) -> Settings:
    return dataclasses.replace(
        settings,
        provider=ProviderSettings(name=provider, base_url=url, timeout=0.5, retry_delay=0.01),
        sending=dataclasses.replace(SendingSettings(rate=100000), **sending),  # type: ignore[arg-type]
    )


def outbox_recipients(settings: Settings) -> Counter[str]:
    index = settings.state_dir / "outbox" / EXAMPLE / "index.jsonl"
    if not index.exists():
        return Counter()
    return Counter(json.loads(line)["to"] for line in index.read_text().splitlines())


@pytest.fixture
def list_engine(db_settings: Settings) -> Engine:
    engine = open_engine(db_settings)
    yield engine  # type: ignore[misc]
    engine.dispose()


def test_send_reaches_every_active_subscriber_once(
    settings: Settings, issue_dir: Path, tmp_path: Path
) -> None:
    engine = open_engine(settings)
    addresses = populate(engine, tmp_path, 30)
    remove_subscriber(engine, addresses[3])
    settings = tuned(settings, batch_size=7)
    report = send_issue(settings, issue_dir, environ=ENV)
    assert (report.sent, report.failed, report.finished) == (29, 0, True)
    received = outbox_recipients(settings)
    assert set(received) == set(addresses) - {addresses[3]} and set(received.values()) == {1}
    eml = next((settings.state_dir / "outbox" / EXAMPLE).glob("*reader0@*.eml")).read_bytes()
    unsubscribe = str(email.message_from_bytes(eml, policy=policy.default)["List-Unsubscribe"])
    token = unsubscribe.split("token=")[1].split(">")[0]
    subscriber_id, issue = read_unsubscribe_token(token, SECRET)  # type: ignore[misc]
    assert issue == EXAMPLE and subscriber_id > 0
    assert read_unsubscribe_token(token[:-2] + "xx", SECRET) is None
    status = ledger_status(engine, EXAMPLE, 600)
    assert status.counts == {
        "pending": 0,
        "sent": 29,
        "failed": 0,
        "skipped": 0,
        "in_flight": 0,
        "uncertain": 0,
    }
    again = send_issue(settings, issue_dir, environ=ENV)  # nothing left: nothing sent twice
    assert again.sent == 0 and set(outbox_recipients(settings).values()) == {1}


def test_stop_and_resume_and_leaving_in_between(
    settings: Settings, issue_dir: Path, tmp_path: Path
) -> None:
    engine = open_engine(settings)
    addresses = populate(engine, tmp_path, 40)
    settings = tuned(settings, batch_size=5, concurrency=1)
    stop = threading.Event()
    report = send_issue(settings, issue_dir, environ=ENV, stop=stop, progress=lambda p: stop.set())
    assert report.stopped and 0 < report.sent < 40 and not report.finished
    remove_subscriber(engine, addresses[-1])  # unsubscribes after the snapshot
    report = send_issue(settings, issue_dir, environ=ENV)
    assert report.finished and not report.stopped
    received = outbox_recipients(settings)
    assert set(received) == set(addresses[:-1]) and set(received.values()) == {1}
    status = ledger_status(engine, EXAMPLE, 600)
    assert status.counts["skipped"] == 1 and status.counts["sent"] == 39


def test_changed_issue_is_refused(settings: Settings, issue_dir: Path, tmp_path: Path) -> None:
    engine = open_engine(settings)
    populate(engine, tmp_path, 10)
    settings = tuned(settings, batch_size=2, concurrency=1)
    stop = threading.Event()
    send_issue(settings, issue_dir, environ=ENV, stop=stop, progress=lambda p: stop.set())
    toml = issue_dir / "issue.toml"
    toml.write_text(toml.read_text().replace("Millbrook in November", "Millbrook in December"))
    with pytest.raises(NewsletterError, match="the issue changed since its send started"):
        send_issue(settings, issue_dir, environ=ENV)
    report = send_issue(settings, issue_dir, environ=ENV, allow_changed=True)
    assert report.finished and sum(outbox_recipients(settings).values()) == 10


def test_segments(settings: Settings, issue_dir: Path, tmp_path: Path) -> None:
    engine = open_engine(settings)
    populate(engine, tmp_path, 10)
    settings = tuned(settings)
    with pytest.raises(SubscriberError, match="unknown segment: no subscriber has the tag 'nope'"):
        send_issue(settings, issue_dir, environ=ENV, segment="news and nope")
    report = send_issue(settings, issue_dir, environ=ENV, segment="news")
    assert report.sent == 5
    with pytest.raises(NewsletterError, match="started with --segment 'news'"):
        send_issue(settings, issue_dir, environ=ENV)


def test_bad_input(settings: Settings, issue_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(NewsletterError, match="nobody to send to: no active subscribers"):
        send_issue(tuned(settings), issue_dir, environ=ENV)
    engine = open_engine(settings)
    populate(engine, tmp_path, 3)
    postmark = tuned(settings, "postmark", "http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="set NEWSLETTER_SECRET_KEY"):
        send_issue(postmark, issue_dir, environ={"POSTMARK_SERVER_TOKEN": "x"})
    (issue_dir / "flood-defences.html").unlink()
    with pytest.raises(NewsletterError, match="flood-defences.html' not found"):
        send_issue(tuned(settings), issue_dir, environ=ENV)
    assert ledger.find_send(engine, EXAMPLE) is None  # nothing started


def test_second_sender_on_sqlite_is_refused(
    settings: Settings, issue_dir: Path, tmp_path: Path
) -> None:
    engine = open_engine(settings)
    populate(engine, tmp_path, 3)
    with Sender(engine, EXAMPLE):  # another process at work on the same issue
        with pytest.raises(NewsletterError, match="another newsletter send is working on"):
            send_issue(tuned(settings), issue_dir, environ=ENV)


def test_the_send_lock_lives_in_the_database_not_the_workspace(
    settings: Settings, workspace: Path, tmp_path: Path
) -> None:
    """Two workspaces on one SQLite database: the second sender is refused all the same."""
    engine = open_engine(settings)
    populate(engine, tmp_path, 3)
    other = tmp_path / "other"
    shutil.copytree(workspace, other, ignore=shutil.ignore_patterns(".newsletter"))
    shared = dataclasses.replace(
        load_settings(other, environ={}), database_url=settings.database_url
    )
    with Sender(engine, EXAMPLE):
        with pytest.raises(SendError, match="another newsletter send is working on"):
            send_issue(tuned(shared), other / "issues" / EXAMPLE, environ=ENV)
    assert not (other / ".newsletter" / "outbox").exists()


def test_dry_run_writes_nothing(settings: Settings, issue_dir: Path, tmp_path: Path) -> None:
    engine = open_engine(settings)
    populate(engine, tmp_path, 12)
    report = send_issue(tuned(settings), issue_dir, environ=ENV, dry_run=True)
    assert report.dry_run and report.sent == 12 and report.personalize_us > 0
    assert ledger.find_send(engine, EXAMPLE) is None and not outbox_recipients(settings)


# --- through a real HTTP provider ------------------------------------------------------------


def test_provider_faults_end_sent_or_failed_never_twice(
    db_settings: Settings,
    list_engine: Engine,
    issue_dir: Path,
    tmp_path: Path,
    fake: FakeProvider,
) -> None:
    addresses = populate(list_engine, tmp_path, 60)
    add_subscriber(list_engine, "inactive1@example.org")
    add_subscriber(list_engine, "inactive2@example.org")
    fake.faults.extend(["429", "500", "ok", "500", "429", "ok", "500"])
    fake.retry_after = "0"
    settings = tuned(db_settings, "postmark", fake.url, batch_size=8, concurrency=3)
    report = send_issue(settings, issue_dir, environ=ENV)
    assert report.finished and report.failed == 2 and report.sent == 60
    received = Counter(fake.recipients())
    assert set(received) == set(addresses) and set(received.values()) == {1}
    status = ledger_status(list_engine, EXAMPLE, 600)
    assert sorted(e for e, _ in status.failed) == ["inactive1@example.org", "inactive2@example.org"]
    assert all("ErrorCode 406" in reason for _, reason in status.failed)


def test_lost_answers_are_uncertain_not_resent(
    settings: Settings, issue_dir: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    engine = open_engine(settings)
    populate(engine, tmp_path, 12)
    fake.faults.extend(["ok", "drop"])
    settings = tuned(settings, "postmark", fake.url, batch_size=4, concurrency=1)
    report = send_issue(settings, issue_dir, environ=ENV)
    assert report.sent == 8 and len(report.uncertain) == 4 and not report.finished
    assert set(Counter(fake.recipients()).values()) == {1}  # the lost batch did arrive once
    again = send_issue(settings, issue_dir, environ=ENV)
    assert again.sent == 0 and len(again.uncertain) == 4  # reported, not resent
    assert len(fake.recipients()) == 12
    forced = send_issue(settings, issue_dir, environ=ENV, retry_uncertain=True)
    assert forced.sent == 4 and forced.finished  # asked for: sent again (twice at the server)
    assert Counter(Counter(fake.recipients()).values()) == {1: 8, 2: 4}


def test_idempotent_provider_resends_lost_batches_safely(
    settings: Settings, issue_dir: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    engine = open_engine(settings)
    addresses = populate(engine, tmp_path, 30)
    fake.faults.extend(["drop", "ok", "drop", "slow"])
    fake.slow_seconds = 1.0
    settings = tuned(settings, "resend", fake.url, batch_size=5, concurrency=2)
    report = send_issue(settings, issue_dir, environ=ENV)
    assert report.finished and report.sent == 30 and not report.uncertain
    received = Counter(fake.recipients())
    assert set(received) == set(addresses) and set(received.values()) == {1}


def test_provider_refusing_everything_stops_the_send(
    settings: Settings, issue_dir: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    engine = open_engine(settings)
    populate(engine, tmp_path, 20, prefix="inactive")
    settings = tuned(settings, "postmark", fake.url, batch_size=2, concurrency=1)
    with pytest.raises(NewsletterError, match="refused every message of the last 3 batches"):
        send_issue(settings, issue_dir, environ=ENV)
    status = ledger_status(engine, EXAMPLE, 600)
    assert status.counts["pending"] == 20 and status.counts["failed"] == 0
    assert len(fake.seen) == 3


def test_rejected_key_releases_the_batch(
    settings: Settings, issue_dir: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    engine = open_engine(settings)
    populate(engine, tmp_path, 6)
    settings = tuned(settings, "postmark", fake.url, batch_size=3, concurrency=1)
    with pytest.raises(NewsletterError, match="rejected the API key"):
        send_issue(settings, issue_dir, environ={**ENV, "POSTMARK_SERVER_TOKEN": "wrong-one"})
    status = ledger_status(engine, EXAMPLE, 600)
    assert status.counts["pending"] == 6 and status.counts["uncertain"] == 0


def test_rows_are_on_the_wire_only_once_their_request_leaves(
    settings: Settings,
    issue_dir: Path,
    tmp_path: Path,
    fake: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sender that fails while encoding a batch sent nothing of it: those rows go back
    to pending, not uncertain. Rows are noted on the wire after encoding, before the
    request goes out."""
    engine = open_engine(settings)
    populate(engine, tmp_path, 6)
    settings = tuned(settings, "postmark", fake.url, batch_size=3, concurrency=1)

    def on_the_wire() -> int:
        """Rows in flight whose batch is noted as gone."""
        with transaction(engine) as conn:
            return len(
                conn.execute(
                    select(deliveries.c.id).where(
                        deliveries.c.state == "in_flight",
                        deliveries.c.attempt_id.in_(select(departures.c.attempt_id)),
                    )
                ).all()
            )

    while_encoding, while_posting = [], []
    encode, stream = Splicer.encode, httpx.Client.stream

    def failing_encode(self: Splicer, *args: Any, **kwargs: Any) -> bytes:
        while_encoding.append(on_the_wire())
        if len(while_encoding) == 2:
            raise RuntimeError("a bug while encoding")
        return encode(self, *args, **kwargs)

    def watched_stream(self: httpx.Client, *args: Any, **kwargs: Any) -> Any:
        while_posting.append(on_the_wire())
        return stream(self, *args, **kwargs)

    monkeypatch.setattr(Splicer, "encode", failing_encode)
    monkeypatch.setattr(httpx.Client, "stream", watched_stream)
    with pytest.raises(RuntimeError, match="a bug while encoding"):
        send_issue(settings, issue_dir, environ=ENV)
    assert while_encoding == [0, 0] and while_posting == [3]
    status = ledger_status(engine, EXAMPLE, 600)
    assert status.counts["sent"] == 3 and status.counts["pending"] == 3
    assert status.counts["uncertain"] == 0 and len(fake.seen) == 1


# --- crashes and several senders ---------------------------------------------------------


def _send_process(workspace: Path, url: str, env: dict[str, str]) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", "welcome", "--yes"],
        cwd=workspace,
        env={
            **clean,
            **ENV,
            "NEWSLETTER_PROVIDER": "postmark",
            "NEWSLETTER_PROVIDER_BASE_URL": url,
            "NEWSLETTER_PROVIDER_TIMEOUT": "5",
            "NEWSLETTER_SENDING_BATCH_SIZE": "10",
            "NEWSLETTER_SENDING_CONCURRENCY": "2",
            "NEWSLETTER_SENDING_RATE": "100000",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_sends_resume_without_duplicates(
    settings: Settings, workspace: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    engine = open_engine(settings)
    addresses = populate(engine, tmp_path, 800)
    fake.delay = 0.25  # 80 batches, 2 at a time: about 10 s of sending in all
    rng = random.Random(2026)
    kills = 0
    for _ in range(25):
        process = _send_process(workspace, fake.url, {})
        time.sleep(rng.uniform(0.7, 1.8))  # the process needs ~0.7 s to start
        if process.poll() is not None:
            process.communicate()
            continue
        process.send_signal(signal.SIGKILL)
        process.communicate()
        kills += 1
        if kills >= 10:
            break
    assert kills >= 10
    fake.delay = 0.0
    final = _send_process(workspace, fake.url, {})
    out, err = final.communicate(timeout=120)
    assert final.returncode in (0, 2), err
    status = ledger_status(engine, EXAMPLE, 600)
    uncertain = set(status.uncertain)
    received = Counter(fake.recipients())
    assert max(received.values()) == 1, "a recipient was accepted twice"
    for address in addresses:
        if address not in uncertain:
            assert received[address] == 1, address
    assert status.counts["sent"] + len(uncertain) == 800 and status.counts["pending"] == 0


@pytest.mark.parametrize("db_settings", ["postgresql"], indirect=True)
def test_two_senders_on_postgresql_share_the_work(
    db_settings: Settings,
    list_engine: Engine,
    workspace: Path,
    tmp_path: Path,
    fake: FakeProvider,
) -> None:
    addresses = populate(list_engine, tmp_path, 800)
    # 80 batches, two at a time: ~8 s for one sender alone, so the second one, however
    # late a busy machine starts it, still finds work to share.
    fake.delay = 0.2
    env = {"NEWSLETTER_DATABASE_URL": db_settings.database_url}
    first, second = _send_process(workspace, fake.url, env), _send_process(workspace, fake.url, env)
    results = [p.communicate(timeout=120) for p in (first, second)]
    failures = ledger_status(list_engine, EXAMPLE, 600).failed[:3]
    assert first.returncode == 0 and second.returncode == 0, (results, failures)
    received = Counter(fake.recipients())
    assert set(received) == set(addresses) and set(received.values()) == {1}
    sent_by = [int(re.findall(r"^(\d+) sent, \d+ failed", out, re.M)[-1]) for out, _ in results]
    assert sum(sent_by) == 800 and all(n > 0 for n in sent_by), sent_by  # both did a share


def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(
    settings: Settings, workspace: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    engine = open_engine(settings)
    addresses = populate(engine, tmp_path, 200)
    fake.delay = 0.1
    process = _send_process(workspace, fake.url, {"NEWSLETTER_SENDING_CONCURRENCY": "1"})
    deadline = time.monotonic() + 30
    while len(fake.seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert "Stopping after the batches in flight" in err and "run the same command" in err
    status = ledger_status(engine, EXAMPLE, 600)
    assert status.counts["in_flight"] == 0 and status.counts["uncertain"] == 0
    assert 0 < status.counts["sent"] < 200
    fake.delay = 0.0
    rerun = _send_process(workspace, fake.url, {})
    rerun.communicate(timeout=60)
    assert rerun.returncode == 0
    received = Counter(fake.recipients())
    assert set(received) == set(addresses) and set(received.values()) == {1}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "Error: nobody to send to: no active subscribers on the list"),
        (
            {"NEWSLETTER_PROVIDER": "postmark", "POSTMARK_SERVER_TOKEN": "k"},
            "Error: set NEWSLETTER_SECRET_KEY in the environment",
        ),
        (
            {"NEWSLETTER_PROVIDER": "resend", "NEWSLETTER_SECRET_KEY": SECRET},
            "Error: no API key for resend: set RESEND_API_KEY or NEWSLETTER_API_KEY",
        ),
        (
            {
                "NEWSLETTER_PROVIDER": "resend",
                "NEWSLETTER_SECRET_KEY": SECRET,
                "RESEND_API_KEY": "re_x",
                "NEWSLETTER_SITE_URL": "http://insecure.example.org/",
            },
            "Error: unsubscribe links must be https://",
        ),
    ],
)
def test_cli_send_refuses_before_the_plan(
    settings: Settings, workspace: Path, tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    if env:
        populate(open_engine(settings), tmp_path, 2)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "RESEND_"))}
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "send", "welcome", "--yes"],
        cwd=workspace,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(expected) and len(result.stderr.splitlines()) == 1
