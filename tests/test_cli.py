from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app

from conftest import EXAMPLE, REPO, write

runner = CliRunner()


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command, as an editor runs it."""
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_init_then_build_in_a_new_workspace(tmp_path: Path) -> None:
    target = tmp_path / "bulletin"
    result = runner.invoke(app, ["init", str(target), "--name", "The Weekly"])
    assert result.exit_code == 0, result.output
    assert (target / "newsletter.toml").is_file()
    assert (target / "templates" / "email.html").is_file()
    assert (target / "issues" / EXAMPLE / "issue.toml").is_file()
    result = runner.invoke(app, ["--workspace", str(target), "build", "welcome"])
    assert result.exit_code == 0, result.output
    assert "email.eml" in result.output
    html = (target / "build" / EXAMPLE / "email.html").read_text()
    assert "The Weekly" in html and "https://example.org/" in html
    again = runner.invoke(app, ["init", str(target)])
    assert again.exit_code == 1 and "already exists" in again.output


def test_new_add_build(workspace: Path, tmp_path: Path) -> None:
    result = run("new", "spring", "--subject", "Spring news", "--date", "2027-03-01", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert "issues/2027-03-01-spring" in result.stdout
    article = write(tmp_path / "story.txt", "A story\n\n1 Mar 2027\n\nStandfirst.\n\nBody.\n")
    result = run("add", "spring", str(article), cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert "issues/2027-03-01-spring/a-story.md" in result.stdout
    result = run("build", "spring", cwd=workspace / "issues")  # found from a subfolder
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        f"../build/2027-03-01-spring/{name}"
        for name in ("email.html", "email.txt", "email.eml", "rendered.json")
    ]
    assert all(re.search(r"\d+(\.\d)? (B|KB)$", line) for line in lines)


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (
            lambda ws: write(ws / "issues" / EXAMPLE / "library-reopens.md", "---\nx: [\n---\n"),
            r"library-reopens\.md:\d+: broken front matter",
        ),
        (
            lambda ws: write(
                ws / "issues" / EXAMPLE / "library-reopens.md", "---\ntitle: T\nfoo: 1\n---\n"
            ),
            r"library-reopens\.md:3: unknown front-matter key 'foo'",
        ),
        (
            lambda ws: (ws / "issues" / EXAMPLE / "flood-defences.html").unlink(),
            r"article 'flood-defences\.html' not found",
        ),
        (
            lambda ws: write(ws / "templates" / "email.html", "{{ nope }}"),
            r"templates/email\.html:1: 'nope' is undefined",
        ),
        (
            lambda ws: write(ws / "newsletter.toml", 'name = "x"\nsite_url = "https://x.org"\n'),
            r"newsletter\.toml: key 'from' is required",
        ),
    ],
)
def test_bad_input_is_one_line_without_traceback(
    workspace: Path, setup: object, expected: str
) -> None:
    setup(workspace)  # type: ignore[operator]
    result = run("build", "welcome", cwd=workspace)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and re.search(expected, lines[0]), lines[0]
    assert not (workspace / "build").exists()


def test_debug_shows_traceback(workspace: Path) -> None:
    (workspace / "issues" / EXAMPLE / "flood-defences.html").unlink()
    result = run("--debug", "build", "welcome", cwd=workspace)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ContentError" in result.stderr


def test_no_workspace(tmp_path: Path) -> None:
    result = run("build", "welcome", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: no newsletter.toml in ")


def test_bad_date_option(workspace: Path) -> None:
    result = run("new", "x", "--date", "tomorrowish", cwd=workspace)
    assert result.returncode == 2 and "--date" in result.stderr


def _commands() -> list[str]:
    """Every command, subcommands of groups included ("subscribers add")."""
    from typer.main import get_command

    found = []
    for name, command in get_command(app).commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        if subcommands:
            found.extend(f"{name} {sub}" for sub in subcommands)
        else:
            found.append(name)
    return sorted(found)


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help_with_example_and_is_in_readme(command: str) -> None:
    result = runner.invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0
    assert "Example: newsletter " + command in " ".join(result.output.split())
    readme = (REPO / "README.md").read_text()
    assert f"newsletter {command}" in readme


def test_readme_documents_every_setting() -> None:
    from newsletter.config import KEYS

    readme = (REPO / "README.md").read_text()
    for key in KEYS:
        assert f"`{key.path}`" in readme and f"`{key.env}`" in readme, key.path


# --- one clear line instead of a traceback (issue 9, F and I) -------------------------------


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_init_on_an_existing_file(tmp_path: Path) -> None:
    target = write(tmp_path / "notes.txt", "mine")
    line = one_error_line(run("init", str(target)))
    assert "notes.txt" in line and "not a folder" in line
    assert target.read_text() == "mine"


@pytest.mark.parametrize("name", ["Back\\slash", 'The "Quoted" Note', "Smith, Jones & Co."])
def test_init_writes_a_config_any_name_reads_back_from(tmp_path: Path, name: str) -> None:
    target = tmp_path / "ws"
    result = runner.invoke(app, ["init", str(target), "--name", name])
    assert result.exit_code == 0, result.output
    from newsletter.config import load_settings

    settings = load_settings(target, environ={})
    assert settings.name == name and settings.sender.display_name == name
    text = (target / "newsletter.toml").read_text()
    assert text.startswith("# Settings for this newsletter.")  # comments kept
    assert "# reply_to =" in text


def test_init_refuses_a_name_of_several_lines(tmp_path: Path) -> None:
    line = one_error_line(run("init", str(tmp_path / "ws"), "--name", "Two\nlines"))
    assert "--name" in line
    assert not (tmp_path / "ws" / "newsletter.toml").exists()


def test_new_with_a_slug_too_long(workspace: Path) -> None:
    line = one_error_line(run("new", "a" * 300, cwd=workspace))
    assert "slug" in line


@pytest.mark.parametrize("given", ["12/01/2026", "01.12.2026", "1/12/26", "2026/12/01"])
def test_new_refuses_ambiguous_numeric_dates(workspace: Path, given: str) -> None:
    result = run("new", "x", "--date", given, cwd=workspace)
    assert result.returncode == 2
    text = " ".join(result.stderr.split())
    assert "--date" in text and "2026-12-01" in text and "1 December 2026" in text
    assert not (workspace / "issues" / "2026-01-12-x").exists()
    assert not (workspace / "issues" / "2026-12-01-x").exists()


@pytest.mark.parametrize("given", ["2026-12-01", "1 December 2026", "Dec 1, 2026", "1 Dec 26"])
def test_new_accepts_iso_and_written_dates(workspace: Path, given: str) -> None:
    result = run("new", "x", "--date", given, cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert (workspace / "issues" / "2026-12-01-x" / "issue.toml").is_file()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '<?xml version="1.0" encoding="utf-8"?>\n<html><body><h1>XML page</h1>'
            "<p>Text.</p></body></html>",
            None,
        ),
        ("<!-- only a comment -->", r"flood-defences\.html:1: .*no title"),
        ("   \n<!-- -->\n", r"flood-defences\.html:1: .*no title"),
    ],
)
def test_odd_html_articles(workspace: Path, content: str, expected: str | None) -> None:
    write(workspace / "issues" / EXAMPLE / "flood-defences.html", content)
    result = run("build", "welcome", cwd=workspace)
    if expected is None:
        assert result.returncode == 0, result.stderr
        assert "XML page" in (workspace / "build" / EXAMPLE / "email.html").read_text()
    else:
        assert re.search(expected, one_error_line(result))


def test_subject_with_a_unicode_line_break(workspace: Path) -> None:
    toml = workspace / "issues" / EXAMPLE / "issue.toml"
    subject = 'subject = "Hi\\u2028Bcc: x@y.org"'  # the TOML escape for U+2028
    toml.write_text(re.sub(r'subject = ".*"', lambda _: subject, toml.read_text()))
    line = one_error_line(run("build", "welcome", cwd=workspace))
    assert "key 'subject' must be one line" in line


def test_build_out_naming_a_file(workspace: Path) -> None:
    target = write(workspace / "out.txt", "keep")
    line = one_error_line(run("build", "welcome", "--out", str(target), cwd=workspace))
    assert "out.txt" in line
    assert target.read_text() == "keep"


def test_add_warns_about_control_characters_it_removed(workspace: Path, tmp_path: Path) -> None:
    pasted = write(tmp_path / "pasted.txt", "Pasted\x1b[0m title\n\nA paragraph\x07.\n")
    result = run("add", "welcome", str(pasted), cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert re.search(r"Warning: .*pasted\.txt:1: removed control characters", result.stderr)
    written = workspace / "issues" / EXAMPLE / "pasted-0m-title.md"
    assert "\x1b" not in written.read_text() and "\x07" not in written.read_text()


# --- hostile paths and values: one line each (issue 9) --------------------------------------


def test_init_with_a_path_too_long_is_one_line(tmp_path: Path) -> None:
    """OSError "File name too long" escaped init_workspace as a traceback."""
    result = runner.invoke(app, ["init", str(tmp_path / ("a" * 300)), "--name", "N"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot create the workspace: ")
    assert lines[0].endswith(": File name too long") and len(lines[0]) < 300
    assert list(tmp_path.iterdir()) == []


def test_import_report_shows_each_address_on_one_short_line(
    workspace: Path, tmp_path: Path
) -> None:
    """An address's line breaks were printed raw, a 100,000-character one whole."""
    path = tmp_path / "m.csv"
    long = "x" * 100_000 + "@example.org"
    path.write_text(f'email\n"ana@example.org\nBcc: v@example.org"\n{long}\n', encoding="utf-8")
    base = ["--workspace", str(workspace), "subscribers", "import", str(path)]
    for extra in ([], ["--dry-run"]):
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        lines = result.stderr.splitlines()
        assert len(lines) == 3, result.stderr
        assert lines[0].startswith(f"{path}:2: 'ana@example.org\\nBcc: v@example.org': ")
        assert re.match(rf"{re.escape(str(path))}:4: x+\.\.\.x+@example\.org: ", lines[1])
        assert len(lines[1]) < 300
        assert lines[2].startswith("Error: ")


def test_an_os_error_that_escapes_a_command_is_one_line(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net: an OSError no module turned into an error of ours."""
    import errno

    from newsletter.cli import content

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", "/srv/news/build")

    monkeypatch.setattr(content, "build_issue", refuse)
    result = runner.invoke(app, ["--workspace", str(workspace), "build", "welcome"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr == "Error: /srv/news/build: Permission denied\n"
    result = runner.invoke(app, ["--workspace", str(workspace), "--debug", "build", "welcome"])
    assert isinstance(result.exception, PermissionError)  # --debug shows the traceback
