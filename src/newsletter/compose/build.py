"""Build an issue: read, render, inline once, then write the finished files.

    build/<issue>/email.html     the email as a sample reader gets it (open it in a browser)
    build/<issue>/email.txt      its plain-text part
    build/<issue>/email.eml      the whole RFC 5322 message to that sample reader
    build/<issue>/rendered.json  subject, HTML and text with per-recipient tokens: what
                                 sending personalizes, with a hash of the content and one
                                 of everything it was made from (compose.sources)
    build/<issue>/chart-1a2b3c4d.png   each local image as the email links to it
                                 (compose.images), for the archive to publish

Everything is computed before the first byte is written. The files are written into a
folder beside the build's and swapped in whole, so an error (a full disk, a read-only
folder) leaves the previous build as it was, never a new email.html beside an old .eml.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from newsletter.compose.fields import check_issue
from newsletter.compose.inline import inline_css
from newsletter.compose.issue import Issue, load_issue
from newsletter.compose.message import build_message, to_bytes, to_mime
from newsletter.compose.personalize import Recipient, plain_tokens
from newsletter.compose.render import Rendered, render, template_digests
from newsletter.compose.sources import inputs_digest, source_hash
from newsletter.config import Settings
from newsletter.errors import ContentError
from newsletter.files import PATH_LIMIT, new_folder_beside, os_problem, shown, write_atomic

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
    """Identifies what subscribers receive; a send refuses to continue if it changes.

    The tokens are hashed in their plain form, so the same email gives the same hash
    whatever nonce its build drew.
    """
    digest = hashlib.sha256()
    html = plain_tokens(rendered.html_parts)
    text = plain_tokens(rendered.text_parts)
    subject = plain_tokens(rendered.subject_parts)
    for part in (subject, rendered.preheader, html, text):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def load_built(settings: Settings, folder: Path) -> tuple[Issue, Rendered]:
    """The issue as built: rebuilt first when missing or made from other sources than today's."""
    issue = load_issue(folder, settings)
    built = read_built(settings.build_dir / folder.name, issue.key)
    if built is not None and built.source_hash == current_source_hash(
        settings, issue, built.templates
    ):
        return issue, built
    result = build_issue(settings, folder)
    return result.issue, result.rendered


def current_source_hash(settings: Settings, issue: Issue, templates: tuple[str, ...]) -> str:
    """What a build of `issue` with these templates would record today ("" if one is gone)."""
    digests = template_digests(settings, templates)
    return "" if digests is None else source_hash(inputs_digest(issue, settings), digests)


def read_built(out_dir: Path, key: str) -> Rendered | None:
    """The rendered issue a build left in `out_dir`, or None if there is none to trust."""
    try:
        data = json.loads((out_dir / RENDERED_FILE).read_text(encoding="utf-8"))
        rendered = Rendered(
            subject=_text(data, "subject"),
            html=_text(data, "html"),
            text=_text(data, "text"),
            preheader=_text(data, "preheader"),
            nonce=_text(data, "tokens"),
            source_hash=_text(data, "source_hash"),
            templates=tuple(_text({"t": t}, "t") for t in data["templates"]),
        )
        rendered.html_parts  # noqa: B018 - a nonce that is not one fails here
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, half-written by hand, or from an older version
    if data.get("issue") != key or not rendered.source_hash:
        return None
    return rendered


