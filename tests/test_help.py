"""Every help text renders as written, and global options go anywhere on the line."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.cli.base import hoist_global_options


def commands() -> list[tuple[list[str], Any]]:
    """Every command, as (its words after `newsletter`, Click's command object)."""
    root: Any = get_command(app)
    found: list[tuple[list[str], Any]] = [([], root)]
    for name, command in root.commands.items():
        found.append(([name], command))
        found += [([name, sub], c) for sub, c in getattr(command, "commands", {}).items()]
    return found


@pytest.mark.parametrize(
    ("path", "command"),
    commands(),
    ids=lambda v: " ".join(v) or "root" if isinstance(v, list) else "",
)
def test_help_renders_as_written(path: list[str], command: Any) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    text = result.output
    example = [line.strip() for line in text.splitlines() if line.strip().startswith("Example:")]
    assert example, f"`newsletter {' '.join(path)} --help` shows no example"
    written = inspect.cleandoc(command.help or "")
    assert any(line.strip() in written.replace("\b\n", "") for line in example), example
    assert "(default:  " not in text and "<bool>" not in text
    for option in command.params:
        words = getattr(option, "help", None) or ""
        assert " ".join(words.split()) in " ".join(text.split()), words


def test_square_brackets_in_help_survive() -> None:
    text = CliRunner().invoke(app, ["send-test", "--help"], terminal_width=80).output
    assert "(default: [provider] name)" in text


def test_global_options_may_follow_the_command() -> None:
    assert hoist_global_options(["build", "welcome", "-w", "ws", "--debug"]) == [
        "-w", "ws", "--debug", "build", "welcome",
    ]  # fmt: skip
    assert hoist_global_options(["add", "x", "--workspace=ws", "--", "-w"]) == [
        "--workspace=ws", "add", "x", "--", "-w",
    ]  # fmt: skip


def test_workspace_after_the_command_works(workspace: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "build", "welcome", "--workspace", str(workspace)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (workspace / "build" / "2026-11-26-welcome" / "email.html").is_file()


def test_apps_are_plain_text() -> None:
    assert isinstance(app, typer.Typer) and app.rich_markup_mode is None
