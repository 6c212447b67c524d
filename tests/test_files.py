"""files.py: atomic writes keep the modes a plain open() would give, or private ones."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.files import atomic_text, write_atomic


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
