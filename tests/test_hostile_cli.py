"""The command line over a corpus of hostile files (tests/hostile/): never a traceback.

Each case copies the example workspace, puts one hostile file where it belongs, runs one
command and holds it to the rule for bad input: exit status 0, 1 or 2; every line on
stderr a one-line "Error: ..." or "Warning: ..." (or a row of an import's report); when
the command fails, nothing half-written (the workspace's files and the subscribers as
they were); when it succeeds, what it wrote reads back, holds no script, no file from
outside and no link that carries a reader's address. Which inputs are refused and with
what words is the other tests' business.

Most cases run in this process through CliRunner, because a subprocess spends about a
second importing. Those that depend on the real process (deep nesting near the recursion
limit, symbolic links) and one or two of each command run `python -m newsletter`.
Big inputs (5,000 nested tags, 100,000-character cells) are made here, not committed.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tomllib
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import html as lxml_html
from typer.testing import CliRunner

from newsletter.audience.subscribers import add_subscriber
from newsletter.cli import app
from newsletter.cli.base import hoist_global_options
from newsletter.compose.articles import read_article
from newsletter.config import load_settings
from newsletter.storage import open_engine

from conftest import EXAMPLE, SAMPLE_ARTICLE

HOSTILE = Path(__file__).parent / "hostile"
ISSUE = Path("issues") / EXAMPLE
ADD = ("add", "welcome", "{file}")
BUILD = ("build", "welcome")
SEND_TEST = ("send-test", "welcome", "--to", "you@example.org")
SEND = ("send", "welcome", "--yes")
IMPORT = ("subscribers", "import", "{file}")
LIST = ("subscribers", "list", "--segment")
READERS = ("ana@example.org", "bo@example.org", "cy@example.org")


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None


def run(workspace: Path, args: list[str], *, real: bool) -> Outcome:
    """The CLI in the workspace: as a process (`real`), or in this one."""
    if real:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        done = subprocess.run(
            [sys.executable, "-m", "newsletter", *args],
            cwd=workspace,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        return Outcome(
            done.returncode,
            done.stdout.decode("utf-8", "replace"),
            done.stderr.decode("utf-8", "replace"),
        )
    here = Path.cwd()
    os.chdir(workspace)
    try:
        result = CliRunner().invoke(app, hoist_global_options(args), catch_exceptions=True)
    finally:
        os.chdir(here)
    exception = None if isinstance(result.exception, SystemExit) else result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr, exception)


def snapshot(workspace: Path) -> dict[str, str]:
    """Every file and folder in the workspace (but the database) and its content's hash."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(workspace):
        for name in dirs + files:
            path = Path(folder, name)
            key = str(path.relative_to(workspace))
            if key == ".newsletter" or key.startswith(".newsletter/newsletter.db"):
                continue  # opening the list makes the database; its rows are compared apart
            if path.is_symlink():
                found[key] = f"-> {os.readlink(path)}"
            elif path.is_dir():
                found[key] = "folder"
            else:
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def subscribers(workspace: Path) -> list[tuple[object, ...]]:
    database = workspace / ".newsletter" / "newsletter.db"
    if not database.exists():
        return []
    with sqlite3.connect(database) as conn:
        try:
            rows = conn.execute("SELECT * FROM subscribers ORDER BY id").fetchall()
            rows += conn.execute("SELECT * FROM subscriber_tags ORDER BY 1, 2").fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return []
    return rows


def seed(workspace: Path) -> None:
    """Three active readers, so that a send or a segment has someone to find."""
    engine = open_engine(load_settings(workspace, environ={}))
    try:
        for address, tags in zip(READERS, (["news"], ["news", "events"], ["local"]), strict=True):
            add_subscriber(engine, address, name=address[:2].title(), tags=tags)
    finally:
        engine.dispose()


# --- what every answer is held to -----------------------------------------------------------

