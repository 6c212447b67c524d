"""Files that `subscribers import` cannot take as they are: one clear line, nothing imported."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from newsletter.audience import importing
from newsletter.audience.importing import ImportRejected, import_csv
from newsletter.audience.subscribers import add_subscriber, iter_subscribers, remove_subscriber
from newsletter.cli import app
from newsletter.errors import SubscriberError

from conftest import write


def emails(engine: Engine) -> list[str]:
    return [s.email for s in iter_subscribers(engine)]


def rows(n: int) -> str:
    return "".join(f"u{i}@example.org,User {i}\n" for i in range(n))


def test_a_stray_quote_is_refused_with_its_line(engine: Engine, tmp_path: Path) -> None:
    """One stray quote in row 2 used to import "1 row" with 999 lines in one name."""
    path = write(tmp_path / "m.csv", 'email,name\na@example.org,"Ann\n' + rows(999))
    with pytest.raises(SubscriberError) as info:
        import_csv(engine, path)
    message = str(info.value)
    assert message == (
        f"{path}:2: a quoted field starts here and runs on into line 3, which looks like "
        "a row of its own; a stray '\"'? Close the quote or remove it"
    )
    assert emails(engine) == []


def test_a_quote_opened_mid_file_names_its_line(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "email;name\n" + rows(5).replace(",", ";") +
                 'x@example.org;"X\nnote\n' + rows(3).replace(",", ";"))  # fmt: skip
    with pytest.raises(SubscriberError, match=r"m\.csv:7: a quoted field .* into line 9"):
        import_csv(engine, path, skip_invalid=True)  # not a row to skip: the file is broken
    assert emails(engine) == []


def test_a_field_past_the_csv_limit_names_where_it_starts(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", 'email,name\na@example.org,"' + "x" * 200_000 + "\n")
    with pytest.raises(SubscriberError, match=r"m\.csv:2: a quoted field runs on past \d+"):
        import_csv(engine, path)


def test_real_multi_line_cells_still_import(engine: Engine, tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.csv",
        'email,name,notes\na@example.org,Ann,"Met at the fair,\nlikes bees; call after 6"\n'
        "b@example.org,Bo,\n",
    )
    report = import_csv(engine, path)
    assert (report.added, report.invalid) == (2, 0)
    assert next(iter_subscribers(engine)).fields == {
        "notes": "Met at the fair,\nlikes bees; call after 6"
    }


def test_problems_are_reported_in_line_order(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are checked as read and duplicates found per chunk; the report is by line."""
    monkeypatch.setattr(importing, "CHUNK", 3)
    add_subscriber(engine, "gone@example.org")
    remove_subscriber(engine, "gone@example.org", erase=True)
    path = write(
        tmp_path / "m.csv",
        "email\na@example.org\na@example.org\nbad@\ngone@example.org\nb@example.org\n"
        "worse@\nb@example.org\n",
    )
    with pytest.raises(ImportRejected) as info:
        import_csv(engine, path)
    assert [p.line for p in info.value.report.problems] == [3, 4, 5, 7, 8]


def test_many_problems_keep_the_first_by_line(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "CHUNK", 50)
    # In each chunk the invalid rows (noted as read) come after the duplicates.
    text = "email\n" + "".join(f"d{i}@example.org\nd{i}@example.org\nbad{i}@\n" for i in range(300))
    report = import_csv(engine, write(tmp_path / "m.csv", text), skip_invalid=True)
    lines = [p.line for p in report.problems]
    assert lines == sorted(lines) and len(lines) == 200 and lines[:2] == [3, 4]
    assert (report.skipped, report.invalid) == (300, 300)


def test_cli_import_of_a_folder_or_broken_file_is_one_line(workspace: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--workspace", str(workspace), "subscribers", "import"]
    result = runner.invoke(app, [*base, str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path}: is a folder; name a CSV file\n"
    path = write(tmp_path / "m.csv", 'email,name\na@example.org,"Ann\n' + rows(10))
    result = runner.invoke(app, [*base, str(path), "--dry-run"])
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr.startswith(f"Error: {path}:2: a quoted field starts here")


def test_cli_dry_run_with_invalid_rows_prints_the_counts(workspace: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    path = write(tmp_path / "m.csv", "email\na@example.org\nbad@\na@example.org\n")
    base = ["--workspace", str(workspace), "subscribers", "import", str(path)]
    result = runner.invoke(app, [*base, "--dry-run"])
    assert result.exit_code == 1
    assert result.stdout == (
        "3 rows: 1 added, 0 updated, 0 unchanged, 1 skipped, 1 invalid "
        "(dry run: nothing was changed)\n"
    )
    problems = result.stderr.splitlines()
    assert problems[0].startswith(f"{path}:3: bad@: ")
    assert problems[1:] == [
        f"{path}:4: a@example.org: duplicate of line 2",
        f"Error: {path}: 1 invalid row; nothing was imported "
        "(fix them, or pass --skip-invalid to import the rest)",
    ]
    result = runner.invoke(app, base)
    assert result.exit_code == 1
    assert "1 invalid (nothing was imported)" in result.stdout


def test_utf16_without_a_byte_order_mark_is_one_line(engine: Engine, tmp_path: Path) -> None:
    """Found by Hypothesis: the utf-16 codec raises UnicodeError, not UnicodeDecodeError."""
    path = tmp_path / "m.csv"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(SubscriberError, match=r"m\.csv:1: not valid utf-16 text \(UTF-16 stream"):
        import_csv(engine, path, encoding="utf-16")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("email,name,email", "the header has 2 email columns (email, email)"),
        ("email,e-mail,name", "the header has 2 email columns (email, e-mail)"),
        ("email,city,City", "the column 'city' appears twice in the header"),
    ],
)
def test_a_column_given_twice_is_refused(
    engine: Engine, tmp_path: Path, header: str, expected: str
) -> None:
    path = write(tmp_path / "twice.csv", f"{header}\nana@example.org,Ana,x\n")
    with pytest.raises(SubscriberError, match=re.escape(f"twice.csv:1: {expected}")):
        import_csv(engine, path)
    assert list(iter_subscribers(engine)) == []
