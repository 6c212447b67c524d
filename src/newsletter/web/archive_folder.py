"""The archive's folder on disk: what it holds, and replacing it whole.

A run writes a new folder beside the archive and swaps it in with two renames, so an
error half-way (an issue that fails to build, a full disk) leaves the previous archive as
it was, and a web server never serves a mix of two runs. What did not change is
hard-linked from the previous folder instead of written again: the swap costs a link per
file, and an unchanged file keeps its inode and modification time, which rsync and
object-store syncs rely on to skip it.

STATE_FILE in the archive records, per issue, a fingerprint of what its pages were made
from (the issue folder's files, its build, the templates, the settings, the version) and
what the index and feed say of it. It holds no clock time, so two runs on the same input
give the same bytes; an issue whose fingerprint is unchanged costs a few file reads.
Files in the folder that no run wrote (a CNAME for GitHub Pages, robots.txt) are kept.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsletter.errors import ContentError
from newsletter.files import PATH_LIMIT, os_problem, shown

STATE_FILE = ".newsletter-archive.json"
STATE_VERSION = 1


@dataclass(frozen=True)
class Recorded:
    """What the state file says of one issue: its fingerprint and its index entry."""

    fingerprint: str
    archived: bool  # False: `archive = false` in its issue.toml
    entry: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "archived": self.archived, "entry": self.entry}


def read_state(folder: Path) -> dict[str, Recorded]:
    """The issues a previous run recorded; nothing (all rebuilt) if the file is unreadable."""
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
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def state_bytes(issues: dict[str, Recorded]) -> bytes:
    record = {
        "version": STATE_VERSION,
        "issues": {key: issues[key].to_json() for key in sorted(issues)},
    }
    return (json.dumps(record, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode()


# --- fingerprints -------------------------------------------------------------------------


def tree_digest(digest: Any, root: Path, skip: Iterable[str] = ()) -> None:
    """Feed every file under `root` (name and bytes, in name order) into `digest`.

    Hidden files are left out: they are editors' and tools' leftovers, never published.
    """
    skipped = set(skip)
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        digest.update(b"\0missing\0")
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.name in skipped:
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
    """The folder to replace: `out`, or the folder it links to. Refuses what is no archive."""
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


class Stage:
    """A new archive folder beside the old one, filled by a run and swapped in at the end."""

    def __init__(self, target: Path, folder: Path) -> None:
        self.target = target
        self.folder = folder
        self.rewritten: set[str] = set()  # top-level names whose files were written anew

    def put(self, relative: str, data: bytes) -> bool:
        """Write one file, or link the previous archive's copy when it holds these bytes."""
        path = self.folder / relative
        previous = self.target / relative
        try:
            same = previous.is_file() and previous.stat().st_size == len(data)
            same = same and previous.read_bytes() == data
        except OSError:
            same = False
        path.parent.mkdir(parents=True, exist_ok=True)
        if same and _link(previous, path):
            return False
        _write_synced(path, data)
        self.rewritten.add(relative.split("/", 1)[0])
        return True

    def keep(self, name: str) -> None:
        """Carry a file or folder of the previous archive over as it is."""
        source = self.target / name
        destination = self.folder / name
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, destination, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(source), str(destination))

    def previous_names(self) -> list[str]:
        try:
            return sorted(p.name for p in self.target.iterdir())
        except FileNotFoundError:
            return []


@contextmanager
def staged(target: Path) -> Iterator[Stage]:
    """A Stage for `target`; swapped in if the block ends well, removed if not."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        folder = _new_folder_beside(target)
    except OSError as exc:
        raise _unwritable(target, exc) from exc
    try:
        yield Stage(target, folder)
        _swap(folder, target)
    except OSError as exc:  # a full disk while filling the new folder, a failed rename
        raise _unwritable(target, exc) from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # gone already when it was swapped in


def _unwritable(target: Path, exc: OSError) -> ContentError:
    return ContentError(
        f"cannot write the archive: {os_problem(target, exc)} (the previous archive is unchanged)"
    )


def _swap(new: Path, target: Path) -> None:
    """Move the old archive aside, the new one into its place, then drop the old one."""
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


def _new_folder_beside(target: Path) -> Path:
    for _ in range(100):
        folder = target.with_name(f".{target.name}.{secrets.token_hex(4)}.new")
        try:
            os.mkdir(folder)
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"{target.parent}: no free name for a new archive folder")


def _write_synced(path: Path, data: bytes) -> None:
    """A new file in the new folder: no temporary name needed, the folder is swapped whole.

    Synced before the swap, so a crash after it never leaves an empty page behind.
    """
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _link(source: Path, destination: Path) -> bool:
    try:
        os.link(source, destination)
        return True
    except OSError:
        return False


def _link_or_copy(source: str, destination: str) -> str:
    """A hard link where the file system has them; otherwise a copy with its times."""
    if not _link(Path(source), Path(destination)):
        shutil.copy2(source, destination, follow_symlinks=False)
    return destination
