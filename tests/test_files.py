"""files.py: atomic writes keep the modes a plain open() would give, or private ones."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.files import atomic_text, os_problem, shown, write_atomic


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_content_files_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    write_atomic(tmp_path / "a.toml", "x = 1\n")
    with atomic_text(tmp_path / "b.csv") as handle:
        handle.write("a,b\n")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert mode(tmp_path / "a.toml") == mode(tmp_path / "b.csv") == mode(plain) == 0o644


def test_private_files_are_0600(tmp_path: Path, umask_022: None) -> None:
    write_atomic(tmp_path / "outbox.eml", b"x", private=True)
    with atomic_text(tmp_path / "export.csv", private=True) as handle:
        handle.write("a\n")
    assert mode(tmp_path / "outbox.eml") == mode(tmp_path / "export.csv") == 0o600


def test_replacing_keeps_the_mode_the_file_had(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "issue.toml"
    target.write_text("old")
    target.chmod(0o664)
    write_atomic(target, "new")
    assert target.read_text() == "new" and mode(target) == 0o664
    write_atomic(target, "secret", private=True)  # private always narrows
    assert mode(target) == 0o600


def test_failure_leaves_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_text(target) as handle:
        handle.write("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_workspace_content_and_builds_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    from newsletter.compose.build import build_issue
    from newsletter.compose.issue import add_articles, new_issue
    from newsletter.config import load_settings
    from newsletter.workspace import init_workspace

    root = tmp_path / "ws"
    init_workspace(root, "Modes")
    settings = load_settings(root, environ={})
    folder = new_issue(settings, "modes")
    source = tmp_path / "a.txt"
    source.write_text("Title\n\nText.\n")
    (article,) = add_articles(folder, [source], settings)
    result = build_issue(settings, folder)
    written = [root / "newsletter.toml", root / ".gitignore", folder / "issue.toml", article]
    written += [path for path, _ in result.files]
    assert {path.name: mode(path) for path in written} == {p.name: 0o644 for p in written}
    assert mode(result.out_dir) == 0o755


# --- echoing what the user gave: one line, not too long (issue 9) ---------------------------


def test_shown_keeps_a_plain_value_as_it_is() -> None:
    assert shown("ana@example.org") == "ana@example.org"
    assert shown("Zoë Ångström, 日本") == "Zoë Ångström, 日本"


@pytest.mark.parametrize(
    "breaker", ["\n", "\r", "\v", "\f", "\x1c", "\x85", "\u2028", "\u2029", "\x1b", "\u202e"]
)
def test_shown_escapes_line_breaks_and_invisible_characters(breaker: str) -> None:
    """A raw line break in an echoed value made one problem two lines of the report."""
    text = shown(f"ana@example.org{breaker}Bcc: victim@example.org")
    assert len(text.splitlines()) == 1 and breaker not in text
    assert text == repr(f"ana@example.org{breaker}Bcc: victim@example.org")


def test_shown_cuts_a_long_value_keeping_both_ends() -> None:
    """A 100,000-character address was echoed whole: one line of 100,153 characters."""
    text = shown("x" * 100_000 + "@example.org")
    assert len(text) == 80 and "..." in text
    assert text.startswith("xxx") and text.endswith("@example.org")
    assert len(shown("a\n" * 1000)) < 200  # cut first, then escaped and quoted


def test_os_problem_names_a_long_path_shortened() -> None:
    name = "/tmp/ws/" + "a" * 300
    line = os_problem(Path("x"), OSError(errno.ENAMETOOLONG, "File name too long", name))
    assert line.startswith("/tmp/ws/aaa") and line.endswith("aaa: File name too long")
    assert len(line) < 200
