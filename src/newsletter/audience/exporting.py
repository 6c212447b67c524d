"""Exporting the list as CSV that import reads back and a spreadsheet opens safely.

A cell starting with = + - @, a tab or a carriage return is a formula to Excel, LibreOffice
and Google Sheets ("CSV injection"), so an export of names people typed could run
`=HYPERLINK(...)` or `+cmd|...` on the editor's machine. As OWASP's "CSV Injection" page
says, such a cell is written with a single quote in front, in double quotes.

Import takes that quote off again (`from_spreadsheet`), so an export reads back to what
was stored: "-Ana-" goes out as "'-Ana-" and comes back as "-Ana-". A cell that starts
with a quote gets one more, so the round trip stays exact. The one loss is in a file made
by hand: a leading quote before = + - @ or another quote is taken for ours and dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from sqlalchemy import Engine

from newsletter.audience.subscribers import EXPORT_ONLY, iso_time, iter_subscribers
from newsletter.errors import SubscriberError
from newsletter.files import atomic_text, os_problem

_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_GUARDED = (*_FORMULA, "'")
_QUOTED = (",", '"', "\n", "\r")


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
    out.write(csv_line(["email", "name", "tags", "status", "created_at", *custom]))
    count = 0
    for s in iter_subscribers(engine, status=status, segment=segment):
        extra = [str(s.fields.get(name, "")) for name in custom]
        row = [s.email, s.name, ";".join(s.tags), s.status, iso_time(s.created_at) or ""]
        out.write(csv_line([*row, *extra]))
        count += 1
    return count


def export_file(
    engine: Engine, path: Path, *, status: str | None = None, segment: str | None = None
) -> int:
    """export_csv into a file only its owner can read (it is subscribers' data), whole or
    not at all; a folder or a path that cannot be written is one clear SubscriberError."""
    try:
        if path.is_dir():
            raise SubscriberError(f"{path}: is a folder; name a file, e.g. {path / 'list.csv'}")
        with atomic_text(path, private=True) as handle:
            return export_csv(engine, handle, status=status, segment=segment)
    except OSError as exc:  # a read-only folder, a full disk, a name past 255 bytes
        raise SubscriberError(f"cannot write the export: {os_problem(path, exc)}") from exc


def csv_line(cells: Iterable[str]) -> str:
    """One CSV record, comma-separated and "\\n"-terminated, safe to open in a spreadsheet."""
    return ",".join(_cell(value) for value in cells) + "\n"


def _cell(value: str) -> str:
    if value.startswith(_GUARDED):
        return '"' + ("'" + value).replace('"', '""') + '"'
    if any(c in value for c in _QUOTED):
        return '"' + value.replace('"', '""') + '"'
    return value


def from_spreadsheet(value: str) -> str:
    """A cell as import reads it: the quote an export put before a formula, taken off."""
    if value.startswith("'") and value[1:].startswith(_GUARDED):
        return value[1:]
    return value
