"""Issues: a folder under issues/ holding issue.toml and the articles, in order.

issues/2026-11-26-first-issue/
  issue.toml        subject, preheader, date, intro (Markdown), articles, template
  *.md *.txt *.html the articles; if issue.toml lists none, all of them in name order
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import tomlkit

from newsletter.compose.articles import ARTICLE_SUFFIXES, Article, read_article
from newsletter.compose.dates import parse_date
from newsletter.compose.gather import gather
from newsletter.compose.placing import place
from newsletter.config import Settings
from newsletter.config_checks import CONTROL_CHARACTERS, line_problem
from newsletter.errors import ContentError
from newsletter.files import (
    PATH_LIMIT,
    os_problem,
    os_reason,
    quoted,
    read_toml,
    shown,
    write_atomic,
)

ISSUE_FILE = "issue.toml"
ISSUE_KEYS = ("subject", "preheader", "date", "intro", "articles", "template", "archive")
_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# The folder is <date>-<slug>; file names stop at 255 bytes, and people read these.
MAX_SLUG = 80
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Issue:
    """An issue ready to render: its settings from issue.toml and its articles in order."""

    folder: Path
    subject: str
    date: dt.date
    articles: tuple[Article, ...]
    preheader: str = ""
    intro: str = ""
    template: str = "email"
    archive: bool = True  # `archive = false` keeps the issue out of the web archive

    @property
    def key(self) -> str:
        """The folder's name, e.g. 2026-11-26-first-issue: unique, and used under build/."""
        return self.folder.name

    @property
    def sources(self) -> tuple[Path, ...]:
        return (self.folder / ISSUE_FILE, *(a.source for a in self.articles))

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(w for a in self.articles for w in a.warnings)


def resolve_issue(settings: Settings, ref: str | Path) -> Path:
    """Find an issue folder from a path or a slug ("first-issue" or "2026-11-26-first-issue")."""
    given = Path(ref).expanduser()
    trouble: OSError | RuntimeError | None = None
    for candidate in (given, settings.root / given):
        try:
            if (candidate / ISSUE_FILE).is_file():
                return candidate.resolve()
        except (OSError, RuntimeError) as exc:  # a name past 255 bytes, a loop of links
            trouble = trouble or exc
    text = str(ref).strip("/")
    if "/" not in text and settings.issues_dir.is_dir():
        matches = sorted(
            p
            for p in settings.issues_dir.iterdir()
            if (p / ISSUE_FILE).is_file()
            and (
                p.name == text
                or re.fullmatch(rf"\d{{4}}-\d{{2}}-\d{{2}}-{re.escape(text)}", p.name)
            )
        )
        if len(matches) == 1:
            return matches[0].resolve()
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches)
            raise ContentError(f"issue '{ref}' is ambiguous: {names}; give the folder name")
    if trouble is not None:
        raise ContentError(f"issue {quoted(ref)} not found ({os_reason(trouble)})") from trouble
    if given.is_dir():
        raise ContentError(f"{shown(given)}: no {ISSUE_FILE} in this folder")
    raise ContentError(
        f"issue {quoted(ref)} not found: no folder {shown(given)} "
        f"and no issues/*-{shown(text)} with {ISSUE_FILE}"
    )


def load_issue(folder: Path, settings: Settings) -> Issue:
    """Read issue.toml and every article it names; report all problems together."""
    path = folder / ISSUE_FILE
    data = read_toml(path, ContentError)
    problems: list[str] = []
    for key in data:
        if key not in ISSUE_KEYS:
            problems.append(f"{path}: unknown key '{key}' (known: {', '.join(ISSUE_KEYS)})")

    subject = data.get("subject")
    if not isinstance(subject, str) or not subject.strip():
        problems.append(f"{path}: key 'subject' is required and must be text")
        subject = ""
    elif problem := line_problem(subject.strip()):
        problems.append(
            f"{path}: key 'subject' must be one line ({problem}: it would break the headers)"
        )
    preheader = _optional_text(data, "preheader", path, problems)
    intro = _optional_text(data, "intro", path, problems, multiline=True)
    template = data.get("template", "email")
    if not isinstance(template, str) or not _TEMPLATE_NAME.match(template):
        problems.append(f"{path}: key 'template' must be a template name such as \"email\"")
        template = "email"
    date = _issue_date(data, folder, path, problems)
    archive = data.get("archive", True)
    if not isinstance(archive, bool):
        problems.append(f"{path}: key 'archive' must be true or false")

    articles: list[Article] = []
    for source in _article_paths(folder, data, path, problems):
        try:
            articles.append(read_article(source, settings.drop_lines))
        except ContentError as exc:
            problems.append(str(exc))
    if not articles and not problems:
        problems.append(f"{path}: the issue has no articles (add some with `newsletter add`)")
    if problems:
        raise ContentError("\n".join(problems))
    return Issue(
        folder=folder,
        subject=subject.strip(),
        preheader=preheader,
        intro=intro,
        date=date,
        articles=tuple(articles),
        template=template,
        archive=archive,
    )


def _optional_text(
    data: dict[str, Any], key: str, path: Path, problems: list[str], multiline: bool = False
) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        problems.append(f"{path}: key '{key}' must be text")
        return ""
    if multiline:
        found = CONTROL_CHARACTERS.search(value.replace("\r", ""))
        problem = f"U+{ord(found.group()):04X} is a control character" if found else None
    else:
        problem = line_problem(value.strip())
    if problem:
        shape = "text" if multiline else "one line"
        problems.append(f"{path}: key '{key}' must be {shape} ({problem})")
        return ""
    return value.strip()