ALLOWED = ("Error: ", "Warning: ")
CLICK_USAGE = ("Usage: ", "Try '", "")
REPORT_ROW = re.compile(r"^(\S.*\.csv:\d+: .*|\.\.\. and \d+ more)$")
ACTIVE_TAGS = {"script", "iframe", "frame", "object", "embed", "applet", "form", "base", "svg"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "background", "poster", "srcset"}
URL_SCHEMES = {"http", "https", "mailto", "tel"}
LEFTOVER = re.compile(r"^\..+\.[0-9a-f]{8}\.(new|old|tmp)$")  # a write or a build not finished
PASSWD = re.compile(rb"^root:[^:\n]*:0:0:", re.M)


def check_answer(outcome: Outcome, before: object, after: object) -> None:
    """No exception, no traceback, one line per problem; a failure changes nothing."""
    if outcome.exception is not None:
        shown = "".join(traceback.format_exception(outcome.exception))
        pytest.fail(f"an exception escaped the CLI:\n{shown}")
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.code in (0, 1, 2), (outcome.code, outcome.stderr)
    for line in outcome.stderr.splitlines():
        usage = outcome.code == 2 and line.startswith(CLICK_USAGE)
        assert line.startswith(ALLOWED) or REPORT_ROW.match(line) or usage, outcome.stderr
        assert len(line) <= 2000, f"a line of {len(line)} characters is not one clear line"
    if outcome.code != 0:
        assert outcome.stderr.strip(), "a failure says why on stderr"
        assert before == after, "a failed command changed the workspace"


def check_written(workspace: Path, before: dict[str, str], after: dict[str, str]) -> None:
    """What a command wrote: articles that read back, email with no script, no secrets."""
    for key, digest in after.items():
        assert not LEFTOVER.match(Path(key).name), f"{key} was left behind"
        path = workspace / key
        if before.get(key) == digest or path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        assert not PASSWD.search(data), f"{key} holds /etc/passwd"
        if key.startswith(str(ISSUE)) and path.suffix == ".md":
            read_article(path)  # `add` wrote an article that a build takes
        if key.startswith("build/") and path.name == "email.html":
            check_inert(data)
        if key.startswith(".newsletter/outbox/") and path.suffix == ".eml":
            check_links(data)


def check_inert(html: bytes) -> None:
    """No script, frame or form, no event handler, no URL but http(s), mailto and tel."""
    for element in lxml_html.fromstring(html).iter():
        if not isinstance(element.tag, str):
            continue  # a comment
        assert element.tag.lower() not in ACTIVE_TAGS, lxml_html.tostring(element)[:200]
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (name, value)
            scheme = re.match(r"\s*([A-Za-z][\w+.-]*):", value)
            if name.lower() in URL_ATTRIBUTES and scheme:
                assert scheme.group(1).lower() in URL_SCHEMES, (name, value)


def check_links(eml: bytes) -> None:
    """An article's own links never carry the reader's address or name."""
    message = email.message_from_bytes(eml, policy=email.policy.default)
    for part in message.walk():
        if part.get_content_maintype() == "text":
            for url in re.findall(r"https?://evil\.example[^\s\"'<>)]*", part.get_content()):
                assert not re.search(r"ana|bo@|cy@|%40|\bAn\b|\bBo\b", url), url


# --- the cases -----------------------------------------------------------------------------

Place = Callable[[Path, Path], str]


@dataclass(frozen=True)
class Case:
    """One command over one hostile input; `place` puts the input in the workspace."""

    args: tuple[str, ...]
    place: Place = lambda ws, scratch: ""
    real: bool = False  # run as a process
    seeded: bool = False  # with three subscribers
    names: str | None = None  # must exit 1 with this in the message
    one_line: bool = False  # one bad value: a failure is one line


def corpus(family: str) -> list[str]:
    return sorted(p.name for p in (HOSTILE / family).iterdir())


def outside(family: str, name: str) -> Place:
    """A corpus file copied outside the workspace, as an editor's download would be."""

    def place(ws: Path, scratch: Path) -> str:
        shutil.copyfile(HOSTILE / family / name, scratch / name)
        return str(scratch / name)

    return place


