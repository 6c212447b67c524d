"""The archive's folder on disk: what a run recorded in it, and writing into it safely.

A run first works out everything (every page, every file to publish) and writes only if
every issue checked out, so an issue that fails to build or lacks an image leaves the
previous archive exactly as it was. Then each changed issue's folder is written beside
the old one and swapped in with two renames, so a reader (or a web server) sees either
the old folder or the new, never a mix; the index and the feed are replaced atomically
after the folders they link to are in place. An issue whose files are unchanged is not
touched at all: no rewrite, no new inode, no new modification time, which rsync and
object-store syncs rely on to skip it. A first run writes the whole folder beside and
renames it into place.

Why not a whole new folder every run, hard-linked to the old one: creating and removing
a folder per issue costs more than everything else an incremental run does (a folder's
removal took 2.6 ms on the development machine's disk, 1.3 s for 500 issues).

STATE_FILE in the archive records, per issue, a fingerprint of what its pages were made
from (the issue folder's files, its build, the templates, the settings, the version) and
what the index and feed say of it. It holds no clock time, so two runs on the same input
give the same bytes; an issue whose fingerprint is unchanged costs a few file reads. It
is written last, after the rest is on disk: it never vouches for a page that is not.
Files in the folder that no run wrote (a CNAME for GitHub Pages, robots.txt) are kept.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsletter.errors import ContentError
from newsletter.files import PATH_LIMIT, new_folder_beside, os_problem, shown, write_atomic

STATE_FILE = ".newsletter-archive.json"
STATE_VERSION = 1

# What a file of the archive is made from: its bytes, or a file to copy (an image).
Content = bytes | Path


@dataclass(frozen=True)
class Recorded:
    """What the state file says of one issue: its fingerprint and its index entry."""

    fingerprint: str
    archived: bool  # False: `archive = false` in its issue.toml
    entry: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "archived": self.archived, "entry": self.entry}


def read_state(folder: Path) -> dict[str, Recorded]:
    """The issues a previous run recorded; nothing (all made anew) if the file is unreadable."""
    try:
        data = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        if data.get("version") != STATE_VERSION:
            return {}
        return {
            key: Recorded(
                fingerprint=str(item["fingerprint"]),
                archived=bool(item["archived"]),
                entry={str(k): str(v) for k, v in item["entry"].items()},
            )
            for key, item in data["issues"].items()
            if _folder_name(key)
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _folder_name(key: str) -> bool:
    """One plain folder name, as issue folders are: the state may come from git, and a key
    such as "." or "../x" would point a removal at the archive itself or outside it."""
    return (
        isinstance(key, str)
        and bool(key)
        and not key.startswith(".")
        and "/" not in key
        and "\\" not in key
        and "\0" not in key
    )


def state_bytes(issues: dict[str, Recorded]) -> bytes:
    record = {
        "version": STATE_VERSION,
        "issues": {key: issues[key].to_json() for key in sorted(issues)},
    }
    return (json.dumps(record, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode()


# --- fingerprints -------------------------------------------------------------------------


def tree_digest(digest: Any, root: Path, skip: tuple[str, ...] = ()) -> None:
    """Feed every file under `root` (name and bytes, in name order) into `digest`.

    Hidden files are left out: they are editors' and tools' leftovers, never published.
    """
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        digest.update(b"\0missing\0")
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.name in skip:
            continue
        digest.update(entry.name.encode("utf-8", "surrogateescape") + b"\0")
        if entry.is_dir():
            tree_digest(digest, Path(entry.path))
            digest.update(b"\0end\0")
        elif entry.is_file():
            with open(entry.path, "rb") as handle:
                digest.update(hashlib.file_digest(handle, "sha256").digest())


def fingerprint(shared: str, *trees: tuple[Path, tuple[str, ...]]) -> str:
    """A hash of `shared` and of every file in each (folder, names to skip)."""
    digest = hashlib.sha256(shared.encode())
    for root, skip in trees:
        digest.update(b"\0tree\0")
        tree_digest(digest, root, skip)
    return digest.hexdigest()


# --- the folder -----------------------------------------------------------------------------


def checked_target(out: Path) -> Path:
    """The folder to write: `out`, or the folder it links to. Refuses what is no archive."""
    try:
        target = out.resolve() if out.is_symlink() else out.absolute()
        if target.exists() and not target.is_dir():
            raise ContentError(
                f"{shown(out, PATH_LIMIT)}: is a file; the archive is written to a folder"
            )
        if target.is_dir():
            if not os.access(target, os.W_OK | os.X_OK):
                raise ContentError(
                    f"{shown(out, PATH_LIMIT)}: not writable ({os.strerror(errno.EACCES)})"
                )
            if not (target / STATE_FILE).is_file() and any(target.iterdir()):
                raise ContentError(
                    f"{shown(out, PATH_LIMIT)}: holds files but no archive ({STATE_FILE} is "
                    "missing); give a new or empty folder, so nothing of yours is replaced"
                )
        return target
    except OSError as exc:  # a name past 255 bytes, a folder we may not read
        raise ContentError(f"cannot use the archive folder: {os_problem(out, exc)}") from exc


def unwritable(target: Path, exc: OSError) -> ContentError:
    return ContentError(f"cannot write the archive: {os_problem(target, exc)}")


class Writer:
    """Puts a run's issues, index and feed into the archive folder, changing only what differs.

    On a first run (no folder yet) everything goes into a folder beside it, renamed into
    place by `finish`.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.fresh = not target.exists()
        self.folder = new_folder_beside(target, "archive") if self.fresh else target

    def issue(self, key: str, files: dict[str, Content]) -> bool:
        """Make the folder `key` hold exactly `files`; False if it did already."""
        old = self.folder / key
        wanted = {name: _bytes(content) for name, content in files.items()}
        if not self.fresh and _holds(old, wanted):
            return False
        new = old if self.fresh else new_folder_beside(old, "archive")
        try:
            if self.fresh:
                new.mkdir()
            for name, data in sorted(wanted.items()):
                if self.fresh or not _same(old / name, data) or not _link(old / name, new / name):
                    _write_new(new / name, data)
            if not self.fresh:
                _swap(new, old)
        finally:
            if new != old:
                shutil.rmtree(new, ignore_errors=True)
        return True

    def file(self, name: str, data: bytes) -> bool:
        """Replace one top-level file atomically; False if it held these bytes already."""
        path = self.folder / name
        if _same(path, data):
            return False
        if self.fresh:
            _write_new(path, data)
        else:
            write_atomic(path, data, sync=False)
        return True

    def remove(self, key: str) -> None:
        """Take an issue's folder out (renamed aside first, so it goes at once)."""
        folder = self.folder / key
        if _folder_name(key) and folder.is_dir() and not folder.is_symlink():
            aside = folder.with_name(f".{key}.{secrets.token_hex(4)}.old")
            os.rename(folder, aside)
            shutil.rmtree(aside, ignore_errors=True)

    def finish(self, state: bytes) -> None:
        """Flush everything to disk, write the state file last, put a first run in place."""
        if _same(self.folder / STATE_FILE, state):
            return  # nothing changed, or only files the state does not describe
        os.sync()
        write_atomic(self.folder / STATE_FILE, state)
        if self.fresh:
            os.rename(self.folder, self.target)
            self.fresh = False
            self.folder = self.target

    def abandon(self) -> None:
        """After an error on a first run: nothing is left behind."""
        if self.fresh:
            shutil.rmtree(self.folder, ignore_errors=True)


def _bytes(content: Content) -> bytes:
    return content.read_bytes() if isinstance(content, Path) else content


def _holds(folder: Path, wanted: dict[str, bytes]) -> bool:
    """Whether `folder` holds exactly these files with these bytes (hidden files aside)."""
    try:
        present = {
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        }
    except OSError:
        return False
    return present == set(wanted) and all(_same(folder / n, d) for n, d in wanted.items())


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _write_new(path: Path, data: bytes) -> None:
    """A file in a folder nobody reads yet: no temporary name needed (`finish` syncs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as handle:
        handle.write(data)


def _link(source: Path, destination: Path) -> bool:
    """An unchanged file carried into the new folder: same inode, same time."""
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, destination)
        return True
    except OSError:
        return False


def _swap(new: Path, target: Path) -> None:
    """Move the old folder aside, the new one into its place, then drop the old one."""
    aside = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
    moved = False
    if target.exists():
        os.rename(target, aside)
        moved = True
    try:
        os.rename(new, target)
    except OSError:
        if moved:
            os.rename(aside, target)
        raise
    if moved:
        shutil.rmtree(aside, ignore_errors=True)
