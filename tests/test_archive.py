"""`newsletter archive`: the static web archive, its pages, its feed, and how it is written.

The browser's view of the same pages (widths, the view-in-browser link, accessibility) is
in test_archive_browser.py.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import feedparser
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from lxml import html as lxml_html
from PIL import Image
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.compose.build import build_issue, content_hash
from newsletter.config import Settings
from newsletter.errors import ContentError
from newsletter.storage import open_engine, sends, transaction
from newsletter.web import archive_folder
from newsletter.web.archive import default_archive_dir, sent_issues, write_archive
from newsletter.web.archive_folder import STATE_FILE, read_state

from conftest import EXAMPLE, write

WINTER = "2026-12-10-winter"
WINTER_ARTICLE = """\
---
title: Snow clearing, street by street
author: Ines Okafor
date: 2026-12-08
---

The council's gritters go out at four when frost is forecast. Priority routes come first.
"""
SITE = "https://millbrook.example.org/"


def add_issue(root: Path, key: str, subject: str, body: str = WINTER_ARTICLE, **keys: str) -> Path:
    """An issue folder with one Markdown article; extra issue.toml keys as TOML values."""
    folder = root / "issues" / key
    extra = "".join(f"{name} = {value}\n" for name, value in keys.items())
    write(folder / "issue.toml", f'subject = "{subject}"\n{extra}')
    write(folder / "article.md", body)
    return folder


IMAGE_ARTICLE = """\
---
title: Gritting routes this winter
image: chart.png
image_alt: A map of the gritting routes
---

The routes, street by street:

![The gritting routes in the town centre](chart.png)
"""


def add_image_issue(root: Path, key: str = WINTER) -> Path:
    """An issue whose article shows a local image, as `add` leaves it in the issue folder."""
    folder = add_issue(root, key, "Winter in Millbrook", IMAGE_ARTICLE)
    Image.new("RGB", (1200, 600), (30, 90, 160)).save(folder / "chart.png")
    return folder


def mark_sent(settings: Settings, *keys: str) -> None:
    """As a send's first step does: a row in `sends` for each issue."""
    engine = open_engine(settings)
    try:
        with transaction(engine) as conn:
            for key in keys:
                conn.execute(
                    sends.insert().values(
                        issue=key,
                        content_hash="0" * 64,
                        segment="",
                        provider="outbox",
                        audience=0,
                        created_at=dt.datetime(2026, 11, 26, tzinfo=dt.UTC),
                    )
                )
    finally:
        engine.dispose()


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under `folder`: its bytes, inode and modification time."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            info = path.stat()
            found[path.relative_to(folder).as_posix()] = (
                path.read_bytes(),
                info.st_ino,
                info.st_mtime_ns,
            )
    return found


def contents(folder: Path) -> dict[str, bytes]:
    return {name: data for name, (data, _, _) in snapshot(folder).items()}


@pytest.fixture
def two_issues(workspace: Path, settings: Settings) -> Settings:
    """The example issue and a later one, both sent."""
    add_issue(workspace, WINTER, "Winter in Millbrook")
    mark_sent(settings, EXAMPLE, WINTER)
    return settings


def page(path: Path) -> lxml_html.HtmlElement:
    return lxml_html.fromstring(path.read_bytes())


# --- what the archive holds ------------------------------------------------------------------


def test_the_index_lists_sent_issues_newest_first_with_dates_and_preheaders(
    two_issues: Settings,
) -> None:
    result = write_archive(two_issues)
    out = default_archive_dir(two_issues)
    assert result.archived == [WINTER, EXAMPLE]
    index = page(out / "index.html")
    links = index.xpath("//main//li//h3/a")
    assert [a.text_content() for a in links] == [
        "Winter in Millbrook",
        "Millbrook in November: the library reopens, and what the flood plan means",
    ]
    assert [a.get("href") for a in links] == [f"{WINTER}/", f"{EXAMPLE}/"]
    assert [t.get("datetime") for t in index.xpath("//main//li//time")] == [
        "2026-12-10",
        "2026-11-26",
    ]
    assert index.xpath("//main//li//time")[1].text_content() == "26 November 2026"
    preheaders = [p.text_content() for p in index.xpath("//main//li//p[@class='preheader']")]
    assert preheaders == [
        "New opening hours, a word from the council, and the river works explained."
    ]
    for path in (f"{WINTER}/index.html", f"{EXAMPLE}/index.html", "feed.xml"):
        assert (out / path).is_file(), path


