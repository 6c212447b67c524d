"""The build records what it was made from; load_built rebuilds when that changed.

Modification times cannot tell: a deleted article leaves nothing newer behind, `cp -p`
brings back an older time, and a setting in the environment has no time at all.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from newsletter.compose import build as build_module
from newsletter.compose.build import build_issue, load_built
from newsletter.compose.sources import OUTPUT_SETTINGS, UNUSED_SETTINGS
from newsletter.config import Settings, load_settings

from conftest import EXAMPLE, write

PAST = 1_000_000_000  # 2001: older than any build


def list_no_articles(issue_dir: Path) -> None:
    toml = issue_dir / "issue.toml"
    text = re.sub(r"articles = \[[^\]]*\]", "articles = []", toml.read_text())
    toml.write_text(text)


def test_deleted_article_is_noticed(settings: Settings, issue_dir: Path) -> None:
    list_no_articles(issue_dir)
    build_issue(settings, issue_dir)
    (issue_dir / "library-reopens.md").unlink()
    _, rendered = load_built(settings, issue_dir)
    assert "The library reopens" not in rendered.html
    assert "flood plan, street by street" in rendered.html


def test_older_copy_of_an_article_is_noticed(
    settings: Settings, issue_dir: Path, tmp_path: Path
) -> None:
    article = issue_dir / "library-reopens.md"
    older = tmp_path / "older.md"
    shutil.copy2(article, older)
    older.write_text(older.read_text().replace("longer hours", "the OLD hours"))
    os.utime(older, (PAST, PAST))
    build_issue(settings, issue_dir)
    shutil.copy2(older, article)  # cp -p: the content changes, the time goes back
    assert article.stat().st_mtime == PAST
    _, rendered = load_built(settings, issue_dir)
    assert "the OLD hours" in rendered.html


def test_older_copy_of_a_template_is_noticed(settings: Settings, issue_dir: Path) -> None:
    template = write(settings.templates_dir / "email.txt", "First {{ issue.subject }}\n")
    build_issue(settings, issue_dir)
    template.write_text("Second {{ issue.subject }}\n")
    os.utime(template, (PAST, PAST))
    _, rendered = load_built(settings, issue_dir)
    assert rendered.text.startswith("Second ")


def test_a_new_workspace_template_overriding_a_default_is_noticed(
    settings: Settings, issue_dir: Path
) -> None:
    build_issue(settings, issue_dir)
    template = write(settings.templates_dir / "email.txt", "Override {{ issue.subject }}\n")
    os.utime(template, (PAST, PAST))
    _, rendered = load_built(settings, issue_dir)
    assert rendered.text.startswith("Override ")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NEWSLETTER_SITE_URL", "https://elsewhere.example.net/"),
        ("NEWSLETTER_POSTAL_ADDRESS", "1 New Street, Othertown"),
        ("NEWSLETTER_NAME", "The Renamed Bulletin"),
        ("NEWSLETTER_ARCHIVE_URL", "https://archive.example.net/issues/"),
    ],
)
def test_changed_setting_in_the_environment_is_noticed(
    workspace: Path, settings: Settings, issue_dir: Path, variable: str, value: str
) -> None:
    build_issue(settings, issue_dir)
    changed = load_settings(workspace, environ={variable: value})
    _, rendered = load_built(changed, issue_dir)
    assert value in rendered.html
    data = json.loads((settings.build_dir / EXAMPLE / "rendered.json").read_text())
    assert value in data["html"]  # and the build on disk is today's


def test_unchanged_sources_are_not_rebuilt(
    settings: Settings, issue_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = build_issue(settings, issue_dir).rendered
    assert re.fullmatch(r"[0-9a-f]{64}", built.source_hash)
    monkeypatch.setattr(build_module, "build_issue", _no_build)
    for path in issue_dir.iterdir():  # touching is not changing
        os.utime(path)
    _, loaded = load_built(settings, issue_dir)
    assert loaded.source_hash == built.source_hash
    assert (loaded.html, loaded.text, loaded.subject) == (built.html, built.text, built.subject)


def _no_build(*args: object, **kwargs: object) -> object:
    raise AssertionError("rebuilt although nothing changed")


def test_same_sources_give_the_same_hash_and_bytes(settings: Settings, issue_dir: Path) -> None:
    first = build_issue(settings, issue_dir).rendered
    second = build_issue(settings, issue_dir).rendered
    assert first.source_hash == second.source_hash and first.html == second.html


def test_a_broken_or_old_manifest_is_rebuilt(settings: Settings, issue_dir: Path) -> None:
    build_issue(settings, issue_dir)
    manifest = settings.build_dir / EXAMPLE / "rendered.json"
    data = json.loads(manifest.read_text())
    del data["source_hash"]  # written by an older version
    manifest.write_text(json.dumps(data))
    _, rendered = load_built(settings, issue_dir)
    assert rendered.source_hash
    manifest.write_text('{"subject": "trunc')
    _, rendered = load_built(settings, issue_dir)
    assert rendered.source_hash and "Millbrook" in rendered.subject


def test_every_setting_is_either_hashed_or_known_not_to_matter() -> None:
    names = {f.name for f in dataclasses.fields(Settings)}
    assert names == set(OUTPUT_SETTINGS) | set(UNUSED_SETTINGS)
    assert not set(OUTPUT_SETTINGS) & set(UNUSED_SETTINGS)


def test_adding_an_optional_template_is_noticed(settings: Settings, issue_dir: Path) -> None:
    write(
        settings.templates_dir / "email.txt",
        '{{ issue.subject }}\n{% include "extra.txt" ignore missing %}\n',
    )
    build_issue(settings, issue_dir)
    extra = write(settings.templates_dir / "extra.txt", "An extra line\n")
    os.utime(extra, (PAST, PAST))
    _, rendered = load_built(settings, issue_dir)
    assert "An extra line" in rendered.text


def test_a_deleted_workspace_template_falls_back_to_the_default(
    settings: Settings, issue_dir: Path
) -> None:
    template = write(settings.templates_dir / "email.txt", "Mine {{ issue.subject }}\n")
    build_issue(settings, issue_dir)
    template.unlink()
    _, rendered = load_built(settings, issue_dir)
    assert not rendered.text.startswith("Mine ") and "Millbrook" in rendered.text