def made(name: str, data: Callable[[], bytes]) -> Place:
    """A file made at run time (too big to commit), outside the workspace."""

    def place(ws: Path, scratch: Path) -> str:
        (scratch / name).write_bytes(data())
        return str(scratch / name)

    return place


def linked(name: str, target: str) -> Place:
    def place(ws: Path, scratch: Path) -> str:
        (scratch / name).symlink_to(target)
        return str(scratch / name)

    return place


def listed(name: str, data: Callable[[], bytes] | None = None, link: str = "") -> Place:
    """An article put in the example issue (a file, or a link to `link`) and listed last."""

    def place(ws: Path, scratch: Path) -> str:
        folder = ws / ISSUE
        if link:
            (folder / name).symlink_to(link)
        else:
            (folder / name).write_bytes(
                data() if data else (HOSTILE / "articles" / name).read_bytes()
            )
        toml = folder / "issue.toml"
        text = toml.read_text(encoding="utf-8")
        toml.write_text(text.replace('.html",\n]', f'.html",\n    "{name}",\n]'), "utf-8")
        return name

    return place


def replacing(family: str, name: str, target: str) -> Place:
    def place(ws: Path, scratch: Path) -> str:
        shutil.copyfile(HOSTILE / family / name, ws / target)
        return name

    return place


def _corpus_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for name in corpus("articles"):
        cases[f"add-{name}"] = Case(ADD, outside("articles", name))
        cases[f"build-{name}"] = Case(BUILD, listed(name))
    for name in (
        "tokens.txt",
        "tokens.html",
        "script-style-iframe.html",
        "script-style-iframe-remote-image.html",
        "javascript-links.txt",
    ):
        cases[f"send-test-{name}"] = Case(SEND_TEST, listed(name))
        cases[f"send-{name}"] = Case(SEND, listed(name), seeded=True)
    for name in corpus("issues"):
        cases[f"issue-{name}"] = Case(BUILD, replacing("issues", name, f"{ISSUE}/issue.toml"))
    cases["issue-add-to-invalid-toml.toml"] = Case(
        ("add", "welcome", str(SAMPLE_ARTICLE)),
        replacing("issues", "invalid-toml.toml", f"{ISSUE}/issue.toml"),
        names="issue.toml",
    )
    cases["issue-add-to-articles-string.toml"] = Case(
        ("add", "welcome", str(SAMPLE_ARTICLE)),
        replacing("issues", "articles-string.toml", f"{ISSUE}/issue.toml"),
        names="articles",
    )
    for name in corpus("config"):
        sending = name.startswith(("rate", "batch", "sending"))
        cases[f"config-{name}"] = Case(
            SEND if sending else BUILD,
            replacing("config", name, "newsletter.toml"),
            seeded=sending,
        )
    for name in corpus("csv"):
        cases[f"import-{name}"] = Case(IMPORT, outside("csv", name))
        cases[f"import-dry-run-{name}"] = Case((*IMPORT, "--dry-run"), outside("csv", name))
    return cases


def _argument_cases() -> dict[str, Case]:
    """tests/hostile/arguments.toml: one table of hostile values per option."""
    with (HOSTILE / "arguments.toml").open("rb") as handle:
        given = tomllib.load(handle)
    commands: dict[str, Callable[[str], tuple[str, ...]]] = {
        "segment": lambda v: (*LIST, v),
        "slug": lambda v: ("new", v, "--date", "2027-03-01"),
        "date": lambda v: ("new", "spring", "--date", v),
        "subject": lambda v: ("new", "spring", "--subject", v),
        "path": lambda v: ("init", v, "--name", "N"),
        "name": lambda v: ("init", "fresh", "--name", v),
        "to": lambda v: ("send-test", "welcome", "--to", v),
    }
    return {
        f"{option}-{key}": Case(command(value), seeded=option == "segment", one_line=True)
        for option, command in commands.items()
        for key, value in given[option].items()
    }


