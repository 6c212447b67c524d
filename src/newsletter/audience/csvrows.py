"""Reading a subscribers CSV into checked rows, streamed, and the report of what was wrong.

A file that cannot be read at all (a folder, a stray quote that swallows the rest of the
file, the wrong encoding) is one SubscriberError naming the file and line; a row that is
wrong on its own is noted in the ImportReport with its line and the import goes on.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from newsletter.audience.addresses import address_key, normalize_address
from newsletter.audience.exporting import from_spreadsheet
from newsletter.audience.subscribers import EXPORT_ONLY, check_status, check_tags, clean_name
from newsletter.errors import SubscriberError
from newsletter.files import os_problem

EMAIL_COLUMNS = ("email", "e-mail", "email address", "email_address", "mail")
DETAILS = 200  # problem rows an import report lists one by one
# A line inside a quoted cell whose email column holds an address is a row a stray quote
# swallowed; no name or note of a real subscriber runs on for this many lines.
_ADDRESS = re.compile(r"[^\s@,;\"']+@[^\s@,;\"']+\.[^\s@,;\"']+")
_LONGEST_CELL_LINES = 50


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
    problems: list[Problem] = field(default_factory=list)  # the first DETAILS, by line

    def note(self, line: int, email: str, reason: str) -> None:
        """Keep a problem; of many, the DETAILS with the lowest line numbers."""
        self.problems.append(Problem(line, email, reason))
        if len(self.problems) >= 2 * DETAILS:
            self.tidy()

    def tidy(self) -> None:
        """Problems in line order (rows are checked and written at different times)."""
        self.problems.sort(key=lambda p: p.line)
        del self.problems[DETAILS:]


@dataclass
class Row:
    line: int
    email: str
    key: str
    name: str | None
    tags: list[str]
    status: str | None
    fields: dict[str, str]


def read_rows(
    path: Path, encoding: str, extra_tags: list[str], report: ImportReport
) -> Iterator[Row]:
    """The file's valid rows in order; invalid ones are counted and noted in `report`."""
    try:
        handle = open(path, encoding=encoding, newline="")  # noqa: SIM115 - closed below
    except FileNotFoundError as exc:
        raise SubscriberError(f"{path}: file not found") from exc
    except IsADirectoryError as exc:
        raise SubscriberError(f"{path}: is a folder; name a CSV file") from exc
    except LookupError as exc:
        raise SubscriberError(f"--encoding {encoding!r} is not an encoding Python knows") from exc
    except OSError as exc:
        raise SubscriberError(f"cannot read {os_problem(path, exc)}") from exc
    with handle:
        try:
            dialect = _dialect(handle)
        except UnicodeError as exc:  # UnicodeDecodeError, or utf-16 finding no BOM
            raise SubscriberError(
                f"{path}:1: not valid {encoding} text ({_reason(exc)}); "
                "pass --encoding, e.g. --encoding latin-1"
            ) from exc
        reader = csv.reader(handle, dialect=dialect)
        line = 0  # where the last whole record ended
        try:
            header = next(reader, None)
            if header is None:
                raise SubscriberError(f"{path}: the file is empty")
            header = [from_spreadsheet(h) for h in header]
            columns = [h.strip().lower().lstrip("\ufeff") for h in header]
            _refuse_repeated_columns(path, columns)
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
                if line > start:
                    _check_runaway(path, start, values, email_at, dialect.delimiter)
                if len(values) < width:  # short rows: the missing cells are empty
                    if not any(v.strip() for v in values):
                        continue  # a blank line
                    values += [""] * (width - len(values))
                # Only a cell starting with a quote can be an export's guard against
                # formulas; one join finds such rows faster than a look at each cell.
                if "\x00'" in "\x00" + "\x00".join(values):
                    values = [from_spreadsheet(v) for v in values]
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
                yield Row(
                    line=start,
                    email=email,
                    key=address_key(email),
                    name=(clean_name(values[name_at]) or None) if name_at is not None else None,
                    tags=row_tags,
                    status=status,
                    fields={name: v for i, name in custom if (v := values[i].strip())},
                )
        except UnicodeError as exc:
            raise SubscriberError(
                f"{path}:{reader.line_num + 1}: not valid {encoding} text ({_reason(exc)}); "
                "pass --encoding, e.g. --encoding latin-1"
            ) from exc
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise SubscriberError(
                    f"{path}:{line + 1}: a quoted field runs on past {csv.field_size_limit()} "
                    "characters; a stray '\"' on this line? Close the quote or remove it"
                ) from exc
            raise SubscriberError(f"{path}:{reader.line_num}: {exc}") from exc


def _check_runaway(
    path: Path, start: int, values: list[str], email_at: int, delimiter: str
) -> None:
    """Refuse a quoted cell that swallowed what looks like rows of its own."""
    line = start
    for value in values:
        for offset, text in enumerate(value.split("\n")):
            if offset == 0:
                continue
            cells = text.split(delimiter)
            if offset > _LONGEST_CELL_LINES or (
                len(cells) > email_at and _ADDRESS.fullmatch(cells[email_at].strip())
            ):
                raise SubscriberError(
                    f"{path}:{start}: a quoted field starts here and runs on into line "
                    f"{line + offset}, which looks like a row of its own; a stray '\"'? "
                    "Close the quote or remove it"
                )
        line += value.count("\n")


def _reason(exc: UnicodeError) -> str:
    return exc.reason if isinstance(exc, UnicodeDecodeError) else str(exc)


def _refuse_repeated_columns(path: Path, columns: list[str]) -> None:
    """Two columns of one name (or two email columns) would silently lose one of them."""
    emails = [c for c in columns if c in EMAIL_COLUMNS]
    if len(emails) > 1:
        raise SubscriberError(
            f"{path}:1: the header has {len(emails)} email columns ({', '.join(emails)}); keep one"
        )
    seen: set[str] = set()
    for column in columns:
        if column and column in seen:
            raise SubscriberError(f"{path}:1: the column {column!r} appears twice in the header")
        seen.add(column)


def _dialect(handle: TextIO) -> type[csv.Dialect]:
    """Comma-separated, or semicolon or tab when the header says so (spreadsheet exports)."""
    first = handle.readline()
    handle.seek(0)
    if "," not in first:
        for delimiter in (";", "\t"):
            if delimiter in first:
                return type("Delimited", (csv.excel,), {"delimiter": delimiter})
    return csv.excel
