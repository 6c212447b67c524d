"""`newsletter check`: the example is clean, and each rule fires alone on an issue broken for it.

Every case below starts from a copy of the example workspace and breaks one thing, the
way an editor would (an article, issue.toml, newsletter.toml, a template of their own),
or, for what the pipeline itself never produces (a relative link, a header gone), the
build's own files after a build. Then exactly that rule, and no other, must fire.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from newsletter.checks import RULES, Severity, check_issue
from newsletter.checks.spam import parse_status
from newsletter.cli import app
from newsletter.compose.build import build_issue
from newsletter.config import load_settings
from newsletter.workspace import default_templates_dir

from conftest import EXAMPLE, write

runner = CliRunner()
Breaker = Callable[[Path], None]


def issue_of(root: Path) -> Path:
    return root / "issues" / EXAMPLE


def edit(path: Path, old: str | re.Pattern[str], new: str) -> None:
    """Replace `old` in `path`, which must be there: a test that breaks nothing fails."""
    text = path.read_text(encoding="utf-8")
    if isinstance(old, re.Pattern):
        changed, count = old.subn(new, text, count=1)
    else:
        changed, count = text.replace(old, new, 1), text.count(old)
    assert count, f"{old!r} not in {path}"
    path.write_text(changed, encoding="utf-8")


def setting(root: Path, key: str, value: str | None) -> None:
    """Set (or with None, remove) a top-level key of newsletter.toml."""
    pattern = re.compile(rf"^{re.escape(key)} = .*\n", re.MULTILINE)
    edit(root / "newsletter.toml", pattern, "" if value is None else f"{key} = {value}\n")


def own_template(root: Path, name: str, old: str | re.Pattern[str], new: str) -> None:
    """The workspace's own copy of a default template, with one change."""
    target = write(root / "templates" / name, (default_templates_dir() / name).read_text())
    edit(target, old, new)


def append(root: Path, article: str, text: str) -> None:
    path = issue_of(root) / article
    path.write_text(path.read_text(encoding="utf-8") + "\n" + text + "\n", encoding="utf-8")


def issue_key(root: Path, key: str, value: str | None) -> None:
    pattern = re.compile(rf"^{key} = .*\n", re.MULTILINE)
    edit(issue_of(root) / "issue.toml", pattern, "" if value is None else f"{key} = {value}\n")


def built(root: Path, name: str, old: str | re.Pattern[str], new: str) -> None:
    """Build, then change one of the build's files (the build stays current)."""
    build_issue(load_settings(root, environ={}), issue_of(root))
    edit(root / "build" / EXAMPLE / name, old, new)


def long_read(root: Path) -> None:
    paragraph = "The council met again to talk about the river and the weir. " * 20
    write(issue_of(root) / "long-read.md", "# A long read\n\n" + f"{paragraph}\n\n" * 100)
    edit(
        issue_of(root) / "issue.toml",
        '"flood-defences.html",',
        '"flood-defences.html", "long-read.md",',
    )


def big_style(root: Path) -> None:
    rules = "".join(f".spare-{n} {{ color: #1f2328; }}\n" for n in range(700))
    own_template(
        root,
        "email.html",
        '<style data-premailer="ignore">\n',
        f'<style data-premailer="ignore">\n{rules}',
    )


