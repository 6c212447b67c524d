"""Putting what `add` gathered into the issue folder: all of it, or none of it.

Each article gets a free file name; each image it shows a place in the folder: the path it
was given (images/chart.png stays images/chart.png), or its bare name when that path
leads out of the folder. An image already there with the same bytes is shared, not
copied; one with the same name but other bytes gets a new name (chart-2.png), and the
article's references are changed to it. Everything is written into a hidden folder
inside the issue first, then moved in by renames (no new file replaces one already
there), each article read back from its place; any failure takes it all out again.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from newsletter.compose.gather import Incoming
from newsletter.compose.images import LocalImage, relative_path
from newsletter.errors import ContentError
from newsletter.files import os_problem, write_atomic


@dataclass
class Placed:
    """What moved into the issue folder: the article files, and each image with its source."""

    articles: list[Path] = field(default_factory=list)
    images: list[tuple[Path, Path]] = field(default_factory=list)


def place(
    folder: Path,
    incoming: Sequence[Incoming],
    then: Callable[[list[Path]], None],
    check: Callable[[Path], None],
) -> Placed:
    """Write every article and image in, `check` each article in place, then run `then`.

    `then` gets the new article files (it writes issue.toml); if it or anything before it
    fails, what was moved in is taken out again and the error goes on.
    """
    files, placed = _plan(folder, incoming)
    aside = _new_hidden_folder(folder)
    moved: list[Path] = []
    made: list[Path] = []
    try:
        for relative, data in files:
            staged = aside / relative
            staged.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, Path):
                shutil.copyfile(data, staged)
            else:
                write_atomic(staged, data)
        for relative, _ in files:
            _move_in(aside / relative, folder / relative, moved, made)
        for article in placed.articles:
            check(article)
        then(placed.articles)
    except BaseException as exc:
        for path in reversed(moved):
            path.unlink(missing_ok=True)
        for made_folder in reversed(made):
            _remove_if_empty(made_folder)
        if isinstance(exc, OSError):
            raise ContentError(f"cannot add to the issue: {os_problem(folder, exc)}") from exc
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    return placed


def _plan(
    folder: Path, incoming: Sequence[Incoming]
) -> tuple[list[tuple[PurePosixPath, str | bytes | Path]], Placed]:
    taken = {p.name for p in folder.iterdir()}
    files: list[tuple[PurePosixPath, str | bytes | Path]] = []
    placed = Placed()
    images: dict[str, LocalImage] = {}  # place in the folder -> the image going there
    for item in incoming:
        renamed: dict[str, str] = {}
        for image in item.images:
            where, copy = _image_place(folder, image, images)
            if copy:
                files.append((where, image.path))
                placed.images.append((folder / where, image.path))
            if str(where) != str(relative_path(image.ref)):
                renamed[image.ref] = str(where)
        stem = item.stem
        name, n = f"{stem}.md", 2
        while name in taken:
            name, n = f"{stem}-{n}.md", n + 1
        taken.add(name)
        files.append((PurePosixPath(name), _with_references(item.text, renamed)))
        placed.articles.append(folder / name)
    return files, placed


def _image_place(
    folder: Path, image: LocalImage, planned: dict[str, LocalImage]
) -> tuple[PurePosixPath, bool]:
    """Where in the folder the image goes, and whether it must be copied there."""
    given = relative_path(image.ref)
    if given.is_absolute() or ".." in given.parts or not _stays_inside(folder, given):
        given = PurePosixPath(given.name)
    candidates = [given] + [
        given.with_name(f"{_safe(given.stem)}-{n}{given.suffix.lower()}") for n in range(2, 100)
    ]
    for candidate in candidates:
        key = str(candidate)
        if key in planned:
            if planned[key].digest == image.digest:
                return candidate, False
            continue
        target = folder / candidate
        if os.path.lexists(target):
            if target.is_file() and _digest(target) == image.digest:
                planned[key] = image
                return candidate, False
            continue
        planned[key] = image
        return candidate, True
    raise ContentError(f"{folder}: no free name for image {given.name!r}")


def _stays_inside(folder: Path, relative: PurePosixPath) -> bool:
    """Whether the image's folders, where they exist, are inside the issue (no link out)."""
    parent = folder / relative.parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), folder)
    try:
        return existing.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return False


def _safe(stem: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-") or "image"


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _with_references(text: str | bytes, renamed: dict[str, str]) -> str | bytes:
    """The article's text with each renamed image's references changed to its new place."""
    if not renamed:
        return text
    result = text.decode("utf-8") if isinstance(text, bytes) else text
    for old, new in renamed.items():
        for written in dict.fromkeys((old, unquote(old))):
            pattern = rf"(?<![\w.%/-]){re.escape(written)}(?![\w.%/-])"
            result = re.sub(pattern, new.replace("\\", "\\\\"), result)
    return result


def _move_in(staged: Path, final: Path, moved: list[Path], made: list[Path]) -> None:
    """Rename `staged` to `final`, never over a file already there."""
    missing = [p for p in (final.parent, *final.parent.parents) if not p.exists()]
    for parent in reversed(missing):
        parent.mkdir()
        made.append(parent)
    try:
        os.link(staged, final)  # fails if `final` exists: nothing is overwritten
        os.unlink(staged)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links
        if os.path.lexists(final):
            raise
        os.rename(staged, final)
    moved.append(final)


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _new_hidden_folder(folder: Path) -> Path:
    """A new hidden folder inside the issue; its name marks it as unfinished work."""
    for _ in range(100):
        aside = folder / f".add.{secrets.token_hex(4)}.new"
        try:
            aside.mkdir()
            return aside
        except FileExistsError:
            continue
    raise ContentError(f"{folder}: no free name for a folder to import into")