def _nested_html() -> bytes:
    return b"<h1>Deep</h1>" + b"<div>" * 5000 + b"x" + b"</div>" * 5000


def _front(body: str) -> Callable[[], bytes]:
    return lambda: f"---\ntitle: Deep\n---\n\n{body}\n".encode()


def _csv(rows: list[str]) -> Callable[[], bytes]:
    return lambda: "\n".join(rows).encode()


def _stray_quote() -> bytes:
    rows = [f"u{i}@example.org,User {i}" for i in range(1000)]
    rows[1] = 'u1@example.org,"User 1'  # row 2, line 3
    return _csv(["email,name", *rows])()


def _empty_articles(ws: Path, scratch: Path) -> str:
    """The issue lists no articles (so all files count) and holds a link to /etc/passwd."""
    folder = ws / ISSUE
    toml = folder / "issue.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(re.sub(r"articles = \[[^]]*\]", "articles = []", text), "utf-8")
    (folder / "zz-passwd.txt").symlink_to("/etc/passwd")
    return ""


def _two_articles(ws: Path, scratch: Path) -> str:
    good = scratch / "good.txt"
    shutil.copyfile(SAMPLE_ARTICLE, good)
    shutil.copyfile(HOSTILE / "articles" / "yaml-python-tag.md", scratch / "bad.md")
    return str(scratch)


def _loop(ws: Path, scratch: Path) -> str:
    (ws / "loop").symlink_to("loop")
    return ""


def _out_link(ws: Path, scratch: Path) -> str:
    """`--out` names a link to an empty folder elsewhere, as a shared drive might be."""
    (scratch / "shared").mkdir()
    (ws / "out").symlink_to(scratch / "shared")
    return ""


LONG = "n" * 246
CELL = "x" * 100_000
TOO_LONG_NAME = "a" * 296 + ".md"

