"""The list: add, import, export, list, count and remove subscribers.

An address that left (unsubscribed, bounced, complained) never comes back by accident: a
re-import updates names and tags but never reactivates it, and an erased address leaves a
one-way hash behind so that it cannot be imported again.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    any_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.addresses import address_hash, address_key, check_address, normalize_address
from newsletter.errors import SubscriberError
from newsletter.segments import normalize_tag, parse_segment, segment_clause, tags_in
from newsletter.storage import (
    STATUSES,
    deliveries,
    driver_sql,
    events,
    now,
    subscriber_tags,
    subscribers,
    suppressions,
    transaction,
)

LEFT = ("unsubscribed", "bounced", "complained")  # statuses an import never undoes
EMAIL_COLUMNS = ("email", "e-mail", "email address", "email_address", "mail")
# Columns that export writes for people to read; import does not take them back.
EXPORT_ONLY = ("created_at", "confirmed_at", "unsubscribed_at", "source")
CHUNK = 5000
PAGE = 1000
DETAILS = 200  # problem rows an import report lists one by one


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: str
    tags: tuple[str, ...]
    source: str
    fields: dict[str, Any]
    created_at: dt.datetime
    confirmed_at: dt.datetime | None
    unsubscribed_at: dt.datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "name": self.name,
            "status": self.status,
            "tags": list(self.tags),
            "source": self.source,
            "fields": self.fields,
            "created_at": _iso(self.created_at),
            "confirmed_at": _iso(self.confirmed_at),
            "unsubscribed_at": _iso(self.unsubscribed_at),
        }


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite gives timestamps back without their zone
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat(timespec="seconds")


def _clean_name(name: str) -> str:
    """One line of printable text: a name travels into headers and HTML later."""
    if name.isprintable() and "  " not in name:
        return name.strip()[:300]
    return " ".join("".join(c if c.isprintable() else " " for c in name).split())[:300]


def _status(value: str) -> str:
    status = value.strip().lower()
    if status not in STATUSES:
        raise ValueError(f"unknown status {value!r} (use one of {', '.join(STATUSES)})")
    return status


def _tags(values: Iterable[str]) -> list[str]:
    return sorted({normalize_tag(v) for v in values if v.strip()})


# --- single subscribers ----------------------------------------------------------------------


def add_subscriber(
    engine: Engine,
    email: str,
    *,
    name: str = "",
    tags: Sequence[str] = (),
    status: str = "active",
    source: str = "cli",
) -> Subscriber:
    """Add one address; refuse one that is already there or that left the list."""
    address = check_address(email)
    try:
        tag_list = _tags(tags)
        status = _status(status)
    except ValueError as exc:
        raise SubscriberError(str(exc)) from None
    if status not in ("active", "pending"):
        raise SubscriberError("a new subscriber is active or pending")
    key = address_key(address)
    with transaction(engine) as conn:
        if conn.scalar(
            select(suppressions.c.reason).where(suppressions.c.email_hash == address_hash(address))
        ):
            raise SubscriberError(
                f"{address} was erased at the subscriber's request and cannot be added again"
            )
        existing = conn.execute(
            select(subscribers.c.status).where(subscribers.c.email_key == key)
        ).first()
        if existing is not None:
            if existing.status in LEFT:
                raise SubscriberError(
                    f"{address} is {existing.status}; only the subscriber can come back, "
                    "by subscribing again"
                )
            raise SubscriberError(f"{address} is already on the list ({existing.status})")
        stamp = now()
        inserted = conn.execute(
            insert(subscribers).values(
                email=address,
                email_key=key,
                name=_clean_name(name),
                status=status,
                source=source,
                fields={},
                created_at=stamp,
                updated_at=stamp,
                confirmed_at=stamp if status == "active" else None,
            )
        ).inserted_primary_key
        assert inserted is not None
        new_id = inserted[0]
        if tag_list:
            conn.execute(
                insert(subscriber_tags), [{"subscriber_id": new_id, "tag": t} for t in tag_list]
            )
    found = get_subscriber(engine, address)
    assert found is not None
    return found


def get_subscriber(engine: Engine, email: str) -> Subscriber | None:
    with transaction(engine) as conn:
        row = conn.execute(
            select(subscribers).where(subscribers.c.email_key == address_key(email.strip()))
        ).first()
        return _with_tags(conn, [row])[0] if row is not None else None


def remove_subscriber(engine: Engine, email: str, *, erase: bool = False) -> str:
    """Unsubscribe an address, or with erase=True delete its personal data for good."""
    key = address_key(email.strip())
    with transaction(engine) as conn:
        row = conn.execute(
            select(subscribers.c.id, subscribers.c.email, subscribers.c.status).where(
                subscribers.c.email_key == key
            )
        ).first()
        if not erase:
            if row is None:
                raise SubscriberError(f"{email} is not on the list")
            if row.status in LEFT:
                return f"{row.email} was already {row.status}"
            stamp = now()
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == row.id)
                .values(status="unsubscribed", unsubscribed_at=stamp, updated_at=stamp)
            )
            return f"{row.email} unsubscribed"
        digest = address_hash(email.strip())
        if row is None and conn.scalar(
            select(func.count())
            .select_from(suppressions)
            .where(suppressions.c.email_hash == digest)
        ):
            return f"{email} was already erased"
        if row is not None:
            conn.execute(delete(subscriber_tags).where(subscriber_tags.c.subscriber_id == row.id))
            conn.execute(delete(subscribers).where(subscribers.c.id == row.id))
        # The ledger and provider events keep their counts but lose the address.
        erased = f"erased:{digest}"
        conn.execute(
            update(deliveries)
            .where(deliveries.c.email_key == key)
            .values(email=erased, email_key=erased, name="", subscriber_id=None)
        )
        conn.execute(
            update(events)
            .where(events.c.email_key == key)
            .values(email=erased, email_key=erased, payload={})
        )
        _insert_ignore(conn, suppressions, [
            {"email_hash": digest, "reason": "erased", "created_at": now()}
        ])  # fmt: skip
        return f"{email} erased; a one-way hash keeps it from being added again"


# --- reading the list ----------------------------------------------------------------------


def _filters(conn: Connection, status: str | None, segment: str | None) -> list[Any]:
    where: list[Any] = []
    if status:
        try:
            where.append(subscribers.c.status == _status(status))
        except ValueError as exc:
            raise SubscriberError(str(exc)) from None
    if segment:
        node = parse_segment(segment)
        known = set(conn.scalars(select(subscriber_tags.c.tag).distinct()))
        unknown = sorted(tags_in(node) - known)
        if unknown:
            raise SubscriberError(
                f"no subscriber has the tag {', '.join(repr(t) for t in unknown)} "
                f"(tags in use: {', '.join(sorted(known)) or 'none'})"
            )
        where.append(segment_clause(node))
    return where


def iter_subscribers(
    engine: Engine, *, status: str | None = None, segment: str | None = None
) -> Iterator[Subscriber]:
    """Every matching subscriber, a page at a time, so memory stays flat on any list."""
    last = 0
    with transaction(engine) as conn:
        where = _filters(conn, status, segment)
    while True:
        with transaction(engine) as conn:
            rows = conn.execute(
                select(subscribers)
                .where(subscribers.c.id > last, *where)
                .order_by(subscribers.c.id)
                .limit(PAGE)
            ).all()
            page = _with_tags(conn, rows)
        if not page:
            return
        yield from page
        last = page[-1].id


def _with_tags(conn: Connection, rows: Sequence[Any]) -> list[Subscriber]:
    tags: dict[int, list[str]] = {}
    if rows:
        pairs = conn.execute(
            select(subscriber_tags.c.subscriber_id, subscriber_tags.c.tag)
            .where(_in(conn, subscriber_tags.c.subscriber_id, [r.id for r in rows]))
            .order_by(subscriber_tags.c.tag)
        )
        for subscriber_id, tag in pairs:
            tags.setdefault(subscriber_id, []).append(tag)
    return [
        Subscriber(
            id=r.id,
            email=r.email,
            name=r.name,
            status=r.status,
            tags=tuple(tags.get(r.id, ())),
            source=r.source,
            fields=dict(r.fields or {}),
            created_at=r.created_at,
            confirmed_at=r.confirmed_at,
            unsubscribed_at=r.unsubscribed_at,
        )
        for r in rows
    ]


def count_subscribers(
    engine: Engine,
    *,
    by: str | None = None,
    status: str | None = None,
    segment: str | None = None,
) -> dict[str, int]:
    """Counts: the total, or per status, or per tag."""
    with transaction(engine) as conn:
        where = _filters(conn, status, segment)
        if by is None:
            total = conn.scalar(select(func.count()).select_from(subscribers).where(*where))
            return {"total": int(total or 0)}
        if by == "status":
            query = select(subscribers.c.status, func.count()).where(*where)
            rows = conn.execute(query.group_by(subscribers.c.status)).all()
            counts = {s: 0 for s in STATUSES}
            counts.update({status: int(n) for status, n in rows})
            return counts
        if by == "tag":
            query = (
                select(subscriber_tags.c.tag, func.count())
                .join(subscribers, subscribers.c.id == subscriber_tags.c.subscriber_id)
                .where(*where)
                .group_by(subscriber_tags.c.tag)
                .order_by(subscriber_tags.c.tag)
            )
            return {tag: int(n) for tag, n in conn.execute(query)}
    raise SubscriberError(f"--by takes status or tag, not {by!r}")


def export_csv(
    engine: Engine, out: TextIO, *, status: str | None = None, segment: str | None = None
) -> int:
    """Write the matching subscribers as CSV that import reads back; returns the count.

    Custom fields get a column each, so the list passes through two reads: one for the
    field names, one for the rows. Neither holds the list in memory.
    """
    names: set[str] = set()
    for s in iter_subscribers(engine, status=status, segment=segment):
        names.update(s.fields)
    custom = sorted(names - {"email", "name", "tags", "status", *EXPORT_ONLY})
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email", "name", "tags", "status", "created_at", *custom])
    count = 0
    for s in iter_subscribers(engine, status=status, segment=segment):
        extra = [str(s.fields.get(name, "")) for name in custom]
        writer.writerow([s.email, s.name, ";".join(s.tags), s.status, _iso(s.created_at), *extra])
        count += 1
    return count


# --- importing -----------------------------------------------------------------------------


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


class ImportRejected(SubscriberError):
    """Invalid rows without --skip-invalid: nothing was imported; the report says why."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(
            f"{report.path}: {report.invalid} invalid row{'s' * (report.invalid != 1)}; "
            "nothing was imported (fix them, or pass --skip-invalid to import the rest)"
        )
        self.report = report


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
        extra_tags = _tags(tags)
    except ValueError as exc:
        raise SubscriberError(str(exc)) from None
    report = ImportReport(path=path, dry_run=dry_run)
    origin = source or f"import:{path.name}"
    try:
        with transaction(engine) as conn:
            seen = _seen_table(conn)
            try:
                for chunk in _chunks(_read_rows(path, encoding, extra_tags, report), CHUNK):
                    _import_chunk(conn, seen, chunk, origin, report)
                if report.invalid and not skip_invalid:
                    raise ImportRejected(report)
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
    except FileNotFoundError:
        raise SubscriberError(f"{path}: file not found") from None
    except LookupError:
        raise SubscriberError(f"--encoding {encoding!r} is not an encoding Python knows") from None
    with handle:
        try:
            reader = csv.reader(handle, dialect=_dialect(handle))
        except UnicodeDecodeError as exc:
            raise SubscriberError(
                f"{path}:1: not valid {encoding} text ({exc.reason}); "
                "pass --encoding, e.g. --encoding latin-1"
            ) from None
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
                    status = _status(status_text) if status_text else None
                    tag_text = values[tags_at].strip() if tags_at is not None else ""
                    row_tags = _tags(tag_text.split(";")) if tag_text else []
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
                    name=(_clean_name(values[name_at]) or None) if name_at is not None else None,
                    tags=row_tags,
                    status=status,
                    fields={name: v for i, name in custom if (v := values[i].strip())},
                )
        except UnicodeDecodeError as exc:
            raise SubscriberError(
                f"{path}:{reader.line_num + 1}: not valid {encoding} text ({exc.reason}); "
                "pass --encoding, e.g. --encoding latin-1"
            ) from None
        except csv.Error as exc:
            raise SubscriberError(f"{path}:{reader.line_num}: {exc}") from None


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
            select(seen.c.email_key, seen.c.line).where(_in(conn, seen.c.email_key, list(first)))
        ).all()
    )
    for key in earlier:
        row = first.pop(key)
        report.skipped += 1
        report.note(row.line, row.email, f"duplicate of line {earlier[key]}")
    if not first:
        return
    _bulk_insert(conn, seen, [{"email_key": k, "line": r.line} for k, r in first.items()])

    erased_any = conn.scalar(select(suppressions.c.email_hash).limit(1)) is not None
    hashes = {address_hash(r.email): k for k, r in first.items()} if erased_any else {}
    erased: list[str] = []
    if hashes:  # only once someone was erased: no hashing on the usual import
        query = select(suppressions.c.email_hash)
        erased = list(conn.scalars(query.where(_in(conn, suppressions.c.email_hash, list(hashes)))))
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
            ).where(_in(conn, subscribers.c.email_key, list(first)))
        )
    }
    stamp = now()
    new_rows = [r for k, r in first.items() if k not in existing]
    if new_rows:
        _bulk_insert(
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
                _in(conn, subscribers.c.email_key, [r.key for r in new_rows])
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
    _bulk_insert(conn, subscriber_tags, new_tags)
    old_tags = [{"subscriber_id": ids[k], "tag": t} for k in existing for t in first[k].tags]
    tagged = {row["subscriber_id"] for row in _insert_ignore(conn, subscriber_tags, old_tags)}
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


def _in(conn: Connection, column: Any, values: list[Any]) -> ColumnElement[bool]:
    """`column IN values` with the values as one parameter.

    SQLAlchemy renders a long IN list one bound parameter at a time, which dominated an
    import's CPU; SQLite reads the list from JSON and PostgreSQL takes an array instead.
    """
    if conn.dialect.name == "postgresql":
        return column == any_(literal(values, postgresql.ARRAY(column.type)))  # type: ignore[no-any-return]
    listed: Any = select(literal_column("value")).select_from(func.json_each(json.dumps(values)))
    return column.in_(listed)  # type: ignore[no-any-return]


def _bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT many rows through the driver's executemany, converting each column once.

    SQLAlchemy's executemany converts every value of every row through its type; an
    import inserts a million rows whose timestamps are all the same value, so here the
    conversion is done once for a shared value and the rows go to the driver as tuples.
    """
    if not rows:
        return
    names = list(rows[0])
    dialect = conn.dialect
    columns: list[list[Any]] = []
    for name in names:
        convert = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        values = [row[name] for row in rows]
        if convert is not None:
            first = values[0]
            if all(v is first for v in values):  # one timestamp shared by the whole chunk
                values = [convert(first) if first is not None else None] * len(values)
            else:
                values = [convert(v) if v is not None else None for v in values]
        columns.append(values)
    values = list(zip(*columns, strict=True))
    quote = dialect.identifier_preparer
    listed = ", ".join(quote.quote(n) for n in names)
    sql = (
        f"INSERT INTO {quote.format_table(table)} ({listed}) VALUES ({', '.join('?' * len(names))})"
    )
    conn.exec_driver_sql(driver_sql(conn, sql), values)


def _insert_ignore(
    conn: Connection, table: Table, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Insert rows whose key is not there yet; returns the ones that were new."""
    if not rows:
        return []
    keys = [c.name for c in table.primary_key.columns]
    present = set()
    if len(keys) == 2:
        first_key = keys[0]
        found = conn.execute(
            select(*(table.c[k] for k in keys)).where(
                _in(conn, table.c[first_key], list({r[first_key] for r in rows}))
            )
        )
        present = {tuple(f) for f in found}
    fresh = [r for r in rows if tuple(r[k] for k in keys) not in present]
    if not fresh:
        return []
    dialect = conn.dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    conn.execute(module.insert(table).on_conflict_do_nothing(), fresh)
    return fresh