CASES: dict[str, Breaker] = {
    "placeholder-sender": lambda r: setting(r, "from", '"Millbrook <news@example.org>"'),
    "placeholder-site": lambda r: setting(r, "site_url", '"https://example.org/"'),
    "placeholder-address": lambda r: setting(
        r, "postal_address", '"Street, Town, Postcode, Country"'
    ),
    "gmail-clip": long_read,
    "style-too-big": big_style,
    "image-alt": lambda r: append(
        r, "library-reopens.md", '<img src="https://millbrook.example.org/b.png" width="300">'
    ),
    "image-width": lambda r: append(
        r, "library-reopens.md", "![A chart](https://millbrook.example.org/chart.png)"
    ),
    "image-relative": lambda r: built(
        r, "email.html", 'src="https://millbrook.example.org/archive/', 'src="archive/'
    ),
    "image-insecure": lambda r: edit(
        issue_of(r) / "library-reopens.md",
        "image: library-reading-room.jpg",
        "image: http://photos.millbrook.example.org/reading-room.jpg",
    ),
    "link-relative": lambda r: built(
        r, "email.html", 'href="https://millbrook.example.org/library/rooms"', 'href="rooms"'
    ),
    "link-insecure": lambda r: edit(
        issue_of(r) / "issue.toml",
        "(https://millbrook.example.org/flood-plan)",
        "(http://millbrook.example.org/flood-plan)",
    ),
    "unsubscribe-link": lambda r: own_template(
        r, "email.html", '<a href="{{ unsubscribe_url }}">Unsubscribe</a> &middot; ', ""
    ),
    "list-unsubscribe": lambda r: built(
        r, "email.eml", "List-Unsubscribe-Post: List-Unsubscribe=One-Click\n", ""
    ),
    "postal-address": lambda r: setting(r, "postal_address", None),
    "sender-identity": lambda r: setting(r, "from", '"bulletin@millbrook.example.org"'),
    "subject-long": lambda r: issue_key(r, "subject", '"' + "Millbrook news " * 7 + '"'),
    "preheader-missing": lambda r: issue_key(r, "preheader", None),
    "preheader-repeats-subject": lambda r: issue_key(
        r, "preheader", '"Millbrook in November: the library reopens"'
    ),
    "placeholder-text": lambda r: append(r, "library-reopens.md", "Opening times: TK."),
    "template-leftover": lambda r: append(r, "library-reopens.md", "The braces {{ stay here."),
    "lang-missing": lambda r: own_template(
        r, "email.html", '<html lang="{{ newsletter.language }}"', "<html"
    ),
    "heading-order": lambda r: append(r, "library-reopens.md", "#### Parking\n\nIn the square."),
    "contrast": lambda r: own_template(
        r, "email.html", re.compile(r"(\.byline \{[^}]*color: )#[0-9a-fA-F]{6}"), r"\g<1>#a3a3a3"
    ),
    "text-missing": lambda r: write(r / "templates" / "email.txt", "\n"),
    "text-short": lambda r: write(
        r / "templates" / "email.txt",
        "{{ newsletter.name }}\n\nUnsubscribe: {{ unsubscribe_url }}\n"
        "{{ newsletter.postal_address }}\n",
    ),
    "css-unsupported": lambda r: own_template(
        r, "email.html", ".masthead-name {", ".masthead-name { text-shadow: 0 1px 0 #ffffff;"
    ),
}
# Rules that need the network or SpamAssassin have tests of their own.
ELSEWHERE = {"image-broken", "link-broken", "link-slow", "spam-score"}


def test_every_rule_has_a_case() -> None:
    assert set(CASES) | ELSEWHERE == set(RULES)


