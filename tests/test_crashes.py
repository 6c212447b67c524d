"""Senders killed at random moments: only what was on the wire is uncertain.

Counted at the fake provider, never taken from what the program says. Just before each
kill the test notes which requests the fake had already answered (a grace of GRACE
seconds lets the sender read and record an answer that is already on its way), and
which it had received: after the kill, no recipient of an answered request may be
uncertain, and the uncertain ones must all come from requests that were on the wire.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from email.utils import parseaddr
from pathlib import Path

import pytest
from sqlalchemy import Engine
from test_engine import ENV, populate

from newsletter.config import Settings
from newsletter.delivery.status import ledger_status
from newsletter.storage import open_engine

from conftest import EXAMPLE
from fake_provider import KEYS, FakeProvider

GRACE = 0.3  # seconds between "answered" and the kill that the sender may need to record it


def start_send(workspace: Path, url: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`newsletter send` at the provider's default pacing (Postmark: 50/s, 4 at once)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", "welcome", "--yes"],
        cwd=workspace,
        env={
            **clean,
            **ENV,
            "POSTMARK_SERVER_TOKEN": KEYS["postmark"],
            "NEWSLETTER_PROVIDER": "postmark",
            "NEWSLETTER_PROVIDER_BASE_URL": url,
            "NEWSLETTER_PROVIDER_TIMEOUT": "10",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def started_sending(fake: FakeProvider, process: subprocess.Popen[str]) -> None:
    """Wait until the fake receives a request from now on (starting Python takes a while)."""
    seen = len(fake.seen)
    deadline = time.monotonic() + 60
    while len(fake.seen) == seen and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def recipients_of(body: bytes) -> list[str]:
    return [parseaddr(item["To"])[1] for item in json.loads(body)]


def batch_of(engine: Engine, body: bytes) -> set[str]:
    """Everyone in the batch a request carried, even one the kill cut short in its upload.

    A body cut short was on the wire all the same, but names only its first recipients:
    the rest of its batch are the rows claimed with theirs (one claim, one batch).
    """
    try:
        return set(recipients_of(body))
    except ValueError:
        pass
    first = re.findall(r'"To":"(?:[^"\\]|\\.)*?<([^<>"]+)>"', body.decode("utf-8", "replace"))
    if not first:
        return set()
    from sqlalchemy import select

    from newsletter.storage import deliveries, transaction

    with transaction(engine) as conn:
        claims = select(deliveries.c.attempt_id).where(deliveries.c.email.in_(first))
        rows = conn.execute(
            select(deliveries.c.email).where(deliveries.c.attempt_id.in_(claims))
        ).all()
    return {row.email for row in rows} | set(first)


def departing(engine: Engine, unseen: set[str]) -> bool:
    """Whether rows the fake never saw are all of one batch noted on the wire.

    The note is committed just before the request is written (it must come first: a
    batch that left without one could be sent twice), so a kill in those few
    milliseconds, or before the body followed the headers, leaves that one batch
    uncertain though no whole request of it arrived. Any other row that never went out
    is still a failure: rows of two batches, or of a batch never noted as leaving.
    """
    from sqlalchemy import select

    from newsletter.storage import deliveries, departures, transaction

    with transaction(engine) as conn:
        attempts = set(
            conn.scalars(
                select(deliveries.c.attempt_id).where(
                    deliveries.c.issue == EXAMPLE, deliveries.c.email.in_(sorted(unseen))
                )
            )
        )
        noted = set(
            conn.scalars(
                select(departures.c.attempt_id).where(departures.c.attempt_id.in_(attempts))
            )
        )
    return len(attempts) == 1 and attempts == noted


def kill_and_check(
    fake: FakeProvider, engine: Engine, process: subprocess.Popen[str], before: set[str]
) -> tuple[set[str], int]:
    """SIGKILL the sender now; return the uncertain set and how many batches were on the wire."""
    # Requests the fake had answered before the kill. Only a 2xx accepted anything: a body
    # an earlier kill cut short was answered too (400, not JSON), and carries no batch.
    answered_early = {i for i, seen in enumerate(fake.seen) if seen.status}
    accepted = {i for i in answered_early if 200 <= fake.seen[i].status < 300}
    time.sleep(GRACE)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    time.sleep(0.5)  # a request already in the socket still reaches the fake: it had left
    received = len(fake.seen)
    seen = fake.seen[:received]
    answered = {e for i in accepted for e in recipients_of(seen[i].body)}
    on_wire = [i for i in range(received) if i not in answered_early]
    wire = {e for i in on_wire for e in batch_of(engine, seen[i].body)}
    uncertain = set(ledger_status(engine, EXAMPLE, 600).uncertain) - before
    assert not uncertain & answered, "an answered batch was reported uncertain"
    unseen = uncertain - wire
    if unseen and not departing(engine, unseen):  # pragma: no cover - the message says why
        from sqlalchemy import select

        from newsletter.storage import deliveries, transaction

        with transaction(engine) as conn:
            rows = conn.execute(
                select(deliveries.c.email, deliveries.c.claimed_at, deliveries.c.attempt_id).where(
                    deliveries.c.email.in_(sorted(unseen)[:3])
                )
            ).all()
        pytest.fail(
            f"never went out but uncertain: {rows}; killed at {time.time()}; seen {received}"
        )
    return uncertain, len(on_wire)


def test_twenty_kills_at_default_pacing_leave_only_the_wire_uncertain(
    settings: Settings, workspace: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    engine = open_engine(settings)
    addresses = populate(engine, tmp_path, 3000)
    fake.delay = 0.4  # each batch is on the wire for a while: kills land there often
    rng = random.Random(20261127)
    uncertain: set[str] = set()
    kills = on_wire_total = 0
    while kills < 20:
        process = start_send(workspace, fake.url, {})
        started_sending(fake, process)
        time.sleep(rng.uniform(0.0, 2.0))
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the send ended before its kill: {out}{err}")
        lost, on_wire = kill_and_check(fake, engine, process, uncertain)
        uncertain |= lost
        kills += 1
        on_wire_total += on_wire
    assert on_wire_total > 0, "no kill landed while a batch was on the wire"
    fake.delay = 0.0
    final = start_send(workspace, fake.url, {"NEWSLETTER_SENDING_RATE": "100000"})
    out, err = final.communicate(timeout=180)
    assert final.returncode == (2 if uncertain else 0), (out, err)
    status = ledger_status(engine, EXAMPLE, 600)
    assert set(status.uncertain) == uncertain
    received = Counter(fake.recipients())
    assert max(received.values()) == 1, "a recipient was accepted twice"
    assert {a for a in addresses if a not in uncertain} <= set(received)
    assert status.counts["sent"] + len(uncertain) == 3000 and status.counts["pending"] == 0


@pytest.mark.parametrize("db_settings", ["postgresql"], indirect=True)
def test_a_killed_sender_on_postgresql_is_known_within_seconds(
    db_settings: Settings,
    engine: Engine,
    workspace: Path,
    tmp_path: Path,
    fake: FakeProvider,
) -> None:
    addresses = populate(engine, tmp_path, 4000)
    fake.delay = 0.2
    env = {
        "NEWSLETTER_DATABASE_URL": db_settings.database_url,
        "NEWSLETTER_SENDING_RATE": "200",
    }
    steady = start_send(workspace, fake.url, env)
    started = [steady]
    uncertain: set[str] = set()
    rng = random.Random(4)
    kills = 0
    try:
        for _ in range(4):
            victim = start_send(workspace, fake.url, env)
            started.append(victim)
            started_sending(fake, victim)
            time.sleep(rng.uniform(0.5, 1.5))
            if victim.poll() is not None:
                victim.communicate()
                break
            lost, _ = kill_and_check(fake, engine, victim, uncertain)
            uncertain |= lost
            kills += 1
            # Known at once: what it had in flight is uncertain now, not after a lease.
            status = ledger_status(engine, EXAMPLE, 600)
            assert set(status.uncertain) == uncertain
        assert kills == 4, "a second sender finished before it could be killed"
        out, err = steady.communicate(timeout=180)
    finally:  # a failed check leaves no sender running into the next test
        for process in started:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert steady.returncode == (2 if uncertain else 0), (out, err)
    assert "Nothing left to send" not in out
    status = ledger_status(engine, EXAMPLE, 600)
    assert status.counts["in_flight"] == 0 and status.counts["pending"] == 0
    assert set(status.uncertain) == uncertain
    received = Counter(fake.recipients())
    assert max(received.values()) == 1, "a recipient was accepted twice"
    assert {a for a in addresses if a not in uncertain} <= set(received)