def _issue_date(data: dict[str, Any], folder: Path, path: Path, problems: list[str]) -> dt.date:
    if "date" in data:
        try:
            return parse_date(data["date"])
        except ValueError as exc:
            problems.append(f"{path}: key 'date': {exc}")
    match = re.match(r"^(\d{4}-\d{2}-\d{2})-", folder.name)
    if match:
        try:
            return dt.date.fromisoformat(match.group(1))
        except ValueError:
            pass
    return dt.date.today()


def _article_paths(
    folder: Path, data: dict[str, Any], path: Path, problems: list[str]
) -> list[Path]:
    listed = data.get("articles", [])
    if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
        problems.append(f"{path}: key 'articles' must be a list of file names")
        return []
    if not listed:
        found = article_files(folder)
        outside = [p for p in found if not _inside(p, folder)]
        for source in outside:  # a symbolic link to a file elsewhere
            problems.append(
                f"{path}: article {quoted(source.name, PATH_LIMIT)} must be inside the issue folder"
            )
        return [p for p in found if p not in outside]
    paths = []
    for name in listed:
        given = f"{path}: article {quoted(name, PATH_LIMIT)}"
        try:
            source = (folder / name).resolve()
            if not _inside(source, folder):
                problems.append(f"{given} must be inside the issue folder")
            elif not source.is_file():
                problems.append(f"{given} not found in {folder}")
            else:
                paths.append(source)
        except (OSError, RuntimeError) as exc:  # a link to itself, a name too long
            problems.append(f"{given} cannot be read: {os_reason(exc)}")
    return paths


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path`, its links followed, is in `folder`: the workspace is what is sent."""
    return path.resolve().is_relative_to(folder.resolve())


def article_files(folder: Path) -> list[Path]:
    """The article files in a folder, in file-name order."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in ARTICLE_SUFFIXES and not p.name.startswith(".")
    )


def new_issue(
    settings: Settings, slug: str, subject: str | None = None, date: dt.date | None = None
) -> Path:
    """Create issues/<date>-<slug>/issue.toml and return the folder."""
    if len(slug) > MAX_SLUG:
        raise ContentError(
            f"slug {quoted(slug, 20)} is {len(slug)} characters long: "
            f"use at most {MAX_SLUG} characters"
        )
    if not _SLUG.match(slug):
        raise ContentError(
            f"slug {quoted(slug)} must be lowercase letters, digits and hyphens, e.g. spring-update"
        )
    day = date or dt.date.today()
    folder = settings.issues_dir / f"{day.isoformat()}-{slug}"
    if folder.exists():
        raise ContentError(f"{folder}: already exists")
    subject = subject or slug.replace("-", " ").capitalize()
    problem = line_problem(subject.strip())
    if problem:
        raise ContentError(f"--subject must be one line of text ({problem})")
    doc = tomlkit.document()
    doc.add("subject", subject)
    doc.add("preheader", "")
    doc.add("date", day)
    doc.add("intro", tomlkit.string("", multiline=True))
    doc.add(tomlkit.comment("Article files in this folder, in order; empty means all by name."))
    doc.add("articles", tomlkit.array())
    doc.add("template", "email")
    try:
        folder.mkdir(parents=True)
        write_atomic(folder / ISSUE_FILE, tomlkit.dumps(doc))
    except OSError as exc:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise ContentError(f"cannot create the issue: {os_problem(folder, exc)}") from exc
    return folder


def add_articles(
    folder: Path,
    sources: Sequence[str | Path],
    settings: Settings,
    warnings: list[str] | None = None,
    *,
    since: dt.date | None = None,
    client: httpx.Client | None = None,
    copied: list[tuple[Path, Path]] | None = None,
) -> list[Path]:
    """Import articles into the issue as Markdown and append them to its order.

    A source is a file (.md, .txt, .html; a .xml, .rss or .atom feed), or a page or feed
    URL (compose.gather); a feed gives its items dated `since` or later. Every source is
    read and checked before anything is written, and everything is written or nothing
    (compose.placing), so a bad one leaves the issue as it was. The images the articles
    show are copied in; `copied` gets each (in the issue, from). What the readers
    cleaned or left out is added to `warnings`.
    """
    path = folder / ISSUE_FILE
    read_toml(path, ContentError)  # the same checks and messages as a build
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    listed = doc.get("articles")
    if listed is not None and not isinstance(listed, list):
        raise ContentError(f"{path}: key 'articles' must be a list of file names")
    order = [str(x) for x in listed] if listed else [p.name for p in article_files(folder)]

    incoming = gather(sources, settings.drop_lines, since, client, warnings)

    def listed_in_order(written: list[Path]) -> None:
        array = tomlkit.array()
        array.multiline(True)
        array.extend([*order, *(target.name for target in written)])
        doc["articles"] = array
        write_atomic(path, tomlkit.dumps(doc))

    def reads_back(article: Path) -> None:
        read_article(article, settings.drop_lines)

    placed = place(folder, incoming, then=listed_in_order, check=reads_back)
    if copied is not None:
        copied.extend(placed.images)
    return placed.articles
