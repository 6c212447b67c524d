"""Importing subscribers from CSV: streamed, in one transaction, all of it or nothing.

Columns: email (required), name, tags (";"-separated), status; any other column becomes a
custom field. Chunks of rows are checked and written in turn; a temporary table holds
the addresses seen so far, so duplicates within a file of a million rows cost no memory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

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

from newsletter.audience.addresses import address_hash, address_key, normalize_address
from newsletter.audience.subscribers import EXPORT_ONLY, LEFT, check_status, check_tags, clean_name
from newsletter.errors import ImportRejected as ImportRejected  # re-exported: its old home
from newsletter.errors import SubscriberError
from newsletter.storage import (
    bulk_insert,
    in_list,
    insert_ignore,
    now,
    subscriber_tags,
    subscribers,
    suppressions,
    transaction,
)

EMAIL_COLUMNS = ("email", "e-mail", "email address", "email_address", "mail")
CHUNK = 5000
DETAILS = 200  # problem rows an import report lists one by one


@dataclass(frozen=True)
class Problem:
    line: int
    email: str
    reason: str


@dataclass
class ImportReport:
    path: Path
    dry_run: bool = False
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_status: int = 0  # re-imported as active, but left the list: not reactivated
    skipped: int = 0  # duplicates and erased addresses
    invalid: int = 0
    problems: list[Problem] = field(default_factory=list)

    def note(self, line: int, email: str, reason: str) -> None:
        if len(self.problems) < DETAILS:
            self.problems.append(Problem(line, email, reason))


def _rejected(report: ImportReport) -> ImportRejected:
    """Invalid rows without --skip-invalid: nothing was imported; the report says why."""
    return ImportRejected(
        f"{report.path}: {report.invalid} invalid row{'s' * (report.invalid != 1)}; "
        "nothing was imported (fix them, or pass --skip-invalid to import the rest)",
        report,
    )


@dataclass
class _Row:
    line: int
    email: str
    key: str
    name: str | None
    tags: list[str]
    status: str | None
    fields: dict[str, str]


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
                for chunk in _chunks(_read_rows(path, encoding, extra_tags, report), CHUNK):
                    _import_chunk(conn, seen, chunk, origin, report)
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


def _chunks(rows: Iterator[_Row], size: int) -> Iterator[list[_Row]]:
    chunk: list[_Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _read_rows(
    path: Path, encoding: str, extra_tags: list[str], report: ImportReport
) -> Iterator[_Row]:
    try:
        handle = open(path, encoding=encoding, newline="")  # noqa: SIM115 - closed below
    except FileNotFoundError as exc:
        raise SubscriberError(f"{path}: file not found") from exc
    except LookupError as exc:
        raise SubscriberError(f"--encoding {encoding!r} is not an encoding Python knows") from exc
    with handle:
        try:
            reader = csv.reader(handle, dialect=_dialect(handle))
        except UnicodeDecodeError as exc:
            raise SubscriberError(
                f"{path}:1: not valid {encoding} text ({exc.reason}); "
                "pass --encoding, e.g. --encoding latin-1"
            ) from exc
        try:
            header = next(reader, None)
            if header is None:
                raise SubscriberError(f"{path}: the file is empty")
            columns = [h.strip().lower().lstrip("\ufeff") for h in header]
            email_at = next((i for i, c in enumerate(columns) if c in EMAIL_COLUMNS), None)
            if email_at is None:
                raise SubscriberError(
                    f"{path}:1: no email column (the header has: {', '.join(header) or 'nothing'})"
                )
            name_at = columns.index("name") if "name" in columns else None
            tags_at = columns.index("tags") if "tags" in columns else None
            status_at = columns.index("status") if "status" in columns else None
            custom = [
                (i, header[i].strip())
                for i, c in enumerate(columns)
                if c and c not in EXPORT_ONLY and i not in (email_at, name_at, tags_at, status_at)
            ]
            line = reader.line_num
            width = len(header)
            for values in reader:
                start, line = line + 1, reader.line_num
                if len(values) < width:  # short rows: the missing cells are empty
                    if not any(v.strip() for v in values):
                        continue  # a blank line
                    values += [""] * (width - len(values))
                report.rows += 1
                raw = values[email_at].strip()
                try:
                    if len(values) > width:
                        raise ValueError(
                            f"{len(values)} fields where the header has {width} "
                            "(an unquoted comma?)"
                        )
                    if not raw:
                        raise ValueError("no email address")
                    email = normalize_address(raw)
                    status_text = values[status_at].strip() if status_at is not None else ""
                    status = check_status(status_text) if status_text else None
                    tag_text = values[tags_at].strip() if tags_at is not None else ""
                    row_tags = check_tags(tag_text.split(";")) if tag_text else []
                except ValueError as exc:
                    report.invalid += 1
                    report.note(start, raw, str(exc))
                    continue
                if extra_tags:
                    row_tags = sorted({*row_tags, *extra_tags})
                yield _Row(
                    line=start,
                    email=email,
                    key=address_key(email),
                    name=(clean_name(values[name_at]) or None) if name_at is not None else None,
                    tags=row_tags,
                    status=status,
                    fields={name: v for i, name in custom if (v := values[i].strip())},
                )
        except UnicodeDecodeError as exc:
            raise SubscriberError(
                f"{path}:{reader.line_num + 1}: not valid {encoding} text ({exc.reason}); "
                "pass --encoding, e.g. --encoding latin-1"
            ) from exc
        except csv.Error as exc:
            raise SubscriberError(f"{path}:{reader.line_num}: {exc}") from exc


def _dialect(handle: TextIO) -> type[csv.Dialect]:
    """Comma-separated, or semicolon or tab when the header says so (spreadsheet exports)."""
    first = handle.readline()
    handle.seek(0)
    if "," not in first:
        for delimiter in (";", "\t"):
            if delimiter in first:
                return type("Delimited", (csv.excel,), {"delimiter": delimiter})
    return csv.excel


def _import_chunk(
    conn: Connection, seen: Table, chunk: list[_Row], origin: str, report: ImportReport
) -> None:
    # Duplicates within the file: earlier in this chunk, or in an earlier chunk.
    first: dict[str, _Row] = {}
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

    erased_any = conn.scalar(select(suppressions.c.email_hash).limit(1)) is not None
    hashes = {address_hash(r.email): k for k, r in first.items()} if erased_any else {}
    erased: list[str] = []
    if hashes:  # only once someone was erased: no hashing on the usual import
        query = select(suppressions.c.email_hash)
        erased = list(
            conn.scalars(query.where(in_list(conn, suppressions.c.email_hash, list(hashes))))
        )
    for digest in erased:
        row = first.pop(hashes[digest])
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
