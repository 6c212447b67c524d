"""Importing subscribers from CSV: streamed, in one transaction, all of it or nothing.

Columns: email (required), name, tags (";"-separated), status; any other column becomes a
custom field. Chunks of rows are checked and written in turn; a temporary table holds
the addresses seen so far, so duplicates within a file of a million rows cost no memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    select,
    update,
)

from newsletter.audience.addresses import address_hashes
from newsletter.audience.csvrows import ImportReport as ImportReport  # re-exported
from newsletter.audience.csvrows import Row, read_rows
from newsletter.audience.erasure import anyone_erased, erased_among
from newsletter.audience.subscribers import LEFT, check_tags
from newsletter.errors import ImportRejected as ImportRejected  # re-exported: its old home
from newsletter.errors import SubscriberError
from newsletter.storage import (
    bulk_insert,
    in_list,
    insert_ignore,
    now,
    subscriber_tags,
    subscribers,
    transaction,
)

CHUNK = 5000


def _rejected(report: ImportReport) -> ImportRejected:
    """Invalid rows without --skip-invalid: nothing was imported; the report says why."""
    return ImportRejected(
        f"{report.path}: {report.invalid} invalid row{'s' * (report.invalid != 1)}; "
        "nothing was imported (fix them, or pass --skip-invalid to import the rest)",
        report,
    )


class _Rollback(Exception):
    pass


def import_csv(
    engine: Engine,
    path: Path,
    *,
    tags: Sequence[str] = (),
    skip_invalid: bool = False,
    encoding: str = "utf-8-sig",
    dry_run: bool = False,
    source: str | None = None,
) -> ImportReport:
    """Import a CSV in one transaction, streaming it: all of it, or nothing.

    Columns: email (required), name, tags (";"-separated), status; any other column
    becomes a custom field. New addresses are added (active unless the row says
    otherwise); known ones get their name, tags and fields updated, and their status only
    if the row says they left. Duplicates within the file and erased addresses are skipped.
    """
    try:
        extra_tags = check_tags(tags)
    except ValueError as exc:
        raise SubscriberError(str(exc)) from exc
    report = ImportReport(path=path, dry_run=dry_run)
    origin = source or f"import:{path.name}"
    try:
        with transaction(engine) as conn:
            seen = _seen_table(conn)
            try:
                for chunk in _chunks(read_rows(path, encoding, extra_tags, report), CHUNK):
                    _import_chunk(conn, seen, chunk, origin, report)
                report.tidy()
                if report.invalid and not skip_invalid:
                    raise _rejected(report)
                if dry_run:
                    raise _Rollback
            finally:
                seen.drop(conn, checkfirst=True)
    except _Rollback:
        pass
    return report


def _seen_table(conn: Connection) -> Table:
    """A temporary table of this import's addresses, so duplicates cost no memory."""
    table = Table(
        "import_seen",
        MetaData(),
        Column("email_key", String(320), primary_key=True),
        Column("line", Integer, nullable=False),
        prefixes=["TEMPORARY"],
        sqlite_with_rowid=False,
    )
    table.drop(conn, checkfirst=True)
    table.create(conn)
    return table


