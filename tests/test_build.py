from __future__ import annotations

import email
import errno
import json
import os
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from lxml import html as lxml_html

from newsletter.compose.build import GMAIL_CLIP_BYTES, build_issue, compile_issue
from newsletter.compose.personalize import TOKENS, tokens
from newsletter.config import Settings
from newsletter.errors import ContentError, TemplateError

from conftest import EXAMPLE, write


def parse_eml(path: Path) -> EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_build_writes_files(settings: Settings, issue_dir: Path) -> None:
    result = build_issue(settings, issue_dir)
    out = settings.build_dir / EXAMPLE
    names = [p.name for p, _ in result.files]
    assert names[:4] == ["email.html", "email.txt", "email.eml", "rendered.json"]
    # and the article's photo, published under a content-hashed name
    assert len(names) == 5 and re.fullmatch(r"library-reading-room-[0-9a-f]{8}\.jpg", names[4])
    for path, size in result.files:
        assert path.parent == out and path.stat().st_size == size
    assert not list(out.glob(".*.tmp"))
    assert result.warnings == []


def test_eml_structure(settings: Settings, issue_dir: Path) -> None:
    build_issue(settings, issue_dir)
    raw = (settings.build_dir / EXAMPLE / "email.eml").read_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    msg = parse_eml(settings.build_dir / EXAMPLE / "email.eml")
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert msg["Subject"] == (
        "Millbrook in November: the library reopens, and what the flood plan means"
    )
    for header in ("From", "To", "Date", "Message-ID", "MIME-Version", "List-ID"):
        assert msg[header], header
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<https://[^>]+>", msg["List-Unsubscribe"])  # no mailto: unset
    text, html = (p.get_content() for p in parts)
    assert "Tomasz Wiśniewski" in text
    assert html.isascii() and "Tomasz Wi&#347;niewski" in html  # character references
    assert "Tomasz Wiśniewski" in lxml_html.document_fromstring(html).text_content()
    assert "reader@example.com" in text and "reader@example.com" in html


def test_non_ascii_subject_is_encoded(settings: Settings, issue_dir: Path) -> None:
    toml = issue_dir / "issue.toml"
    toml.write_text(
        re.sub(r'subject = ".*"', 'subject = "Café “news” — ünïcode"', toml.read_text())
    )
    build_issue(settings, issue_dir)
    raw = (settings.build_dir / EXAMPLE / "email.eml").read_bytes()
    subject_line = next(line for line in raw.split(b"\r\n") if line.startswith(b"Subject:"))
    assert b"=?utf-8?" in subject_line.lower()
    assert parse_eml(settings.build_dir / EXAMPLE / "email.eml")["Subject"] == (
        "Café “news” — ünïcode"
    )


def test_html_inlined_absolute_and_accessible(settings: Settings, issue_dir: Path) -> None:
    build_issue(settings, issue_dir)
    html = (settings.build_dir / EXAMPLE / "email.html").read_text()
    doc = lxml_html.document_fromstring(html)
    paragraphs = doc.xpath("//div[@class='body']//p")
    assert paragraphs and all("font-size:17px" in p.get("style", "") for p in paragraphs)
    assert "@media screen and (max-width: 620px)" in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert "!important" in html
    for attr in ("href", "src"):
        for value in doc.xpath(f"//@{attr}"):
            assert re.match(r"^(https://|mailto:)", value), value
    assert doc.get("lang") == "en-GB" and doc.get("dir") == "ltr"
    for table in doc.xpath("//table[not(ancestor::div[@class='body'])]"):
        assert table.get("role") == "presentation"
    for img in doc.xpath("//img"):
        assert img.get("alt") is not None
    assert doc.xpath("//meta[@name='color-scheme']")
    assert "Unsubscribe" in html and "12 Weir Lane" in html
    # the hidden preheader comes first in the body
    first = doc.body[0]
    assert "display: none" in first.get("style", "") and "New opening hours" in first.text


