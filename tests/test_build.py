from __future__ import annotations

import email
import json
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from lxml import html as lxml_html

from newsletter.compose.build import GMAIL_CLIP_BYTES, build_issue, compile_issue
from newsletter.compose.personalize import TOKENS
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
    assert [p.name for p, _ in result.files] == [
        "email.html",
        "email.txt",
        "email.eml",
        "rendered.json",
    ]
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
    assert re.fullmatch(r"<https://[^>]+>, <mailto:[^>]+>", msg["List-Unsubscribe"])
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
    assert f'href="{TOKENS["unsubscribe_url"]}"' in rendered.html
    assert TOKENS["email"] in rendered.html and TOKENS["email"] in rendered.text
    assert "%7B" not in rendered.html and "{{" not in rendered.html


def test_rendered_manifest(settings: Settings, issue_dir: Path) -> None:
    build_issue(settings, issue_dir)
    data = json.loads((settings.build_dir / EXAMPLE / "rendered.json").read_text())
    assert data["issue"] == EXAMPLE and len(data["content_hash"]) == 64
    assert TOKENS["unsubscribe_url"] in data["html"]


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
