"""Where a build is written: hostile --out paths get one clear line and leave nothing behind.

Issue 9: a --out name past 255 bytes escaped as an OSError traceback, and a --out that is
a symbolic link to a folder was renamed to .out.*.old and left behind, with a real folder
in its place.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from newsletter.compose.build import build_issue
from newsletter.config import Settings
from newsletter.errors import ContentError

OUTPUTS = ["email.eml", "email.html", "email.txt", "rendered.json"]


def test_out_too_long_for_a_file_name_is_one_line(
    settings: Settings, issue_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ContentError) as info:
        build_issue(settings, issue_dir, tmp_path / ("a" * 300))
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "File name too long" in message
    assert message.startswith("cannot write the build: ") and len(message) < 300
    assert list(tmp_path.iterdir()) == [tmp_path / "ws"]


@pytest.mark.parametrize("kept", [[], ["notes.txt"]])
def test_out_a_link_to_a_folder_writes_into_it_and_keeps_the_link(
    settings: Settings, issue_dir: Path, tmp_path: Path, kept: list[str]
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    for name in kept:
        (shared / name).write_text("mine")
    link = tmp_path / "out"
    link.symlink_to(shared)
    for _ in range(2):  # a first build, then one over it
        result = build_issue(settings, issue_dir, link)
        assert os.readlink(link) == str(shared)
        photos = [p.name for p, _ in result.files if p.name.endswith(".jpg")]  # the example's
        assert len(photos) == 1
        assert sorted(p.name for p in shared.iterdir()) == sorted(OUTPUTS + photos + kept)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "shared", "ws"]
        assert {path.parent for path, _ in result.files} == {link}
    assert all((link / name).is_file() for name in OUTPUTS)


@pytest.mark.parametrize("target", ["missing", "file.txt"])
def test_out_a_link_to_no_folder_is_refused_and_kept(
    settings: Settings, issue_dir: Path, tmp_path: Path, target: str
) -> None:
    (tmp_path / "file.txt").write_text("mine")
    link = tmp_path / "out"
    link.symlink_to(tmp_path / target)
    with pytest.raises(ContentError) as info:
        build_issue(settings, issue_dir, link)
    assert len(str(info.value).splitlines()) == 1 and str(link) in str(info.value)
    assert os.readlink(link) == str(tmp_path / target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "out", "ws"]
    assert (tmp_path / "file.txt").read_text() == "mine"