def test_tokens_survive_inlining(settings: Settings, issue_dir: Path) -> None:
    _, rendered = compile_issue(settings, issue_dir)
    own = tokens(rendered.nonce)
    assert rendered.nonce and own != TOKENS  # the build's own, unguessable tokens
    assert f'href="{own["unsubscribe_url"]}"' in rendered.html
    assert own["email"] in rendered.html and own["email"] in rendered.text
    assert "%7B" not in rendered.html and "{{" not in rendered.html


def test_rendered_manifest(settings: Settings, issue_dir: Path) -> None:
    build_issue(settings, issue_dir)
    data = json.loads((settings.build_dir / EXAMPLE / "rendered.json").read_text())
    assert data["issue"] == EXAMPLE and len(data["content_hash"]) == 64
    assert len(data["source_hash"]) == 64
    assert tokens(data["tokens"])["unsubscribe_url"] in data["html"]


def test_hostile_front_matter_is_escaped(settings: Settings, issue_dir: Path) -> None:
    write(
        issue_dir / "library-reopens.md",
        "---\ntitle: '<script>alert(1)</script> & co'\nauthor: '<img src=x onerror=alert(2)>'\n"
        "summary: '\"><b>bold</b>'\nurl: /x\n---\nText.\n",
    )
    build_issue(settings, issue_dir)
    html = (settings.build_dir / EXAMPLE / "email.html").read_text()
    assert "<script>" not in html and "<img src=x" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html


def test_undefined_template_variable_names_template_and_line(
    settings: Settings, issue_dir: Path
) -> None:
    template = write(settings.templates_dir / "email.txt", "Hello\n{{ issue.subjet }}\n")
    with pytest.raises(TemplateError, match=rf"{re.escape(str(template))}:2: .*subjet"):
        build_issue(settings, issue_dir)


def test_template_syntax_error(settings: Settings, issue_dir: Path) -> None:
    write(settings.templates_dir / "email.html", "<p>{% if x %}</p>\n")
    with pytest.raises(TemplateError, match=r"email\.html:1: "):
        build_issue(settings, issue_dir)


def test_workspace_template_overrides_default(settings: Settings, issue_dir: Path) -> None:
    write(settings.templates_dir / "email.txt", "Custom {{ issue.subject }}\n")
    result = build_issue(settings, issue_dir)
    assert result.rendered.text.startswith("Custom Millbrook")
    assert "<table" in result.rendered.html  # email.html still from the defaults


def test_failed_build_leaves_previous_files(settings: Settings, issue_dir: Path) -> None:
    build_issue(settings, issue_dir)
    out = settings.build_dir / EXAMPLE
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (issue_dir / "flood-defences.html").unlink()
    with pytest.raises(ContentError, match="flood-defences.html' not found"):
        build_issue(settings, issue_dir)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_gmail_clipping_warning(settings: Settings, issue_dir: Path) -> None:
    paragraph = "A sentence that goes on for a while to fill the email. " * 40
    write(issue_dir / "long.md", "# Long\n\n" + "\n\n".join([paragraph] * 60))
    toml = issue_dir / "issue.toml"
    toml.write_text(toml.read_text().replace('"flood-defences.html",', '"long.md",'))
    result = build_issue(settings, issue_dir)
    html_size = result.files[0][1]
    assert html_size > GMAIL_CLIP_BYTES
    assert len(result.warnings) == 1 and "Gmail clips" in result.warnings[0]


def test_out_dir(settings: Settings, issue_dir: Path, tmp_path: Path) -> None:
    result = build_issue(settings, issue_dir, tmp_path / "elsewhere")
    assert all(p.parent == tmp_path / "elsewhere" for p, _ in result.files)


def _disk_fills_on(monkeypatch: pytest.MonkeyPatch, fail_at: int) -> None:
    """The fail_at-th file the build writes meets a full disk."""
    from newsletter.compose import build as build_module

    real = build_module.write_atomic
    calls = []

    def write(path: Path, data: str | bytes, **kwargs: object) -> int:
        calls.append(path)
        if len(calls) == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(build_module, "write_atomic", write)