def _chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _import_chunk(
    conn: Connection, seen: Table, chunk: list[Row], origin: str, report: ImportReport
) -> None:
    # Duplicates within the file: earlier in this chunk, or in an earlier chunk.
    first: dict[str, Row] = {}
    for row in chunk:
        if row.key in first:
            report.skipped += 1
            report.note(row.line, row.email, f"duplicate of line {first[row.key].line}")
        else:
            first[row.key] = row
    earlier = dict(
        conn.execute(
            select(seen.c.email_key, seen.c.line).where(
                in_list(conn, seen.c.email_key, list(first))
            )
        ).all()
    )
    for key in earlier:
        row = first.pop(key)
        report.skipped += 1
        report.note(row.line, row.email, f"duplicate of line {earlier[key]}")
    if not first:
        return
    bulk_insert(conn, seen, [{"email_key": k, "line": r.line} for k, r in first.items()])

    if anyone_erased(conn):  # only then: no hashing on the usual import
        hashes: dict[str, list[str]] = {}
        for key, row in first.items():
            for digest in address_hashes(row.email):  # today's, and older versions' forms
                hashes.setdefault(digest, []).append(key)
        for digest in erased_among(conn, hashes):
            for key in hashes[digest]:
                if key in first:
                    row = first.pop(key)
                    report.skipped += 1
                    report.note(row.line, row.email, "erased at the subscriber's request")

    existing = {
        r.email_key: r
        for r in conn.execute(
            select(
                subscribers.c.id,
                subscribers.c.email_key,
                subscribers.c.name,
                subscribers.c.status,
                subscribers.c.fields,
                subscribers.c.unsubscribed_at,
            ).where(in_list(conn, subscribers.c.email_key, list(first)))
        )
    }
    stamp = now()
    new_rows = [r for k, r in first.items() if k not in existing]
    if new_rows:
        bulk_insert(
            conn,
            subscribers,
            [
                {
                    "email": r.email,
                    "email_key": r.key,
                    "name": r.name or "",
                    "status": r.status or "active",
                    "source": origin,
                    "fields": r.fields,
                    "created_at": stamp,
                    "updated_at": stamp,
                    "confirmed_at": stamp if (r.status or "active") == "active" else None,
                    "unsubscribed_at": stamp if r.status == "unsubscribed" else None,
                }
                for r in new_rows
            ],
        )
        report.added += len(new_rows)
    ids = dict(
        conn.execute(
            select(subscribers.c.email_key, subscribers.c.id).where(
                in_list(conn, subscribers.c.email_key, [r.key for r in new_rows])
            )
        ).all()
    ) if new_rows else {}  # fmt: skip
    ids.update({k: r.id for k, r in existing.items()})

    changes = []
    for key, old in existing.items():
        row = first[key]
        values: dict[str, Any] = {}
        if row.name and row.name != old.name:
            values["name"] = row.name
        merged = {**(old.fields or {}), **row.fields}
        if merged != (old.fields or {}):
            values["fields"] = merged
        if row.status and row.status != old.status:
            if old.status in LEFT and row.status in ("active", "pending"):
                report.kept_status += 1
                report.note(row.line, row.email, f"stays {old.status}: an import never reactivates")
            elif row.status in LEFT or (old.status == "pending" and row.status == "active"):
                values["status"] = row.status
                if row.status == "unsubscribed":
                    values["unsubscribed_at"] = stamp
        if values:
            changes.append({"_id": old.id, **_complete(values, old), "updated_at": stamp})
    if changes:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.id == bindparam("_id"))
            .values({k: bindparam(k) for k in changes[0] if k != "_id"}),
            changes,
        )
    # New subscribers have no tags yet; known ones may have some of these already.
    new_tags = [{"subscriber_id": ids[r.key], "tag": t} for r in new_rows for t in r.tags]
    bulk_insert(conn, subscriber_tags, new_tags)
    old_tags = [{"subscriber_id": ids[k], "tag": t} for k in existing for t in first[k].tags]
    tagged = {row["subscriber_id"] for row in insert_ignore(conn, subscriber_tags, old_tags)}
    changed = {c["_id"] for c in changes}
    for old in existing.values():
        if old.id in changed or old.id in tagged:
            report.updated += 1
        else:
            report.unchanged += 1


def _complete(values: dict[str, Any], old: Any) -> dict[str, Any]:
    """Every changed row updates the same columns, so one executemany serves the chunk."""
    return {
        "name": values.get("name", old.name),
        "fields": values.get("fields", old.fields or {}),
        "status": values.get("status", old.status),
        "unsubscribed_at": values.get("unsubscribed_at", old.unsubscribed_at),
    }
