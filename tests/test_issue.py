from __future__ import annotations

import datetime as dt
import tomllib
import unicodedata
from pathlib import Path

import pytest

from newsletter.compose.issue import add_articles, load_issue, new_issue, resolve_issue
from newsletter.config import Settings
from newsletter.errors import ContentError

from conftest import EXAMPLE, SAMPLE_ARTICLE, write


def test_example_issue_loads(settings: Settings, issue_dir: Path) -> None:
    issue = load_issue(issue_dir, settings)
    assert issue.key == EXAMPLE
    assert [a.source.suffix for a in issue.articles] == [".md", ".txt", ".html"]
    assert issue.date == dt.date(2026, 11, 26)


def test_resolve_by_slug_path_and_folder_name(settings: Settings, issue_dir: Path) -> None:
    assert resolve_issue(settings, "welcome") == issue_dir.resolve()
    assert resolve_issue(settings, EXAMPLE) == issue_dir.resolve()
    assert resolve_issue(settings, str(issue_dir)) == issue_dir.resolve()
    with pytest.raises(ContentError, match="issue 'nope' not found"):
        resolve_issue(settings, "nope")


def test_ambiguous_slug(settings: Settings) -> None:
    new_issue(settings, "welcome", date=dt.date(2027, 1, 1))
    with pytest.raises(ContentError, match="ambiguous"):
        resolve_issue(settings, "welcome")


