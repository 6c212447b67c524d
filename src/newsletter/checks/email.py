"""The built email as the rules see it: the files a build wrote, and where things came from.

Checks look at what goes out, so they read the build (rebuilt first when the sources
changed, as `send` does): the HTML and text addressed to the sample reader, and the
headers of the .eml. Findings in sources point at a file and line, relative to the
workspace; findings in the HTML at a CSS selector.
"""

from __future__ import annotations

import email.policy
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from functools import cached_property
from pathlib import Path
from typing import Any

from lxml import html as lxml_html

from newsletter.checks.findings import Place
from newsletter.compose.build import build_issue, load_built
from newsletter.compose.issue import ISSUE_FILE, Issue
from newsletter.compose.render import Rendered
from newsletter.config import CONFIG_FILE, KEYS, Settings
from newsletter.errors import ContentError
from newsletter.files import os_problem

BUILT_FILES = ("email.html", "email.txt", "email.eml")


@dataclass(frozen=True)
class Fetched:
    """What `check --links` learnt of one URL: an HTTP status, or why there is none."""

    url: str
    status: int | None = None
    problem: str = ""  # "timed out", "connection refused", ...
    content_type: str = ""

    @property
    def timed_out(self) -> bool:
        return self.problem == "timed out"

    @property
    def broken(self) -> bool:
        return self.status is None or self.status >= 400


@dataclass(frozen=True)
class SpamScore:
    """SpamAssassin's verdict on the .eml (`check --spam`)."""

    score: float
    required: float
    tests: str = ""


@dataclass(frozen=True)
class BuiltEmail:
    settings: Settings
    issue: Issue
    rendered: Rendered
    html: str  # email.html: the HTML part as the sample reader gets it
    text: str  # email.txt
    message: EmailMessage = field(repr=False)  # email.eml, for its headers
    fetched: Mapping[str, Fetched] | None = None  # filled by `check --links`
    spam: SpamScore | None = None  # filled by `check --spam` where SpamAssassin runs

    @property
    def build_dir(self) -> Path:
        return self.settings.build_dir / self.issue.key

    @cached_property
    def doc(self) -> Any:
        """The HTML parsed by lxml (what premailer parsed it with)."""
        return lxml_html.document_fromstring(self.html)

    def shown(self, path: Path) -> str:
        """`path` relative to the workspace, as an editor finds it."""
        try:
            return path.resolve().relative_to(self.settings.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    def html_place(self, element: Any = None) -> Place:
        file = self.shown(self.build_dir / "email.html")
        return Place(file, selector=selector(element) if element is not None else None)

    def text_place(self, line: int | None = None) -> Place:
        return Place(self.shown(self.build_dir / "email.txt"), line=line)

    def header_place(self, name: str) -> Place:
        return Place(self.shown(self.build_dir / "email.eml"), selector=f"header {name}")

    def setting_place(self, key: str) -> Place:
        """Where a newsletter.toml key was set: its line, or the variable that overrides it."""
        for known in KEYS:
            if known.path == key and known.env in os.environ:
                return Place(f"environment variable {known.env}")
        config = self.settings.root / CONFIG_FILE
        name = key.rpartition(".")[2]
        return Place(CONFIG_FILE, line=_line_of(config, rf"^\s*{re.escape(name)}\s*="))

    def issue_place(self, key: str) -> Place:
        path = self.issue.folder / ISSUE_FILE
        return Place(self.shown(path), line=_line_of(path, rf"^\s*{re.escape(key)}\s*="))

    @property
    def sources(self) -> tuple[Path, ...]:
        return self.issue.sources

    def source_lines(self) -> Iterator[tuple[Path, int, str]]:
        """Every line of issue.toml and the articles, numbered from 1."""
        for path in self.sources:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for number, line in enumerate(text.splitlines(), 1):
                yield path, number, line


def _line_of(path: Path, pattern: str) -> int | None:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    found = re.compile(pattern)
    return next((n for n, line in enumerate(lines, 1) if found.search(line)), None)


def selector(element: Any) -> str:
    """A CSS selector that finds `element` alone in its document, short where it can be.

    Tag and classes first; parents are added, then :nth-of-type, until it is unique.
    """
    root = element.getroottree().getroot()
    parts: list[str] = []
    node = element
    while node is not None and isinstance(node.tag, str):
        parts.insert(0, _step(node, nth=False))
        candidate = " > ".join(parts)
        if node.tag != "html" and len(root.cssselect(candidate)) == 1:
            return candidate
        parts[0] = _step(node, nth=True)
        candidate = " > ".join(parts)
        if len(root.cssselect(candidate)) == 1:
            return candidate
        node = node.getparent()
    return " > ".join(parts)


def _step(node: Any, nth: bool) -> str:
    classes = "".join(f".{c}" for c in (node.get("class") or "").split() if _CLASS.match(c))
    step = f"{node.tag}{classes}"
    parent = node.getparent()
    if nth and parent is not None:
        same = [c for c in parent if c.tag == node.tag]
        if len(same) > 1:
            step += f":nth-of-type({same.index(node) + 1})"
    return step


_CLASS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def load_email(settings: Settings, folder: Path) -> BuiltEmail:
    """The issue's build, rebuilt first when it is missing or older than the sources."""
    issue, rendered = load_built(settings, folder)
    out = settings.build_dir / issue.key
    try:
        files = _read(out)
    except OSError:  # email.html deleted by hand beside a current rendered.json
        result = build_issue(settings, folder)
        issue, rendered = result.issue, result.rendered
        try:
            files = _read(out)
        except OSError as exc:
            raise ContentError(f"cannot read the build: {os_problem(out, exc)}") from exc
    html, text, eml = files
    message = BytesParser(policy=email.policy.default).parsebytes(eml)
    return BuiltEmail(settings, issue, rendered, html, text, message)


def _read(out: Path) -> tuple[str, str, bytes]:
    html, text, eml = (out / name for name in BUILT_FILES)
    return (
        html.read_text(encoding="utf-8"),
        text.read_text(encoding="utf-8"),
        eml.read_bytes(),
    )
