"""The static web archive of sent issues: an index, a page per issue, and an Atom feed.

    <out>/index.html            every archived issue, newest first
    <out>/feed.xml              Atom feed of the newest issues
    <out>/<issue>/index.html    the issue as its email, with nothing of any reader in it
    <out>/<issue>/<image>       the images its build published (all but email.* and
                                rendered.json), so each image URL in the email resolves

An issue is archived once its send has started (a row in `sends`), unless the caller
includes unsent ones, and unless its issue.toml says `archive = false`. Pages come from
the issue's build (rebuilt first if its sources changed, as `send` does).

Every issue is checked before anything is written; one that fails to build, or whose
email points at a file of its archive folder that its build did not make, stops the run
with one line each, and the previous archive stays as it was. Then only what changed is
written, each issue's folder swapped in whole (archive_folder). An issue whose inputs are
unchanged since the last run is neither rebuilt nor rewritten.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from sqlalchemy import select

from newsletter import __version__
from newsletter.compose.build import RENDERED_FILE, content_hash, load_built
from newsletter.compose.issue import ISSUE_FILE
from newsletter.compose.sources import OUTPUT_SETTINGS
from newsletter.config import Settings
from newsletter.errors import ContentError, NewsletterError
from newsletter.files import PATH_LIMIT, shown
from newsletter.storage import open_engine, sends, transaction
from newsletter.web.archive_feed import FEED_FILE, atom_feed
from newsletter.web.archive_folder import (
    Content,
    Recorded,
    Writer,
    checked_target,
    fingerprint,
    read_state,
    state_bytes,
    tree_digest,
    unwritable,
)
from newsletter.web.archive_pages import (
    Entry,
    archive_base,
    archive_environment,
    index_page,
    issue_page,
    public_email,
)
from newsletter.workspace import default_templates_dir

INDEX_FILE = "index.html"
# What a build folder holds that is not for the web: the email itself and the manifest.
_BUILD_ONLY = ("email.html", "email.txt", "email.eml", RENDERED_FILE)


def default_archive_dir(settings: Settings) -> Path:
    """Where `archive` writes and `serve` serves from unless told otherwise."""
    return settings.build_dir / "archive"


@dataclass
class ArchiveResult:
    """What a run did, for the command to report."""

    out: Path
    archived: list[str] = field(default_factory=list)  # newest first
    written: list[str] = field(default_factory=list)  # issues whose pages were written anew
    removed: list[str] = field(default_factory=list)  # no longer archived
    not_sent: list[str] = field(default_factory=list)
    opted_out: list[str] = field(default_factory=list)  # `archive = false`
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Planned:
    """One issue as this run will leave it: its record, and its files if they are remade."""

    key: str
    record: Recorded
    files: dict[str, Content] | None  # None: unchanged since the last run, left alone
    content: str = ""  # compose.build.content_hash of what the page shows, when made anew


def write_archive(
    settings: Settings, out: Path | None = None, include_unsent: bool = False
) -> ArchiveResult:
    """Write (or bring up to date) the archive in `out`, by default build/archive.

    Every issue is worked out before anything is written: one that fails leaves the
    archive as it was.
    """
    given = out or default_archive_dir(settings)
    target = checked_target(given)
    result = ArchiveResult(out=given)
    sent = None if include_unsent else sent_issues(settings)
    previous = read_state(target)
    env = archive_environment(settings)
    shared = shared_digest(settings)
    planned: list[Planned] = []
    problems: list[str] = []
    for folder in issue_folders(settings):
        if sent is not None and folder.name not in sent:
            result.not_sent.append(folder.name)
            continue
        try:
            item = _plan(settings, env, shared, target, folder, previous.get(folder.name))
            planned.append(item)
            if sent and item.content and item.content != sent[folder.name]:
                result.warnings.append(
                    f"{folder.name}: the page shows the issue as it is now, which differs "
                    "from what was sent"
                )
        except NewsletterError as exc:
            problems.extend(str(exc).splitlines())
    if problems:
        last = f"nothing written: {shown(given, PATH_LIMIT)} is as it was"
        raise ContentError("\n".join([*problems, last]))

    archived = [p for p in planned if p.record.archived]
    result.opted_out = [p.key for p in planned if not p.record.archived]
    entries = sorted(
        (Entry.from_json(p.key, p.record.entry) for p in archived),
        key=lambda e: (e.date, e.key),
        reverse=True,
    )
    result.archived = [e.key for e in entries]
    kept = set(result.archived)
    result.removed = sorted(k for k, r in previous.items() if r.archived and k not in kept)
    top = {  # made before anything is written: a template mistake changes nothing
        INDEX_FILE: index_page(env, settings, entries),
        FEED_FILE: atom_feed(settings, entries),
    }
    _write(target, archived, top, result, state_bytes({p.key: p.record for p in planned}))
    return result


def _write(
    target: Path,
    archived: list[Planned],
    top: dict[str, bytes],
    result: ArchiveResult,
    state: bytes,
) -> None:
    """Issue folders first, then the index and feed that link to them, the state last."""
    try:
        writer = Writer(target)
    except OSError as exc:
        raise unwritable(target, exc) from exc
    try:
        for item in archived:
            if item.files is not None and writer.issue(item.key, item.files):
                result.written.append(item.key)
        for name, data in top.items():
            writer.file(name, data)
        for key in result.removed:
            writer.remove(key)
        writer.finish(state)
    except OSError as exc:
        writer.abandon()
        raise unwritable(target, exc) from exc
    except BaseException:
        writer.abandon()
        raise
    result.written.sort()


def _plan(
    settings: Settings,
    env: jinja2.Environment,
    shared: str,
    target: Path,
    folder: Path,
    before: Recorded | None,
) -> Planned:
    """One issue: left alone if its inputs are unchanged, made anew (in memory) if not."""
    key = folder.name
    build = settings.build_dir / key
    inputs = ((folder, ()), (build, ("email.html", "email.txt", "email.eml")))
    if before is not None and before.fingerprint == fingerprint(shared, *inputs):
        if not before.archived or (target / key / INDEX_FILE).is_file():
            return Planned(key, before, None)
    issue, rendered = load_built(settings, folder)
    now = fingerprint(shared, *inputs)  # the build may have been remade
    if not issue.archive:
        return Planned(key, Recorded(fingerprint=now, archived=False), None)
    entry = Entry(key=key, subject=rendered.subject, preheader=rendered.preheader, date=issue.date)
    email = public_email(settings, rendered, key)
    files: dict[str, Content] = {INDEX_FILE: issue_page(env, settings, entry, email)}
    files.update(_published_files(build))
    _check_links(settings, key, email.archive_links, files, folder)
    record = Recorded(fingerprint=now, archived=True, entry=entry.to_json())
    return Planned(key, record, files, content_hash(rendered))


def _published_files(build: Path) -> dict[str, Content]:
    """The files a build made for the web (images), by their name in the issue's folder."""
    found: dict[str, Content] = {}
    for path in sorted(build.rglob("*")):
        relative = path.relative_to(build)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if len(relative.parts) == 1 and relative.name in _BUILD_ONLY:
            continue
        found[relative.as_posix()] = path
    return found