GENERATED: dict[str, Case] = {
    "add-nested-5000-tags.html": Case(ADD, made("n.html", _nested_html), real=True),
    "build-nested-5000-tags.html": Case(BUILD, listed("n.html", _nested_html), real=True),
    "add-nested-5000-blockquotes.md": Case(ADD, made("q.md", _front("> " * 5000 + "x")), real=True),
    "build-nested-5000-blockquotes.md": Case(
        BUILD, listed("q.md", _front("> " * 5000 + "x")), real=True
    ),
    "add-nested-500-lists.md": Case(
        ADD, made("l.md", _front("\n".join("    " * i + "- x" for i in range(500)))), real=True
    ),
    "add-nested-5000-brackets.md": Case(
        ADD, made("b.md", _front("[" * 5000 + "x" + "](y)" * 5000)), real=True
    ),
    "add-nested-5000-html-in-markdown.md": Case(
        ADD, made("h.md", _front("<div>" * 5000 + "x" + "</div>" * 5000)), real=True
    ),
    "build-2mb-article.md": Case(BUILD, listed("big.md", _front("Words and words. " * 120_000))),
    "add-symlink-to-etc-passwd.txt": Case(ADD, linked("passwd.txt", "/etc/passwd"), real=True),
    "build-symlink-to-etc-passwd.txt": Case(
        BUILD, listed("passwd.txt", link="/etc/passwd"), real=True, names="inside the issue"
    ),
    "build-unlisted-symlink-to-etc-passwd.txt": Case(
        BUILD, _empty_articles, real=True, names="inside the issue"
    ),
    "add-symlink-to-folder.md": Case(ADD, linked("etc.md", "/etc"), names="folder"),
    "add-dangling-symlink.md": Case(ADD, linked("gone.md", "/nonexistent/x.md"), names="gone.md"),
    "add-folder-named-like-an-article.md": Case(
        ADD, lambda ws, s: str((s / "dir.md").mkdir() or s / "dir.md"), names="dir.md"
    ),
    "add-missing-file.md": Case(ADD, lambda ws, s: str(s / "missing.md"), names="missing.md"),
    "add-300-char-file-name.md": Case(ADD, lambda ws, s: str(s / TOO_LONG_NAME), names="aaaa"),
    "add-250-char-file-name.md": Case(ADD, made(LONG + ".md", _front("Body."))),
    "add-250-char-file-name.txt": Case(
        ADD, made(LONG + ".txt", lambda: (HOSTILE / "articles" / "long-title.md").read_bytes())
    ),
    "add-one-good-one-bad": Case(
        ("add", "welcome", "{file}/good.txt", "{file}/bad.md"), _two_articles, names="bad.md"
    ),
    "import-stray-quote-in-row-2-of-1000.csv": Case(
        IMPORT, made("m.csv", _stray_quote), names="m.csv:3:"
    ),
    "import-100k-character-email.csv": Case(
        IMPORT, made("e.csv", _csv(["email,name", f"{CELL}@example.org,A"]))
    ),
    "import-100k-character-name.csv": Case(
        IMPORT, made("n.csv", _csv(["email,name", f"ana@example.org,{CELL}"]))
    ),
    "import-100k-character-field.csv": Case(
        IMPORT, made("f.csv", _csv(["email,notes", f'ana@example.org,"{CELL}"']))
    ),
    "import-200k-character-cell.csv": Case(
        IMPORT, made("c.csv", _csv(["email,notes", f'ana@example.org,"{CELL * 2}"']))
    ),
    "import-10000-columns.csv": Case(
        IMPORT,
        made(
            "w.csv",
            _csv(["email," + ",".join(f"c{i}" for i in range(10_000)), "a@x.org" + ",v" * 10_000]),
        ),
    ),
    "import-3000-invalid-rows.csv": Case(
        IMPORT, made("i.csv", _csv(["email", *(f"bad{i}@" for i in range(3000))])), names="i.csv"
    ),
    "import-a-folder": Case(IMPORT, lambda ws, s: str(s), names="folder"),
    "import-missing-file": Case(IMPORT, lambda ws, s: str(s / "missing.csv"), names="missing.csv"),
    "import-dev-null": Case(IMPORT, lambda ws, s: "/dev/null", names="empty"),
    "import-latin1-as-latin1": Case(
        (*IMPORT, "--encoding", "latin-1"), outside("csv", "latin1.csv")
    ),
    "import-unknown-encoding": Case(
        (*IMPORT, "--encoding", "rot-13-no"), outside("csv", "bom-crlf.csv"), names="rot-13-no"
    ),
    "import-utf8-as-utf16": Case((*IMPORT, "--encoding", "utf-16"), outside("csv", "bom-crlf.csv")),
    "segment-5000-nested-brackets": Case((*LIST, "(" * 5000 + "news" + ")" * 5000), seeded=True),
    "segment-5000-nested-brackets-real": Case(
        (*LIST, "(" * 5000 + "news" + ")" * 5000), seeded=True, real=True
    ),
    "segment-240-nested-brackets": Case((*LIST, "(" * 240 + "news" + ")" * 240), seeded=True),
    "segment-120-nots": Case((*LIST, "not " * 120 + "news"), seeded=True),
    "segment-10000-characters": Case((*LIST, "news or " * 1250 + "news"), seeded=True),
    "tag-unbalanced": Case(("subscribers", "list", "--tag", "((((news"), seeded=True),
    "count-segment-unbalanced": Case(
        ("subscribers", "count", "--segment", "news and (not"), seeded=True
    ),
    "send-segment-sql": Case((*SEND, "--segment", "news' OR '1'='1"), seeded=True),
    "send-segment-5000-nested-brackets": Case(
        (*SEND, "--segment", "(" * 5000 + "news" + ")" * 5000), seeded=True, real=True
    ),
    "subject-5000-characters": Case(("new", "spring", "--subject", "S" * 5000)),
    "name-5000-characters": Case(("init", "fresh", "--name", "N" * 5000)),
    "build-out-is-a-file": Case((*BUILD, "--out", "newsletter.toml"), names="newsletter.toml"),
    "build-out-in-proc": Case((*BUILD, "--out", "/proc/hostile/build")),
}