def test_an_issue_page_is_the_email_with_nothing_of_any_reader(two_issues: Settings) -> None:
    write_archive(two_issues)
    out = default_archive_dir(two_issues)
    built = (two_issues.build_dir / EXAMPLE / "email.html").read_text()
    text = (out / EXAMPLE / "index.html").read_text()
    doc = page(out / EXAMPLE / "index.html")
    # The same email: every article title of the build is on the page.
    for title in lxml_html.fromstring(built).xpath("//h2"):
        assert title.text_content() in doc.text_content()
    # Nothing of a reader: no token, no sample address or name, no unsubscribe link.
    assert "reader@example.com" in built  # the build's sample reader, to be sure we look
    for leftover in (
        "x-newsletter",
        "reader@example.com",
        "Sample Reader",
        "token=",
        "@example.invalid",
    ):
        assert leftover not in text, leftover
    assert "unsubscribe" not in text.lower()
    assert "You are receiving" not in doc.text_content()
    email_links = doc.xpath("//div[@role='article']//a[normalize-space()='Subscribe']")
    assert [a.get("href") for a in email_links] == [f"{SITE}subscribe"]
    # The newsletter's name, language, canonical and Open Graph tags; no JavaScript.
    assert doc.get("lang") == "en-GB"
    assert doc.xpath("//link[@rel='canonical']/@href") == [f"{SITE}archive/{EXAMPLE}/"]
    og = {m.get("property"): m.get("content") for m in doc.xpath("//meta[@property]")}
    assert og["og:url"] == f"{SITE}archive/{EXAMPLE}/"
    assert og["og:title"].startswith("Millbrook in November")
    assert og["og:site_name"] == "Millbrook Civic Bulletin"
    assert og["og:type"] == "article"
    assert re.fullmatch(
        rf"{SITE}archive/{EXAMPLE}/library-reading-room-[0-9a-f]{{8}}\.jpg", og["og:image"]
    )
    assert (
        doc.xpath("//script | //@*[starts-with(name(), 'on')] | //@href[contains(., 'script:')]")
        == []
    )
    assert doc.xpath("//h1[@class='issue-subject']")[0].text_content().startswith("Millbrook in")
    # The email's view-in-browser link leads to the page itself, relative to it.
    assert f"{SITE}archive/{EXAMPLE}/" in built
    assert f"{SITE}archive/" not in "".join(doc.xpath("//body//@href | //body//@src"))


def test_personal_fields_show_their_defaults(workspace: Path, settings: Settings) -> None:
    add_issue(
        workspace,
        WINTER,
        "Winter in Millbrook",
        intro="\"What is on in {{ subscriber.city | default('your area') }} this month.\"",
    )
    write_archive(settings, include_unsent=True)
    text = (default_archive_dir(settings) / WINTER / "index.html").read_text()
    assert "What is on in your area this month." in text
    assert "x-newsletter" not in text


