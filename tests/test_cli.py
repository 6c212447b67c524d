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
