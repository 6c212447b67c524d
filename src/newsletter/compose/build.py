"""Build an issue: read, render, inline once, then write the finished files.

    build/<issue>/email.html     the email as a sample reader gets it (open it in a browser)
    build/<issue>/email.txt      its plain-text part
    build/<issue>/email.eml      the whole RFC 5322 message to that sample reader
    build/<issue>/rendered.json  subject, HTML and text with per-recipient tokens: what
                                 sending personalizes, with a hash of the content

Everything is computed before the first byte is written, and each file is written
atomically, so an error leaves the previous build as it was.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from newsletter.compose.inline import inline_css
from newsletter.compose.issue import Issue, load_issue
from newsletter.compose.message import build_message, to_bytes, to_mime
from newsletter.compose.personalize import Recipient
from newsletter.compose.render import Rendered, render
from newsletter.config import Settings
from newsletter.files import write_atomic
from newsletter.workspace import default_templates_dir

# Gmail clips an HTML part beyond about 102 KB, hiding the footer and unsubscribe link.
GMAIL_CLIP_BYTES = 102_000
RENDERED_FILE = "rendered.json"


@dataclass(frozen=True)
class BuildResult:
    issue: Issue
    rendered: Rendered
    out_dir: Path
    files: list[tuple[Path, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def sample_recipient(settings: Settings) -> Recipient:
    """Who the built .eml is addressed to: a reader that does not exist."""
    return Recipient(
        email="reader@example.com",
        name="Sample Reader",
        unsubscribe_url=f"{settings.unsubscribe_url}?token=sample",
    )


def compile_issue(settings: Settings, folder: Path) -> tuple[Issue, Rendered]:
    """Load, render and inline an issue in memory: the part of a build that can fail."""
    issue = load_issue(folder, settings)
    rendered = render(issue, settings)
    return issue, replace(rendered, html=inline_css(rendered.html, settings.site_url))


def content_hash(rendered: Rendered) -> str:
    """Identifies what subscribers receive; a send refuses to continue if it changes."""
    digest = hashlib.sha256()
    for part in (rendered.subject, rendered.preheader, rendered.html, rendered.text):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def is_stale(settings: Settings, folder: Path, out_dir: Path) -> bool:
    """True when the build is missing or older than anything it was made from."""
    manifest = out_dir / RENDERED_FILE
    if not manifest.is_file():
        return True
    built = manifest.stat().st_mtime
    sources = [settings.root / "newsletter.toml", *folder.iterdir()]
    for templates in (settings.templates_dir, default_templates_dir()):
        if templates.is_dir():
            sources.extend(templates.iterdir())
    return any(p.is_file() and p.stat().st_mtime > built for p in sources)


def load_built(settings: Settings, folder: Path) -> tuple[Issue, Rendered]:
    """The issue as built: rebuilt first when missing or out of date."""
    out_dir = settings.build_dir / folder.name
    if is_stale(settings, folder, out_dir):
        result = build_issue(settings, folder)
        return result.issue, result.rendered
    issue = load_issue(folder, settings)
    data = json.loads((out_dir / RENDERED_FILE).read_text(encoding="utf-8"))
    rendered = Rendered(
        subject=data["subject"], html=data["html"], text=data["text"], preheader=data["preheader"]
    )
    return issue, rendered


def build_issue(settings: Settings, folder: Path, out_dir: Path | None = None) -> BuildResult:
    issue, rendered = compile_issue(settings, folder)
    target = out_dir or settings.build_dir / issue.key
    reader = sample_recipient(settings)
    sample = build_message(settings, issue.key, rendered, reader)
    eml = to_bytes(to_mime(sample))
    manifest = {
        "issue": issue.key,
        "subject": rendered.subject,
        "preheader": rendered.preheader,
        "content_hash": content_hash(rendered),
        "html": rendered.html,
        "text": rendered.text,
    }
    outputs = {
        "email.html": sample.html.encode("utf-8"),
        "email.txt": sample.text.encode("utf-8"),
        "email.eml": eml,
        RENDERED_FILE: json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"),
    }
    result = BuildResult(issue=issue, rendered=rendered, out_dir=target)
    for name, data in outputs.items():
        result.files.append((target / name, write_atomic(target / name, data)))
    html_size = len(outputs["email.html"])
    if html_size > GMAIL_CLIP_BYTES:
        result.warnings.append(
            f"email.html is {html_size / 1000:.0f} KB: Gmail clips messages over "
            f"{GMAIL_CLIP_BYTES // 1000} KB and hides the footer with the unsubscribe link; "
            "shorten the issue or move articles to links"
        )
    return result