def test_the_example_issue_is_clean(workspace: Path) -> None:
    result = runner.invoke(app, ["--workspace", str(workspace), "check", "welcome", "--strict"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{EXAMPLE}: no errors, no warnings"


@pytest.mark.parametrize("rule", sorted(CASES))
def test_a_broken_issue_makes_its_rule_fire_alone(workspace: Path, rule: str) -> None:
    CASES[rule](workspace)
    report = check_issue(load_settings(workspace, environ={}), issue_of(workspace))
    assert {f.rule for f in report.findings} == {rule}, [str(f) for f in report.findings]
    for finding in report.findings:
        assert finding.severity is RULES[rule].severity
        place = finding.place  # a line or a selector, or the file where a thing is missing
        assert (workspace / place.file).is_file()
        if place.line is not None:
            assert place.line <= len((workspace / place.file).read_text().splitlines())


def test_places_are_lines_in_sources_and_selectors_in_the_html(workspace: Path) -> None:
    append(workspace, "library-reopens.md", "Opening times: TK.")
    append(workspace, "library-reopens.md", '<img src="https://millbrook.example.org/b.png">')
    report = check_issue(load_settings(workspace, environ={}), issue_of(workspace))
    lines = (issue_of(workspace) / "library-reopens.md").read_text().splitlines()
    tk = next(f for f in report.findings if f.rule == "placeholder-text")
    assert tk.place.file == f"issues/{EXAMPLE}/library-reopens.md"
    assert tk.place.line is not None and "TK" in lines[tk.place.line - 1]
    alt = next(f for f in report.findings if f.rule == "image-alt")
    from lxml import html as lxml_html

    doc = lxml_html.document_fromstring((workspace / alt.place.file).read_text())
    (img,) = doc.cssselect(alt.place.selector)
    assert img.get("src") == "https://millbrook.example.org/b.png" and img.get("alt") is None


def test_an_empty_subject_does_not_build(workspace: Path) -> None:
    issue_key(workspace, "subject", '" "')
    result = runner.invoke(app, ["--workspace", str(workspace), "check", "welcome"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "issue.toml" in result.stderr
    assert "subject" in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_missing_local_image_does_not_build(workspace: Path) -> None:
    edit(
        issue_of(workspace) / "library-reopens.md",
        "image: library-reading-room.jpg",
        "image: reading-room.jpg",
    )
    result = runner.invoke(app, ["--workspace", str(workspace), "check", "welcome"])
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert "library-reopens.md:" in result.stderr and "reading-room.jpg" in result.stderr


def test_init_workspace_fails_on_its_placeholders(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", str(tmp_path / "ws")]).exit_code == 0
    result = runner.invoke(app, ["--workspace", str(tmp_path / "ws"), "check", "welcome"])
    assert result.exit_code == 1
    fired = re.findall(r"^newsletter\.toml:\d+: error ([a-z-]+):", result.stdout, re.MULTILINE)
    assert sorted(fired) == ["placeholder-address", "placeholder-sender", "placeholder-site"]


def test_warnings_fail_only_with_strict(workspace: Path) -> None:
    issue_key(workspace, "preheader", None)
    args = ["--workspace", str(workspace), "check", "welcome"]
    plain = runner.invoke(app, args)
    assert plain.exit_code == 0 and "warning preheader-missing" in plain.stdout
    assert plain.stdout.splitlines()[-1] == f"{EXAMPLE}: 0 errors, 1 warning"
    assert runner.invoke(app, [*args, "--strict"]).exit_code == 1


def test_check_builds_first_when_the_sources_changed(workspace: Path) -> None:
    build_issue(load_settings(workspace, environ={}), issue_of(workspace))
    append(workspace, "library-reopens.md", "Opening times: TK.")
    result = runner.invoke(app, ["--workspace", str(workspace), "check", "welcome"])
    assert result.exit_code == 1 and "TK" in result.stdout
    assert "TK" in (workspace / "build" / EXAMPLE / "email.txt").read_text()


SCHEMA = {
    "type": "object",
    "required": ["issue", "errors", "warnings", "findings", "notes"],
    "additionalProperties": False,
    "properties": {
        "issue": {"type": "string"},
        "errors": {"type": "integer", "minimum": 0},
        "warnings": {"type": "integer", "minimum": 0},
        "notes": {"type": "array", "items": {"type": "string"}},
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "severity", "message", "file", "line", "selector"],
                "properties": {
                    "id": {"enum": sorted(RULES)},
                    "severity": {"enum": ["error", "warning"]},
                    "message": {"type": "string", "minLength": 1},
                    "file": {"type": "string", "minLength": 1},
                    "line": {"type": ["integer", "null"], "minimum": 1},
                    "selector": {"type": ["string", "null"]},
                },
            },
        },
    },
}


def test_json_output_follows_its_schema(workspace: Path) -> None:
    setting(workspace, "postal_address", '"Street, Town, Postcode, Country"')
    issue_key(workspace, "preheader", None)
    result = runner.invoke(app, ["--workspace", str(workspace), "check", "welcome", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    jsonschema.validate(data, SCHEMA)
    assert (data["errors"], data["warnings"]) == (1, 1)
    first, second = data["findings"]
    assert first["id"] == "placeholder-address" and first["file"] == "newsletter.toml"
    assert first["line"] == 7 and first["selector"] is None
    assert second["id"] == "preheader-missing" and second["severity"] == "warning"


def test_an_environment_variable_is_named_as_the_place(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_FROM", "news@example.com")
    result = runner.invoke(app, ["--workspace", str(workspace), "check", "welcome", "--json"])
    findings = json.loads(result.stdout)["findings"]
    assert {(f["id"], f["file"]) for f in findings} == {
        ("placeholder-sender", "environment variable NEWSLETTER_FROM"),
        ("sender-identity", "environment variable NEWSLETTER_FROM"),
    }


# --- send and send-test -----------------------------------------------------------------------


def test_send_refuses_an_issue_with_errors_and_force_sends_it(workspace: Path) -> None:
    append(workspace, "library-reopens.md", "Opening times: TK.")
    args = ["--workspace", str(workspace)]
    assert runner.invoke(app, [*args, "subscribers", "add", "ana@example.net"]).exit_code == 0
    refused = runner.invoke(app, [*args, "send", "welcome", "--yes"])
    assert refused.exit_code == 1
    assert re.search(
        r"^Error: issues/\S+/library-reopens\.md:\d+: placeholder-text: ", refused.stderr, re.M
    )
    assert all(line.startswith("Error: ") for line in refused.stderr.splitlines())
    assert "pass --force" in refused.stderr.splitlines()[-1]
    outbox = workspace / ".newsletter" / "outbox" / EXAMPLE
    assert not outbox.exists()
    forced = runner.invoke(app, [*args, "send", "welcome", "--yes", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "placeholder-text" in forced.stderr
    assert len(list(outbox.glob("*.eml"))) == 1


def test_a_literal_token_in_an_article_is_text_not_a_leftover(workspace: Path) -> None:
    """compose.personalize leaves "x-newsletter:email" in an article as written, on purpose."""
    append(workspace, "library-reopens.md", "Write to x-newsletter:email.")
    report = check_issue(load_settings(workspace, environ={}), issue_of(workspace))
    assert report.findings == ()


def test_send_test_shows_findings_and_sends(workspace: Path) -> None:
    append(workspace, "library-reopens.md", "Opening times: TK.")
    issue_key(workspace, "preheader", None)
    result = runner.invoke(
        app, ["--workspace", str(workspace), "send-test", "welcome", "--to", "me@example.net"]
    )
    assert result.exit_code == 0, result.output
    assert "Error: issues/" in result.stderr and ": placeholder-text: " in result.stderr
    assert f"Warning: issues/{EXAMPLE}/issue.toml: preheader-missing: " in result.stderr
    assert result.stdout.startswith("sent ")


# --- --spam -----------------------------------------------------------------------------------


def test_spam_without_spamassassin_says_so_and_goes_on(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = runner.invoke(app, ["--workspace", str(workspace), "check", "welcome", "--spam"])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == (
        "Note: SpamAssassin is not installed (no spamassassin on PATH); --spam skipped"
    )


def fake_spamassassin(folder: Path, score: float) -> None:
    """A `spamassassin` that answers like `spamassassin --local --test-mode`."""
    script = folder / "spamassassin"
    script.write_text(
        "#!/bin/sh\ncat > /dev/null\n"
        f"printf 'X-Spam-Flag: YES\\nX-Spam-Status: Yes, score={score} required=5.0\\n"
        "\\ttests=HTML_MESSAGE,MIME_HTML_ONLY\\n\\tautolearn=no version=4.0.1\\n\\nbody\\n'\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(("score", "fires"), [(7.5, True), (1.2, False)])
def test_spam_score_from_spamassassin(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, score: float, fires: bool
) -> None:
    fake_spamassassin(tmp_path, score)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    report = check_issue(load_settings(workspace, environ={}), issue_of(workspace), spam=True)
    assert report.notes == (f"SpamAssassin score {score:g} (spam from 5)",)
    found = [f for f in report.findings if f.rule == "spam-score"]
    assert bool(found) is fires
    if fires:
        assert found[0].severity is Severity.ERROR
        assert "HTML_MESSAGE,MIME_HTML_ONLY" in found[0].message


def test_spamassassin_status_is_read_across_folded_lines() -> None:
    status = parse_status(
        "X-Spam-Status: No, score=-0.1 required=5.0 tests=A,\n\tB autolearn=ham\n"
    )
    assert status is not None and (status.score, status.required, status.tests) == (
        -0.1,
        5.0,
        "A, B",
    )
    assert parse_status("Subject: hello\n") is None