LONG_NAME = "a" * 300  # past the 255 bytes a file name may have
GENERATED |= {
    "build-issue-300-characters": Case(("build", LONG_NAME)),
    "build-out-300-characters": Case((*BUILD, "--out", LONG_NAME)),
    "workspace-300-characters": Case(("--workspace", LONG_NAME, *BUILD)),
    "export-to-300-characters": Case(("subscribers", "export", "-o", LONG_NAME), seeded=True),
    "add-symlink-loop.md": Case(ADD, linked("loop.md", "loop.md"), names="loop.md"),
    "import-symlink-loop.csv": Case(IMPORT, linked("loop.csv", "loop.csv"), names="loop.csv"),
    "build-symlink-loop-article.md": Case(BUILD, listed("loop.md", link="loop.md")),
    "workspace-symlink-loop": Case(("--workspace", "loop", *BUILD), _loop),
    "build-out-symlink-to-a-folder": Case((*BUILD, "--out", "out"), _out_link),
}
GENERATED["new-existing-issue"] = Case(
    ("new", "welcome", "--date", "2026-11-26"), names="already exists"
)
GENERATED["new-real"] = Case(("new", "../x", "--date", "99 Foo 99"), real=True)
GENERATED["init-real"] = Case(("init", "newsletter.toml", "--name", "a\u2028b"), real=True)
GENERATED["config-send-test-from-two-mailboxes"] = Case(
    SEND_TEST, replacing("config", "from-two-mailboxes.toml", "newsletter.toml"), names="from"
)

CASES = _corpus_cases() | _argument_cases() | GENERATED
REAL = {
    "add-yaml-billion-laughs.md",
    "build-script-style-iframe.html",
    "build-script-style-iframe-remote-image.html",
    "send-test-tokens.html",
    "send-tokens.html",
    "issue-subject-newline.toml",
    "config-from-two-mailboxes.toml",
    "config-rate-nan.toml",
    "import-formulas.csv",
    "import-dry-run-invalid-addresses.csv",
    "segment-sql-injection",
}
# Findings in code being fixed elsewhere; remove a mark when its case passes.
XFAIL: dict[str, str] = {}


assert REAL <= CASES.keys() and XFAIL.keys() <= CASES.keys(), "a mark names no case"


def _params() -> list[object]:
    params = []
    for key, case in CASES.items():
        if key in REAL:
            case = Case(case.args, case.place, True, case.seeded, case.names)
        marks = [pytest.mark.xfail(strict=True, reason=XFAIL[key])] if key in XFAIL else []
        params.append(pytest.param(case, id=key, marks=marks))
    return params


def _kept(files: dict[str, str], args: tuple[str, ...]) -> dict[str, str]:
    """What a failed command must leave as it was; a send builds first, a whole build."""
    if args[0] not in ("send", "send-test"):
        return files
    return {key: value for key, value in files.items() if key.split("/")[0] != "build"}


@pytest.mark.parametrize("case", _params())
def test_hostile_input_gets_one_clear_line(case: Case, workspace: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    if case.seeded:
        seed(workspace)
    file = case.place(workspace, scratch)
    before = snapshot(workspace), subscribers(workspace)
    outcome = run(workspace, [arg.replace("{file}", file) for arg in case.args], real=case.real)
    after = snapshot(workspace), subscribers(workspace)
    kept = [(_kept(files, case.args), rows) for files, rows in (before, after)]
    check_answer(outcome, *kept)
    check_written(workspace, before[0], after[0])
    if case.names is not None:
        assert outcome.code == 1 and case.names in outcome.stderr, outcome.stderr
    if case.one_line and outcome.code == 1:
        assert len(outcome.stderr.splitlines()) == 1, outcome.stderr
