"""Migration 3: every address key in the one normal form, frozen as it was written.

Before schema 3 a key was the address case-folded: bücher.de and xn--bcher-kva.de were
two people, Straße@ and strasse@ one. Now the local part is NFC and lower(), the domain
IDNA ASCII. The key function is copied here, not imported from the audience: storage sits
below it, and a migration must not change when today's key function does.

Two subscribers whose keys now agree are one person: the older (lower id) is kept and the
newer merged into it (tags, fields it lacks, its ledger rows, and a status that left the
list, so nobody is mailed who had asked not to be); a warning names their ids, never
their addresses. Two ledger rows of one issue that now agree keep the one furthest along
(sent before uncertain, in flight, failed, pending, skipped). Erasure hashes cannot be
recomputed; audience.addresses.address_hashes checks the old forms too.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterator
from typing import Any

import idna
from sqlalchemy import JSON, Connection, bindparam, text

log = logging.getLogger(__name__)

_PAGE = 1000
_LEFT = ("complained", "bounced", "unsubscribed")  # the strictest first
_FURTHEST = ("sent", "uncertain", "in_flight", "failed", "pending", "skipped")


def key_v3(address: str) -> str:
    """audience.addresses.address_key as schema 3 defines it."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return _lower_nfc(domain)
    if domain.isascii():
        return f"{_lower_nfc(local)}@{domain.lower()}"
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii").lower()
    except UnicodeError:
        ascii_domain = _lower_nfc(domain)
    return f"{_lower_nfc(local)}@{ascii_domain}"


def _lower_nfc(value: str) -> str:
    if value.isascii():
        return value.lower()
    return "".join(c.lower() for c in unicodedata.normalize("NFC", value))


def address_keys(conn: Connection) -> None:
    """3: address keys in one normal form (IDNA ASCII domain, NFC lower-cased local part)."""
    _rekey_subscribers(conn)
    _rekey_deliveries(conn)
    changed = {row_id: key for row_id, _, key in _changed(conn, "events")}
    _set_keys(conn, "events", changed)


def _changed(conn: Connection, table: str, extra: str = "") -> Iterator[tuple[int, Any, str]]:
    """(id, extra column, new key) of each row whose key is not its email's, a page at a time."""
    column = f", {extra}" if extra else ", NULL"
    query = text(
        f"SELECT id, email, email_key{column} FROM {table}"
        " WHERE id > :last AND email_key NOT LIKE 'erased:%' ORDER BY id LIMIT :page"
    )
    last = 0
    while rows := conn.execute(query, {"last": last, "page": _PAGE}).all():
        for row_id, email, key, other in rows:
            new = key_v3(email)
            if new != key:
                yield row_id, other, new
        last = rows[-1][0]


def _holders(conn: Connection, table: str, keys: set[str], extra: str) -> list[Any]:
    """(id, extra, key) of the rows that hold one of `keys` now."""
    query = text(f"SELECT id, {extra}, email_key FROM {table} WHERE email_key IN :keys")
    query = query.bindparams(bindparam("keys", expanding=True))
    ordered = sorted(keys)
    found: list[Any] = []
    for start in range(0, len(ordered), 500):
        found += conn.execute(query, {"keys": ordered[start : start + 500]}).all()
    return found


def _set_keys(conn: Connection, table: str, keys: dict[int, str]) -> None:
    """Through a placeholder first, so no row ever meets a key another row is leaving."""
    if not keys:
        return
    update = text(f"UPDATE {table} SET email_key = :key WHERE id = :id")
    conn.execute(update, [{"id": i, "key": f"rekey:{i}"} for i in keys])
    conn.execute(update, [{"id": i, "key": key} for i, key in keys.items()])