def _text(data: Any, key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(key)
    return value


def build_issue(settings: Settings, folder: Path, out_dir: Path | None = None) -> BuildResult:
    issue, rendered = compile_issue(settings, folder)
    field_warnings = check_issue(settings, issue, rendered)  # a field no subscriber has
    target = out_dir or settings.build_dir / issue.key
    reader = sample_recipient(settings)
    sample = build_message(settings, issue.key, rendered, reader)
    eml = to_bytes(to_mime(sample))
    manifest = {
        "issue": issue.key,
        "subject": rendered.subject,
        "preheader": rendered.preheader,
        "content_hash": content_hash(rendered),
        "source_hash": rendered.source_hash,
        "tokens": rendered.nonce,
        "templates": list(rendered.templates),
        "html": rendered.html,
        "text": rendered.text,
        "images": [image.name for image in rendered.images],
    }
    outputs = {
        "email.html": sample.html.encode("utf-8"),
        "email.txt": sample.text.encode("utf-8"),
        "email.eml": eml,
        RENDERED_FILE: json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"),
        **{image.name: image.data for image in rendered.images},
    }
    write_build(target, outputs)
    result = BuildResult(issue=issue, rendered=rendered, out_dir=target)
    result.files.extend((target / name, len(data)) for name, data in outputs.items())
    result.warnings.extend([*issue.warnings, *field_warnings])
    html_size = len(outputs["email.html"])
    if html_size > GMAIL_CLIP_BYTES:
        result.warnings.append(
            f"email.html is {html_size / 1000:.0f} KB: Gmail clips messages over "
            f"{GMAIL_CLIP_BYTES // 1000} KB and hides the footer with the unsubscribe link; "
            "shorten the issue or move articles to links"
        )
    return result


# --- writing all files or none ------------------------------------------------------------


def write_build(target: Path, outputs: dict[str, bytes]) -> None:
    """Put `outputs` in the folder `target` all at once, or leave it as it was.

    A `target` that is a symbolic link (to a shared drive, say) stays one: the files go
    into the folder it points to. Swapping would put a folder in the link's place. The
    images an earlier build wrote there (its rendered.json lists them) are its own too:
    those no longer shown go.
    """
    try:
        if target.is_symlink() and not target.is_dir():
            raise ContentError(
                f"{shown(target, PATH_LIMIT)}: is a link to {shown(os.readlink(target))}, "
                "which is not a folder; a build is written to a folder"
            )
        if target.exists() and not target.is_dir():
            raise ContentError(f"{target}: is a file; a build is written to a folder")
        earlier = _earlier_images(target) - set(outputs)
        if target.is_symlink() or (
            target.is_dir()
            and any(p.name not in outputs and p.name not in earlier for p in target.iterdir())
        ):
            _write_among_others(target, outputs)
            for name in earlier:
                (target / name).unlink(missing_ok=True)
        else:
            _swap_in(target, outputs)
    except OSError as exc:  # a full disk, a read-only folder, a name past 255 bytes
        raise ContentError(
            f"cannot write the build: {os_problem(target, exc)} (the previous build is unchanged)"
        ) from exc


def _earlier_images(target: Path) -> set[str]:
    """The image files the build already in `target` wrote, by its rendered.json."""
    try:
        names = json.loads((target / RENDERED_FILE).read_text(encoding="utf-8"))["images"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    if not isinstance(names, list):
        return set()
    return {n for n in names if isinstance(n, str) and n == Path(n).name and n[:1] != "."}


def _swap_in(target: Path, outputs: dict[str, bytes]) -> None:
    """Write a whole new folder beside `target`, then rename it into its place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    aside = new_folder_beside(target, "build")
    swapped = False
    try:
        for name, data in outputs.items():
            write_atomic(aside / name, data)
        for attempt in range(_SWAP_ATTEMPTS):
            swapped = _swap(aside, target, last=attempt == _SWAP_ATTEMPTS - 1)
            if swapped:
                break
    finally:
        if not swapped:
            shutil.rmtree(aside, ignore_errors=True)


# Two senders may rebuild the same stale issue at once (both from the same sources); the
# one whose new folder lands second moves the first one's aside and tries again.
_SWAP_ATTEMPTS = 5


def _swap(new: Path, target: Path, last: bool) -> bool:
    """Rename `new` to `target`, the old `target` aside first; False if another build won."""
    aside = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
    old: Path | None = aside
    try:
        os.rename(target, aside)
    except FileNotFoundError:
        old = None  # no build yet, or another process is between its two renames
    try:
        os.rename(new, target)
    except OSError as exc:
        if old is not None:
            if target.exists():
                shutil.rmtree(old, ignore_errors=True)  # another build took the place
            else:
                os.rename(old, target)
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and not last:
            return False
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return True


def _write_among_others(target: Path, outputs: dict[str, bytes]) -> None:
    """A folder that holds other files too (`--out`), or a link's: stage all, rename each.

    Swapping the folder would take the other files with it; here only the renames, which
    need no space, come after the first new file is in place.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for name, data in outputs.items():
            temporary = target / f".{name}.{secrets.token_hex(4)}.new"
            write_atomic(temporary, data)
            staged.append((temporary, target / name))
        for temporary, final in staged:
            os.replace(temporary, final)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