def test_the_feed_lists_the_issues_with_their_dates(two_issues: Settings) -> None:
    write_archive(two_issues)
    feed = feedparser.parse((default_archive_dir(two_issues) / "feed.xml").read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "Millbrook Civic Bulletin"
    assert feed.feed.updated_parsed[:3] == (2026, 12, 10)
    assert [e.title for e in feed.entries] == [
        "Winter in Millbrook",
        "Millbrook in November: the library reopens, and what the flood plan means",
    ]
    assert [e.link for e in feed.entries] == [
        f"{SITE}archive/{WINTER}/",
        f"{SITE}archive/{EXAMPLE}/",
    ]
    assert feed.entries[1].summary.startswith("New opening hours")
    assert feed.entries[1].published_parsed[:3] == (2026, 11, 26)
    self_links = [link.href for link in feed.feed.links if link.rel == "self"]
    assert self_links == [f"{SITE}archive/feed.xml"]


def test_only_sent_issues_appear_unless_unsent_are_included(
    workspace: Path, settings: Settings
) -> None:
    add_issue(workspace, WINTER, "Winter in Millbrook")
    mark_sent(settings, WINTER)
    result = write_archive(settings)
    assert result.archived == [WINTER]
    assert result.not_sent == [EXAMPLE]
    assert not (default_archive_dir(settings) / EXAMPLE).exists()
    result = write_archive(settings, include_unsent=True)
    assert result.archived == [WINTER, EXAMPLE]
    assert (default_archive_dir(settings) / EXAMPLE / "index.html").is_file()


def test_an_issue_can_opt_out(workspace: Path, settings: Settings) -> None:
    add_issue(workspace, WINTER, "Winter in Millbrook", archive="false")
    result = write_archive(settings, include_unsent=True)
    assert result.archived == [EXAMPLE]
    assert result.opted_out == [WINTER]
    assert not (default_archive_dir(settings) / WINTER).exists()
    assert "Winter" not in (default_archive_dir(settings) / "feed.xml").read_text()


def test_archive_must_be_true_or_false(workspace: Path, settings: Settings) -> None:
    add_issue(workspace, WINTER, "Winter", archive='"no"')
    with pytest.raises(ContentError, match=r"issue.toml: key 'archive' must be true or false"):
        write_archive(settings, include_unsent=True)


def test_sent_issues_come_from_the_ledger(db_settings: Settings) -> None:
    assert sent_issues(db_settings) == {}
    mark_sent(db_settings, EXAMPLE)
    assert sent_issues(db_settings) == {EXAMPLE: "0" * 64}


def test_a_page_that_differs_from_what_was_sent_is_a_warning(
    workspace: Path, settings: Settings
) -> None:
    add_issue(workspace, WINTER, "Winter in Millbrook")
    mark_sent(settings, EXAMPLE, WINTER)  # with a content hash no build has
    sent = content_hash(build_issue(settings, settings.issues_dir / WINTER).rendered)
    engine = open_engine(settings)
    try:
        with transaction(engine) as conn:
            conn.execute(sends.update().where(sends.c.issue == WINTER).values(content_hash=sent))
    finally:
        engine.dispose()
    result = write_archive(settings)
    assert result.warnings == [
        f"{EXAMPLE}: the page shows the issue as it is now, which differs from what was sent"
    ]


# --- URLs that resolve (issue 11, item 3) ----------------------------------------------------


def archive_urls(html: str, base: str) -> set[str]:
    """Every absolute URL under `base` the email holds, in an attribute or in its text."""
    doc = lxml_html.fromstring(html)
    found = {url for _, _, url, _ in doc.iterlinks() if url.startswith(base)}
    found |= {word for word in doc.text_content().split() if word.startswith(base)}
    return found


def resolves(out: Path, url: str, base: str) -> bool:
    path = out / url[len(base) :].split("#")[0].split("?")[0]
    return path.is_file() or (path / "index.html").is_file()


def test_every_archive_url_in_the_built_example_email_resolves(settings: Settings) -> None:
    mark_sent(settings, EXAMPLE)
    build_issue(settings, settings.issues_dir / EXAMPLE)
    write_archive(settings)
    base = settings.archive_url
    out = default_archive_dir(settings)
    for name in ("email.html", "email.txt"):
        text = (settings.build_dir / EXAMPLE / name).read_text()
        urls = (
            archive_urls(text, base)
            if name.endswith(".html")
            else {w.strip("<>()") for w in text.split() if w.startswith(base)}
        )
        assert f"{base}{EXAMPLE}/" in urls, name
        unresolved = [url for url in urls if not resolves(out, url, base)]
        assert not unresolved, f"{name}: {unresolved}"


def test_every_archive_url_of_an_email_with_a_local_image_resolves(
    workspace: Path, settings: Settings
) -> None:
    folder = add_image_issue(workspace)
    mark_sent(settings, WINTER)
    build = build_issue(settings, folder).out_dir
    write_archive(settings)
    base = settings.archive_url
    out = default_archive_dir(settings)
    urls = archive_urls((build / "email.html").read_text(), base)
    images = sorted(u for u in urls if u.endswith(".png"))
    assert len(images) == 1 and images[0].startswith(f"{base}{WINTER}/chart-"), urls
    assert {u for u in urls if not resolves(out, u, base)} == set()
    name = images[0].rsplit("/", 1)[1]
    assert (out / WINTER / name).read_bytes() == (build / name).read_bytes()
    doc = page(out / WINTER / "index.html")
    assert set(doc.xpath("//main//img/@src")) == {name}  # relative: the folder can move
    assert doc.xpath("//meta[@property='og:image']/@content") == [images[0]]


def _missing(path: Path) -> None:
    path.unlink()


def _not_an_image(path: Path) -> None:
    path.write_text("<html>a page saved as .png</html>")


def _twenty_megabytes(path: Path) -> None:
    with path.open("r+b") as handle:  # sparse: cheap to make
        handle.truncate(20_000_001)


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (_missing, "chart.png"),
        (_not_an_image, "chart.png"),
        (_twenty_megabytes, "MB"),
    ],
    ids=["missing", "not-an-image", "20-MB"],
)
def test_a_bad_image_is_one_line_and_the_archive_stays(
    workspace: Path, settings: Settings, spoil: Any, said: str
) -> None:
    write_archive(settings, include_unsent=True)
    before = snapshot(default_archive_dir(settings))
    spoil(add_image_issue(workspace) / "chart.png")
    with pytest.raises(ContentError) as info:
        write_archive(settings, include_unsent=True)
    lines = str(info.value).splitlines()
    assert len(lines) == 2, lines
    assert f"{WINTER}/article.md" in lines[0] and said in lines[0]
    assert lines[-1].startswith("nothing written: ")
    assert snapshot(default_archive_dir(settings)) == before