@pytest.mark.parametrize("fail_at", [1, 3, 4])
def test_full_disk_mid_build_leaves_the_previous_build_whole(
    settings: Settings, issue_dir: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    build_issue(settings, issue_dir)
    out = settings.build_dir / EXAMPLE
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    toml = issue_dir / "issue.toml"
    toml.write_text(toml.read_text().replace("Millbrook in November", "Changed subject"))
    _disk_fills_on(monkeypatch, fail_at)
    with pytest.raises(ContentError, match="No space left on device") as info:
        build_issue(settings, issue_dir)
    assert len(str(info.value).splitlines()) == 1
    assert str(settings.build_dir) in str(info.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in settings.build_dir.iterdir()] == [EXAMPLE]  # nothing left aside


def test_full_disk_on_a_first_build_leaves_nothing(
    settings: Settings, issue_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _disk_fills_on(monkeypatch, 2)
    with pytest.raises(ContentError, match="No space left on device"):
        build_issue(settings, issue_dir)
    assert not (settings.build_dir / EXAMPLE).exists()
    assert list(settings.build_dir.iterdir()) == []


def test_read_only_build_folder_is_one_line(
    settings: Settings, issue_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_issue(settings, issue_dir)
    before = {p.name: p.read_bytes() for p in (settings.build_dir / EXAMPLE).iterdir()}

    def refuse(path: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(os, "mkdir", refuse)
    with pytest.raises(ContentError, match=r"Read-only file system") as info:
        build_issue(settings, issue_dir)
    assert len(str(info.value).splitlines()) == 1
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in (settings.build_dir / EXAMPLE).iterdir()} == before


def test_out_naming_an_existing_file_is_refused(
    settings: Settings, issue_dir: Path, tmp_path: Path
) -> None:
    target = write(tmp_path / "notes.txt", "keep me")
    with pytest.raises(ContentError, match=r"notes\.txt: .*file.*folder"):
        build_issue(settings, issue_dir, target)
    assert target.read_text() == "keep me"


def test_out_into_a_folder_with_other_files_keeps_them(
    settings: Settings, issue_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "desk"
    mine = write(folder / "mine.txt", "keep me")
    write(folder / "email.txt", "an older build")
    result = build_issue(settings, issue_dir, folder)
    assert mine.read_text() == "keep me"
    assert (folder / "email.txt").read_text() != "an older build"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["mine.txt", *(p.name for p, _ in result.files)]
    )


def test_rebuild_keeps_files_that_are_not_the_builds(settings: Settings, issue_dir: Path) -> None:
    build_issue(settings, issue_dir)
    out = settings.build_dir / EXAMPLE
    write(out / "stale-leftover.html", "old")
    toml = issue_dir / "issue.toml"
    toml.write_text(toml.read_text().replace("Millbrook in November", "Changed subject"))
    build_issue(settings, issue_dir)
    assert "Changed subject" in (out / "email.eml").read_text()
    assert (out / "stale-leftover.html").exists()  # not ours: kept


def test_hostile_html_article_urls_never_reach_the_email(
    settings: Settings, issue_dir: Path
) -> None:
    write(
        issue_dir / "flood-defences.html",
        '<html><head><link rel="canonical" href="javascript:alert(1)">'
        '<meta property="og:image" content="javascript:alert(2)"></head>'
        "<body><h1>Page</h1><p>Text.</p></body></html>",
    )
    result = build_issue(settings, issue_dir)
    html = (settings.build_dir / EXAMPLE / "email.html").read_text()
    assert "javascript" not in html.lower()
    assert any("flood-defences.html" in w and "canonical" in w for w in result.warnings)


def test_another_build_landing_first_is_moved_aside(
    settings: Settings, issue_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two senders rebuilding one stale issue at once: the second swap retries."""
    from newsletter.compose import build as build_module

    out = settings.build_dir / EXAMPLE
    real = os.rename
    raced = []

    def rename(source: str | Path, destination: str | Path) -> None:
        if str(source).endswith(".new") and not raced:
            raced.append(destination)
            write(Path(destination) / "email.txt", "the other sender's build")
        real(source, destination)

    monkeypatch.setattr(build_module.os, "rename", rename)
    build_issue(settings, issue_dir)
    assert raced == [out]
    assert "Millbrook in November" in (out / "email.txt").read_text()
    assert sorted(p.name for p in settings.build_dir.iterdir()) == [EXAMPLE]