def _rekey_subscribers(conn: Connection) -> None:
    changed = {row_id: key for row_id, _, key in _changed(conn, "subscribers")}
    groups: dict[str, list[int]] = {}
    for row_id, _, key in _holders(conn, "subscribers", set(changed.values()), "NULL"):
        if row_id not in changed:
            groups.setdefault(key, []).append(row_id)
    for row_id, key in changed.items():
        groups.setdefault(key, []).append(row_id)
    for ids in groups.values():
        if len(ids) > 1:
            keep, *others = sorted(ids)
            _merge_subscribers(conn, keep, others)
            for other in others:
                changed.pop(other, None)
    _set_keys(conn, "subscribers", changed)


def _merge_subscribers(conn: Connection, keep: int, others: list[int]) -> None:
    query = text(
        "SELECT id, name, status, fields, unsubscribed_at FROM subscribers WHERE id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))
    rows = {r.id: r for r in conn.execute(query.columns(fields=JSON), {"ids": [keep, *others]})}
    kept = rows[keep]
    name, status, left_at = kept.name, kept.status, kept.unsubscribed_at
    fields = dict(kept.fields or {})
    for other in (rows[i] for i in others):
        name = name or other.name
        fields = {**(other.fields or {}), **fields}
        if other.status in _LEFT and (
            status not in _LEFT or _LEFT.index(other.status) < _LEFT.index(status)
        ):
            status, left_at = other.status, other.unsubscribed_at or left_at
        for sql in (
            "INSERT INTO subscriber_tags (subscriber_id, tag) SELECT :keep, tag"
            " FROM subscriber_tags WHERE subscriber_id = :other AND tag NOT IN"
            " (SELECT tag FROM subscriber_tags WHERE subscriber_id = :keep)",
            "UPDATE deliveries SET subscriber_id = :keep WHERE subscriber_id = :other",
            "DELETE FROM subscriber_tags WHERE subscriber_id = :other",
            "DELETE FROM subscribers WHERE id = :other",
        ):
            conn.execute(text(sql), {"keep": keep, "other": other.id})
    conn.execute(
        text(
            "UPDATE subscribers SET name = :name, status = :status, fields = :fields,"
            " unsubscribed_at = :left_at WHERE id = :id"
        ).bindparams(bindparam("fields", type_=JSON)),
        {"id": keep, "name": name, "status": status, "fields": fields, "left_at": left_at},
    )
    log.warning(
        "migration 3: subscriber%s %s had the same address as subscriber %s in its new "
        "normal form; merged into %s (status now %s)",
        "s" * (len(others) > 1),
        ", ".join(map(str, others)),
        keep,
        keep,
        status,
    )


def _rekey_deliveries(conn: Connection) -> None:
    changed = {row_id: (issue, key) for row_id, issue, key in _changed(conn, "deliveries", "issue")}
    wanted = set(changed.values())
    groups: dict[tuple[str, str], list[int]] = {}
    keys = {key for _, key in wanted}
    for row_id, issue, key in _holders(conn, "deliveries", keys, "issue"):
        if row_id not in changed and (issue, key) in wanted:
            groups.setdefault((issue, key), []).append(row_id)
    for row_id, target in changed.items():
        groups.setdefault(target, []).append(row_id)
    for (issue, _), ids in groups.items():
        if len(ids) < 2:
            continue
        query = text("SELECT id, state FROM deliveries WHERE id IN :ids")
        query = query.bindparams(bindparam("ids", expanding=True))
        states: dict[int, str] = {i: s for i, s in conn.execute(query, {"ids": ids})}
        keep = min(ids, key=lambda i: (_rank(states[i]), i))
        for other in ids:
            if other != keep:
                conn.execute(text("DELETE FROM deliveries WHERE id = :id"), {"id": other})
                changed.pop(other, None)
        log.warning(
            "migration 3: ledger rows %s of issue %s had one address in its new normal form; "
            "kept row %s (%s)",
            ", ".join(map(str, sorted(ids))),
            issue,
            keep,
            states[keep],
        )
    _set_keys(conn, "deliveries", {row_id: key for row_id, (_, key) in changed.items()})


def _rank(state: str) -> int:
    return _FURTHEST.index(state) if state in _FURTHEST else len(_FURTHEST)