def _check_links(
    settings: Settings, key: str, links: tuple[str, ...], files: dict[str, Content], folder: Path
) -> None:
    """Every URL of the email inside this issue's archive folder names a file it holds."""
    base = f"{archive_base(settings)}{key}/"
    missing = []
    for url in links:
        if not url.startswith(base):
            continue  # another issue's page, or the index: theirs to provide
        path = url[len(base) :].split("#", 1)[0].split("?", 1)[0]
        if (path + INDEX_FILE if path.endswith("/") or not path else path) not in files:
            missing.append(url)
    if missing:
        raise ContentError(
            f"{folder / ISSUE_FILE}: the email links to {', '.join(missing)}, which its build "
            "did not make; build the issue again (`newsletter build`)"
        )


def issue_folders(settings: Settings) -> list[Path]:
    """Every issue folder under issues/, by name."""
    try:
        return sorted(
            p
            for p in settings.issues_dir.iterdir()
            if not p.name.startswith(".") and (p / ISSUE_FILE).is_file()
        )
    except FileNotFoundError:
        return []


def sent_issues(settings: Settings) -> dict[str, str]:
    """The issues whose send has started (a row in the ledger's `sends`), each with the
    hash of the content it is sending."""
    engine = open_engine(settings)
    try:
        with transaction(engine) as conn:
            rows = conn.execute(select(sends.c.issue, sends.c.content_hash))
            return {str(issue): str(digest) for issue, digest in rows}
    finally:
        engine.dispose()


def shared_digest(settings: Settings) -> str:
    """What every page depends on: the version, the settings that shape it, the templates."""
    digest = hashlib.sha256(f"{__version__}\0".encode())
    for name in OUTPUT_SETTINGS:
        digest.update(f"{name}={getattr(settings, name)!s}\0".encode())
    for templates in (settings.templates_dir, default_templates_dir()):
        tree_digest(digest, templates)
    return digest.hexdigest()