def test_files_the_build_published_are_copied_and_the_email_files_are_not(
    settings: Settings,
) -> None:
    mark_sent(settings, EXAMPLE)
    build = build_issue(settings, settings.issues_dir / EXAMPLE).out_dir
    (build / "chart.3f9a1c.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    write_archive(settings)
    out = default_archive_dir(settings) / EXAMPLE
    names = sorted(p.name for p in out.iterdir())
    assert names[:2] == ["chart.3f9a1c.png", "index.html"] and len(names) == 3
    assert re.fullmatch(r"library-reading-room-[0-9a-f]{8}\.jpg", names[2])  # the example's photo
    assert (out / "chart.3f9a1c.png").read_bytes() == (build / "chart.3f9a1c.png").read_bytes()


def test_an_email_pointing_at_a_file_its_build_lacks_is_refused(
    workspace: Path, settings: Settings
) -> None:
    write_archive(settings, include_unsent=True)
    before = snapshot(default_archive_dir(settings))
    missing = f"{SITE}archive/{WINTER}/chart.png"
    add_issue(workspace, WINTER, "Winter", WINTER_ARTICLE + f"\n![A chart]({missing})\n")
    with pytest.raises(ContentError) as info:
        write_archive(settings, include_unsent=True)
    lines = str(info.value).splitlines()
    assert f"{WINTER}/issue.toml: the email links to {missing}" in lines[0]
    assert lines[-1] == f"nothing written: {default_archive_dir(settings)} is as it was"
    assert snapshot(default_archive_dir(settings)) == before


# --- written whole, incrementally, the same every time --------------------------------------


def test_a_second_run_rewrites_nothing_and_a_new_issue_only_itself(
    workspace: Path, two_issues: Settings
) -> None:
    out = default_archive_dir(two_issues)
    assert sorted(write_archive(two_issues).written) == [EXAMPLE, WINTER]
    first = snapshot(out)
    again = write_archive(two_issues)
    assert again.written == [] and again.archived == [WINTER, EXAMPLE]
    assert snapshot(out) == first  # same bytes, same inodes, same times

    spring = "2027-03-01-spring"
    add_issue(workspace, spring, "Spring")
    mark_sent(two_issues, spring)
    assert write_archive(two_issues).written == [spring]
    after = snapshot(out)
    for name in (f"{EXAMPLE}/index.html", f"{WINTER}/index.html"):
        assert after[name] == first[name], name
    assert after["index.html"][0] != first["index.html"][0]
    assert "Spring" in after["feed.xml"][0].decode()

    article = workspace / "issues" / WINTER / "article.md"
    article.write_text(WINTER_ARTICLE + "\nA second paragraph.\n", encoding="utf-8")
    assert write_archive(two_issues).written == [WINTER]
    assert b"A second paragraph." in (out / WINTER / "index.html").read_bytes()
    assert snapshot(out)[f"{EXAMPLE}/index.html"] == first[f"{EXAMPLE}/index.html"]


def test_two_runs_on_the_same_input_give_the_same_bytes(
    two_issues: Settings, tmp_path: Path
) -> None:
    write_archive(two_issues, tmp_path / "one")
    write_archive(two_issues, tmp_path / "two")
    one = contents(tmp_path / "one")
    assert one == contents(tmp_path / "two")
    assert {"index.html", "feed.xml", STATE_FILE, f"{EXAMPLE}/index.html"} <= set(one)
    # From scratch, with the builds made again (new files, new times): still the same.
    for key in (EXAMPLE, WINTER):
        for path in (two_issues.build_dir / key).iterdir():
            path.unlink()
    write_archive(two_issues, tmp_path / "three")
    assert contents(tmp_path / "three") == one


def test_a_removed_issue_goes_and_files_of_ours_stay(workspace: Path, two_issues: Settings) -> None:
    out = default_archive_dir(two_issues)
    write_archive(two_issues)
    write(out / "CNAME", "news.millbrook.example.org\n")
    write(out / "assets" / "logo.svg", "<svg/>")
    (workspace / "issues" / WINTER / "issue.toml").write_text(
        'subject = "Winter"\narchive = false\n', encoding="utf-8"
    )
    result = write_archive(two_issues)
    assert result.removed == [WINTER]
    assert not (out / WINTER).exists()
    assert (out / "CNAME").read_text() == "news.millbrook.example.org\n"
    assert (out / "assets" / "logo.svg").read_text() == "<svg/>"


@pytest.mark.parametrize(
    "key", [".", "..", "../victim", "/tmp/elsewhere", ".hidden", "a/b", "a\\b"]
)
def test_a_state_file_naming_no_issue_folder_removes_nothing(
    workspace: Path, two_issues: Settings, tmp_path: Path, key: str
) -> None:
    """The state may come from git: a key that is not one folder name is ignored."""
    out = default_archive_dir(two_issues)
    write_archive(two_issues)
    write(out / "CNAME", "news.millbrook.example.org\n")
    victim = write(tmp_path / "victim" / "keep.txt", "mine")
    state = json.loads((out / STATE_FILE).read_text())
    state["issues"][key] = {"fingerprint": "x", "archived": True, "entry": {}}
    (out / STATE_FILE).write_text(json.dumps(state))
    assert key not in read_state(out)
    before = contents(out)
    result = CliRunner().invoke(app, ["--workspace", str(workspace), "archive"])
    assert result.exit_code == 0, result.output
    assert (out / "CNAME").read_text() == "news.millbrook.example.org\n"
    assert victim.read_text() == "mine" and (out / "index.html").is_file()
    assert {k: v for k, v in contents(out).items() if k != STATE_FILE} == {
        k: v for k, v in before.items() if k != STATE_FILE
    }


# --- bad input ---------------------------------------------------------------------------------


def test_an_issue_that_fails_to_build_leaves_the_archive_as_it_was(
    workspace: Path, two_issues: Settings
) -> None:
    out = default_archive_dir(two_issues)
    write_archive(two_issues)
    before = snapshot(out)
    write(workspace / "issues" / WINTER / "article.md", "---\ntitle: x\ncolour: red\n---\nText\n")
    result = CliRunner().invoke(app, ["--workspace", str(workspace), "archive"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert (
        lines[0].startswith("Error: ")
        and f"{WINTER}/article.md:3: unknown front-matter key 'colour'" in lines[0]
    )
    assert lines[-1] == f"Error: nothing written: {out} is as it was"
    assert "Traceback" not in result.output
    assert snapshot(out) == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".archive.")]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [STATE_FILE]


def test_an_output_folder_that_is_a_file_is_refused(settings: Settings, tmp_path: Path) -> None:
    target = write(tmp_path / "site", "a file")
    with pytest.raises(ContentError, match=r"site: is a file; the archive is written to a folder"):
        write_archive(settings, target, include_unsent=True)
    assert target.read_text() == "a file"


def test_a_folder_of_other_files_is_not_taken_over(settings: Settings, tmp_path: Path) -> None:
    write(tmp_path / "home" / "notes.txt", "mine")
    with pytest.raises(ContentError, match=r"home: holds files but no archive"):
        write_archive(settings, tmp_path / "home", include_unsent=True)
    assert (tmp_path / "home" / "notes.txt").read_text() == "mine"


def test_an_output_folder_that_cannot_be_written_is_one_line(
    two_issues: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "public"
    write_archive(two_issues, out)
    before = snapshot(out)
    (two_issues.issues_dir / WINTER / "article.md").write_text(WINTER_ARTICLE + "\nMore.\n")
    build_issue(two_issues, two_issues.issues_dir / WINTER)  # only the archive is refused

    def refused(path: os.PathLike[str] | str, *args: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(archive_folder.os, "mkdir", refused)
    with pytest.raises(ContentError) as info:
        write_archive(two_issues, out)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert message.startswith("cannot write the archive: ") and "Permission denied" in message
    monkeypatch.undo()
    assert snapshot(out) == before


def test_a_first_run_that_fails_leaves_nothing(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(archive_folder, "_write_new", full)
    with pytest.raises(ContentError, match="No space left on device"):
        write_archive(settings, tmp_path / "public", include_unsent=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]


def test_a_full_disk_while_writing_an_issue_leaves_its_old_folder(
    two_issues: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = default_archive_dir(two_issues)
    write_archive(two_issues)
    before = snapshot(out)
    (two_issues.issues_dir / WINTER / "article.md").write_text(WINTER_ARTICLE + "\nMore.\n")

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(archive_folder, "_write_new", full)
    with pytest.raises(ContentError, match="No space left on device"):
        write_archive(two_issues)
    assert snapshot(out) == before  # the state file too: the next run tries again
    monkeypatch.undo()
    assert write_archive(two_issues).written == [WINTER]


# --- templates and the command ---------------------------------------------------------------


def test_a_workspace_template_overrides_the_default(workspace: Path, settings: Settings) -> None:
    write(
        workspace / "templates" / "archive" / "index.html",
        '{% extends "archive/base.html" %}{% block main %}<h1>Back issues</h1>{% endblock %}',
    )
    write_archive(settings, include_unsent=True)
    index = page(default_archive_dir(settings) / "index.html")
    assert index.xpath("//h1")[0].text_content() == "Back issues"
    assert index.xpath("//header//a[@class='subscribe']/@href") == [f"{SITE}subscribe"]


def test_a_mistake_in_the_index_template_leaves_the_archive_as_it_was(
    workspace: Path, two_issues: Settings
) -> None:
    out = default_archive_dir(two_issues)
    write_archive(two_issues)
    before = snapshot(out)
    (two_issues.issues_dir / WINTER / "article.md").write_text(WINTER_ARTICLE + "\nMore.\n")
    write(workspace / "templates" / "archive" / "index.html", "{% for %}\n")
    with pytest.raises(ContentError, match=r"templates/archive/index.html:1: "):
        write_archive(two_issues)
    assert snapshot(out) == before


def test_a_template_mistake_names_the_file_and_line(workspace: Path, settings: Settings) -> None:
    write(workspace / "templates" / "archive" / "index.html", "<p>\n{{ nonsense.here }}</p>\n")
    with pytest.raises(
        ContentError, match=r"templates/archive/index.html:2: 'nonsense' is undefined"
    ):
        write_archive(settings, include_unsent=True)


def test_the_command_reports_what_it_wrote(
    workspace: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)
    runner = CliRunner()
    args = [
        "--workspace",
        str(workspace),
        "archive",
        "--include-unsent",
        "--out",
        str(workspace / "site"),
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert f"wrote site/{EXAMPLE}/index.html\n" in first.stdout
    assert "1 issues (0 unchanged)" in first.stdout
    second = runner.invoke(app, args)
    assert "wrote" not in second.stdout and "1 issues (1 unchanged)" in second.stdout
    plain = runner.invoke(app, ["--workspace", str(workspace), "archive"])
    assert "0 issues" in plain.stdout and "1 not sent yet" in plain.stdout


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_state_file_reads_as_some_state_or_none(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as name:
        (Path(name) / STATE_FILE).write_bytes(data)
        state = read_state(Path(name))
    assert isinstance(state, dict)
    assert all(isinstance(r.fingerprint, str) for r in state.values())


@pytest.mark.parametrize(
    "text",
    [
        '{"version": 1, "issues": {"a": {"fingerprint": "x", "archived": true, "entry": []}}}',
        '{"version": 1, "issues": []}',
        '{"version": 2, "issues": {}}',
        "[]",
    ],
)
def test_a_state_file_of_another_shape_means_start_afresh(tmp_path: Path, text: str) -> None:
    (tmp_path / STATE_FILE).write_text(text)
    assert read_state(tmp_path) == {}