def test_missing_article_and_subject_line_break(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "issues" / "2026-01-01-x"
    write(folder / "issue.toml", 'subject = "Hi\\nBcc: all@example.org"\narticles = ["gone.md"]\n')
    with pytest.raises(ContentError) as info:
        load_issue(folder, settings)
    text = str(info.value)
    assert "key 'subject' must be one line" in text
    assert f"article 'gone.md' not found in {folder}" in text


def test_unknown_key_and_bad_date(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "i"
    write(folder / "issue.toml", 'subject = "S"\ndate = "someday"\nsubjekt = "typo"\n')
    write(folder / "a.md", "# A\n\nText\n")
    with pytest.raises(ContentError) as info:
        load_issue(folder, settings)
    assert "unknown key 'subjekt'" in str(info.value)
    assert "key 'date': 'someday' is not a date" in str(info.value)


def test_articles_in_name_order_when_none_listed(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "i"
    write(folder / "issue.toml", 'subject = "S"\n')
    write(folder / "b.md", "# B\n")
    write(folder / "a.txt", "A\n\nText\n")
    write(folder / "notes.docx", "ignored")
    issue = load_issue(folder, settings)
    assert [a.title for a in issue.articles] == ["A", "B"]


def test_article_outside_folder_refused(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "i"
    write(tmp_path / "secret.md", "# S\n")
    write(folder / "issue.toml", 'subject = "S"\narticles = ["../secret.md"]\n')
    with pytest.raises(ContentError, match="must be inside the issue folder"):
        load_issue(folder, settings)


def test_new_issue(settings: Settings) -> None:
    folder = new_issue(settings, "spring-update", "Spring: what’s new", dt.date(2027, 3, 1))
    assert folder.name == "2027-03-01-spring-update"
    data = tomllib.loads((folder / "issue.toml").read_text())
    assert data["subject"] == "Spring: what’s new" and data["date"] == dt.date(2027, 3, 1)
    with pytest.raises(ContentError, match="already exists"):
        new_issue(settings, "spring-update", date=dt.date(2027, 3, 1))
    with pytest.raises(ContentError, match="lowercase letters"):
        new_issue(settings, "Bad Slug")


def test_add_imports_and_appends(settings: Settings, issue_dir: Path, tmp_path: Path) -> None:
    toml_before = (issue_dir / "issue.toml").read_text()
    text = write(tmp_path / "in.txt", "Imported title\n\n2 Jan 2026\n\nStand.\n\nBody para.\n")
    page = write(tmp_path / "p.html", "<h1>From HTML</h1><p>Hello <em>there</em></p>")
    written = add_articles(issue_dir, [text, page], settings)
    assert [p.name for p in written] == ["imported-title.md", "from-html.md"]
    data = tomllib.loads((issue_dir / "issue.toml").read_text())
    assert data["articles"][-2:] == ["imported-title.md", "from-html.md"]
    assert data["articles"][:3] == tomllib.loads(toml_before)["articles"]
    issue = load_issue(issue_dir, settings)
    assert [a.title for a in issue.articles][-2:] == ["Imported title", "From HTML"]
    assert issue.articles[-1].body.strip() == "Hello *there*"
    assert issue.articles[-2].date == dt.date(2026, 1, 2)


def test_add_keeps_comments_and_fills_empty_order(settings: Settings) -> None:
    folder = new_issue(settings, "x", date=dt.date(2027, 1, 1))
    write(folder / "b-existing.md", "# Existing\n")
    source = write(folder.parent / "elsewhere.md", "# New one\n")
    add_articles(folder, [source], settings)
    text = (folder / "issue.toml").read_text()
    assert "# Article files in this folder" in text
    assert tomllib.loads(text)["articles"] == ["b-existing.md", "elsewhere.md"]


def test_add_with_a_bad_file_writes_nothing(
    settings: Settings, issue_dir: Path, tmp_path: Path
) -> None:
    before = sorted(p.name for p in issue_dir.iterdir())
    toml_before = (issue_dir / "issue.toml").read_text()
    good = write(tmp_path / "good.txt", "Good\n\nText\n")
    bad = write(tmp_path / "bad.md", "---\ntitle: [\n---\n")
    with pytest.raises(ContentError, match="bad.md"):
        add_articles(issue_dir, [good, bad], settings)
    assert sorted(p.name for p in issue_dir.iterdir()) == before
    assert (issue_dir / "issue.toml").read_text() == toml_before


def test_add_sample(settings: Settings, issue_dir: Path) -> None:
    (written,) = add_articles(issue_dir, [SAMPLE_ARTICLE], settings)
    assert written.name == "why-the-garden-on-mill-street-deserves-a-second-summer.md"
    article = load_issue(issue_dir, settings).articles[-1]
    assert article.author == "Maryam Okafor" and article.date == dt.date(2019, 6, 14)
    assert "Did you enjoy" not in written.read_text()


def test_symlink_out_of_the_folder_refused_when_none_listed(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "i"
    secret = write(tmp_path / "private" / "secret.md", "# Secret\n\nNot for the list.\n")
    write(folder / "issue.toml", 'subject = "S"\narticles = []\n')
    write(folder / "a.md", "# A\n")
    (folder / "b.md").symlink_to(secret)
    with pytest.raises(ContentError, match=r"article 'b\.md' must be inside the issue folder"):
        load_issue(folder, settings)


def test_symlink_inside_the_folder_is_fine(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "i"
    write(folder / "issue.toml", 'subject = "S"\n')
    write(folder / "drafts" / "a.md", "# A\n")
    (folder / "a.md").symlink_to(folder / "drafts" / "a.md")
    assert [a.title for a in load_issue(folder, settings).articles] == ["A"]


@pytest.mark.parametrize(
    "escaped", ["\\u2028", "\\u2029", "\\u0085", "\\u000b", "\\u000c", "\\u001c", "\\u001f"]
)
@pytest.mark.parametrize("key", ["subject", "preheader"])
def test_every_line_break_and_control_character_is_refused(
    settings: Settings, tmp_path: Path, escaped: str, key: str
) -> None:
    folder = tmp_path / "i"
    write(folder / "a.md", "# A\n")
    other = "preheader" if key == "subject" else "subject"
    write(folder / "issue.toml", f'{key} = "Hi{escaped}Bcc: all@example.org"\n{other} = "S"\n')
    with pytest.raises(ContentError, match=rf"issue\.toml: key '{key}' must be one line"):
        load_issue(folder, settings)


@pytest.mark.parametrize("subject", ["Hi\u2028Bcc: x@y.org", "Hi\x85there", "Ring\x07"])
def test_new_refuses_a_subject_that_is_not_one_line(settings: Settings, subject: str) -> None:
    with pytest.raises(ContentError, match="--subject must be one line"):
        new_issue(settings, "x", subject)
    assert not settings.issues_dir.joinpath(f"{dt.date.today()}-x").exists()


def test_new_refuses_a_slug_too_long_for_a_file_name(settings: Settings) -> None:
    with pytest.raises(ContentError, match=r"slug .* at most \d+ characters"):
        new_issue(settings, "a" * 300)


def test_new_turns_a_file_system_error_into_one_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    def refuse(path: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(os, "mkdir", refuse)
    with pytest.raises(ContentError, match="Read-only file system"):
        new_issue(settings, "spring", date=dt.date(2027, 1, 1))


def test_add_turns_a_file_system_error_into_one_line_and_writes_nothing(
    settings: Settings, issue_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from newsletter.compose import issue as issue_module

    before = sorted(p.name for p in issue_dir.iterdir())
    source = write(tmp_path / "in.txt", "Title\n\nText.\n")

    def full(path: Path, data: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(issue_module, "write_atomic", full)
    with pytest.raises(ContentError, match="No space left on device"):
        add_articles(issue_dir, [source], settings)
    assert sorted(p.name for p in issue_dir.iterdir()) == before


def test_control_characters_in_articles_are_stripped_with_a_warning(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "i"
    write(folder / "issue.toml", 'subject = "S"\n')
    write(folder / "a.md", '---\ntitle: "Esc\\e[31mred"\n---\n\nBell\x07 and\x1b[0m reset\x1f.\n')
    write(folder / "b.txt", "Title\x01 here\n\nParagraph\x7f with\x9b junk.\n")
    write(folder / "c.html", "<h1>Page\x1b</h1><p>Some\x0b text&#27; here</p>")
    issue = load_issue(folder, settings)
    text = "".join(
        str(getattr(a, f) or "") for a in issue.articles for f in ("title", "body", "summary")
    )
    assert not any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in text)
    assert [a.title for a in issue.articles] == ["Esc[31mred", "Title here", "Page"]
    assert len(issue.warnings) == 3
    assert all("control character" in w for w in issue.warnings)
    assert any(w.startswith(f"{folder / 'b.txt'}:1:") for w in issue.warnings)


# --- hostile names and paths: one line each (issue 9) ---------------------------------------


@pytest.mark.parametrize("breaker", ["\u2028", "\u2029", "\x85"])
def test_add_writes_articles_that_build_whatever_line_breaks_they_hold(
    settings: Settings, issue_dir: Path, tmp_path: Path, breaker: str
) -> None:
    """`add` wrote a title holding U+2028/U+2029 that the build then refused."""
    text = write(tmp_path / "a.txt", f"Line{breaker}sep{breaker}title\n\nBody.\n")
    page = write(tmp_path / "b.html", f"<h1>Para{breaker}sep</h1><p>Line{breaker}sep</p>")
    written = add_articles(issue_dir, [text, page], settings)
    issue = load_issue(issue_dir, settings)
    titles = {a.source.name: a.title for a in issue.articles}
    assert [titles[p.name] for p in written] == ["Line sep title", "Para sep"]


def test_new_quotes_a_slug_with_a_line_break(settings: Settings) -> None:
    """A slug's raw line break made one problem two Error lines."""
    with pytest.raises(ContentError) as info:
        new_issue(settings, "a\nb")
    assert str(info.value).splitlines() == [
        "slug 'a\\nb' must be lowercase letters, digits and hyphens, e.g. spring-update"
    ]
    with pytest.raises(ContentError) as info:
        new_issue(settings, "a\u2028" * 100)
    assert len(str(info.value).splitlines()) == 1 and "\\u2028" in str(info.value)


def test_resolve_issue_with_a_name_too_long_for_a_file_name(settings: Settings) -> None:
    """OSError "File name too long" escaped resolve_issue as a traceback."""
    with pytest.raises(ContentError) as info:
        resolve_issue(settings, "a" * 300)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "File name too long" in message
    assert "aaaa" in message and len(message) < 300


def test_resolve_issue_quotes_a_name_with_a_line_break(settings: Settings) -> None:
    with pytest.raises(ContentError) as info:
        resolve_issue(settings, "wel\ncome")
    assert len(str(info.value).splitlines()) == 1 and "wel\\ncome" in str(info.value)


def test_a_listed_article_that_is_a_symlink_loop_is_one_problem(
    settings: Settings, issue_dir: Path
) -> None:
    """RuntimeError "Symlink loop" from Path.resolve escaped the build."""
    (issue_dir / "loop.md").symlink_to("loop.md")
    toml = issue_dir / "issue.toml"
    toml.write_text(toml.read_text().replace('.html",\n]', '.html",\n    "loop.md",\n]'))
    with pytest.raises(ContentError) as info:
        load_issue(issue_dir, settings)
    assert str(info.value).splitlines() == [
        f"{toml}: article 'loop.md' cannot be read: Too many levels of symbolic links"
    ]
