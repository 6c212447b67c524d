"""One `newsletter send` among others: registered in the database, alive while it runs.

Each sender has an id that heads the attempt id of every batch it claims, so the ledger
knows whose rows are in flight. Whether that sender still lives is asked of the database:

- SQLite (one machine, one sender per issue): the sender's row names its process, so a
  killed sender is known at once, and carries a heartbeat, refreshed every HEARTBEAT
  seconds, for the rest (a row older than STALE is a dead sender's). A second sender
  for the same issue is refused, whichever workspace it runs from.
- PostgreSQL (many senders, many machines): the sender holds a session advisory lock on
  its own connection; the server drops it the moment the process or its machine dies,
  so a dead sender is known at the next look, with no clock to trust.

A dead sender's rows in flight had their request started and no answer written:
they become uncertain (see recovery.orphan).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update

from newsletter.errors import SendError
from newsletter.storage import DeliveryState, deliveries, now, senders, stored, transaction

HEARTBEAT = 2.0  # seconds between heartbeats
STALE = 10.0  # SQLite: a heartbeat older than this is a dead sender's
_LOCK_SPACE = 742002  # advisory lock namespace of senders (migrations use 742001)


@dataclass(frozen=True)
class OtherSender:
    id: str
    host: str
    pid: int
    in_flight: int

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


def sender_of(attempt_id: str | None) -> str:
    """The sender an attempt id belongs to (older attempt ids are their own sender)."""
    return (attempt_id or "").partition(".")[0]


class Sender:
    """This process as a sender of one issue; use it as a context manager."""

    def __init__(self, engine: Engine, issue: str) -> None:
        self.engine = engine
        self.issue = issue
        self.id = uuid.uuid4().hex[:24]
        self._lock: Connection | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def attempt_id(self) -> str:
        return f"{self.id}.{uuid.uuid4().hex[:16]}"

    def __enter__(self) -> Sender:
        if self.engine.dialect.name == "postgresql":
            self._lock = self.engine.connect()
            self._lock.execute(
                text("SELECT pg_advisory_lock(:space, hashtext(:id))"),
                {"space": _LOCK_SPACE, "id": self.id},
            )
            self._lock.commit()
        with transaction(self.engine) as conn:
            if conn.dialect.name == "sqlite":
                # Take the write lock first: two senders starting together queue up here.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                self._refuse_a_second(conn)
            stamp = now()
            conn.execute(
                insert(senders).values(
                    id=self.id,
                    issue=self.issue,
                    host=socket.gethostname()[:255],
                    pid=os.getpid(),
                    started_at=stamp,
                    heartbeat_at=stamp,
                )
            )
        self._beat = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        self._beat.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=HEARTBEAT * 2)
        try:
            with transaction(self.engine) as conn:
                conn.execute(delete(senders).where(senders.c.id == self.id))
        finally:
            if self._lock is not None:
                self._lock.close()  # closing the session releases the advisory lock

    def _refuse_a_second(self, conn: Connection) -> None:
        stale = now() - dt.timedelta(seconds=STALE)
        rows = conn.execute(select(senders).where(senders.c.issue == self.issue)).all()
        dead = [r.id for r in rows if stored(r.heartbeat_at) < stale or _gone(r.host, r.pid)]
        if dead:
            conn.execute(delete(senders).where(senders.c.id.in_(dead)))
        other = next((r for r in rows if r.id not in dead), None)
        if other is not None:
            raise SendError(
                f"another newsletter send is working on {self.issue} (pid {other.pid} on "
                f"{other.host}); wait for it to finish, or stop it (its batches in flight "
                "finish first)"
            )

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            try:
                with transaction(self.engine) as conn:
                    conn.execute(
                        update(senders).where(senders.c.id == self.id).values(heartbeat_at=now())
                    )
            except Exception:  # noqa: BLE001 - a missed beat is retried; the send goes on
                continue


def _gone(host: str, pid: int) -> bool:
    """A sender on this machine whose process is no longer there (SIGKILL, a crash)."""
    if host != socket.gethostname()[:255]:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # somebody else's process: it exists
        return False
    return False


def dead_senders(engine: Engine, issue: str, ids: Iterable[str]) -> set[str]:
    """Of these sender ids, the ones that are no longer running."""
    wanted = {i for i in ids if i}
    if not wanted:
        return set()
    with transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            return {i for i in wanted if _lock_is_free(conn, i)}
        fresh = now() - dt.timedelta(seconds=STALE)
        rows = conn.execute(
            select(senders.c.id, senders.c.host, senders.c.pid).where(
                senders.c.id.in_(wanted), senders.c.heartbeat_at >= fresh
            )
        ).all()
    return wanted - {r.id for r in rows if not _gone(r.host, r.pid)}


def _lock_is_free(conn: Connection, sender: str) -> bool:
    """True when nobody holds the sender's advisory lock: it is dead."""
    params: dict[str, Any] = {"space": _LOCK_SPACE, "id": sender}
    got = conn.scalar(text("SELECT pg_try_advisory_xact_lock(:space, hashtext(:id))"), params)
    return bool(got)  # a transaction-level lock: released when this check's transaction ends


def senders_in_flight(engine: Engine, issue: str) -> dict[str, int]:
    """Rows in flight for the issue, by the sender that claimed them."""
    with transaction(engine) as conn:
        rows = conn.execute(
            select(deliveries.c.attempt_id, func.count())
            .where(deliveries.c.issue == issue, deliveries.c.state == DeliveryState.IN_FLIGHT)
            .group_by(deliveries.c.attempt_id)
        ).all()
    counts: dict[str, int] = {}
    for attempt_id, n in rows:
        counts[sender_of(attempt_id)] = counts.get(sender_of(attempt_id), 0) + int(n)
    return counts


def others_at_work(engine: Engine, issue: str, me: str = "") -> list[OtherSender]:
    """Live senders other than `me` with rows of the issue in flight."""
    counts = senders_in_flight(engine, issue)
    counts.pop(me, None)
    alive = set(counts) - dead_senders(engine, issue, counts)
    if not alive:
        return []
    with transaction(engine) as conn:
        found = {r.id: r for r in conn.execute(select(senders).where(senders.c.id.in_(alive)))}
    return [
        OtherSender(i, found[i].host if i in found else "?", found[i].pid if i in found else 0,
                    counts[i])
        for i in sorted(alive)
    ]  # fmt: skip
