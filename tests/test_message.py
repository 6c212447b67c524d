"""The message's headers, as mail programs and providers parse them."""

from __future__ import annotations

import dataclasses
import email
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from newsletter.compose.build import build_issue
from newsletter.compose.message import build_message, message_id, to_bytes, to_mime
from newsletter.compose.personalize import Recipient
from newsletter.compose.render import Rendered
from newsletter.config import Settings, load_settings

from conftest import EXAMPLE

RENDERED = Rendered(subject="Hello", html="<p>x-newsletter:email</p>", text="x-newsletter:email")
ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"  # RFC 5322 atext
LONG_URL = "https://example.org/unsubscribe?token=" + "a1B2c3D4" * 25  # 239 characters


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def header_lines(raw: bytes, name: str) -> list[str]:
    """The raw lines of one header: its first line and its continuation lines."""
    head = raw.partition(b"\r\n\r\n")[0].decode("ascii").split("\r\n")
    start = next(i for i, line in enumerate(head) if line.lower().startswith(name.lower() + ":"))
    end = start + 1
    while end < len(head) and head[end][:1] in (" ", "\t"):
        end += 1
    return head[start:end]


MAILTO = "mailto:unsubscribe@millbrook.example.org?subject=unsubscribe"


@pytest.fixture
def with_mailto(settings: Settings) -> Settings:
    return dataclasses.replace(settings, unsubscribe_mailto=MAILTO)


def test_list_unsubscribe_has_no_mailto_unless_configured(settings: Settings) -> None:
    assert settings.unsubscribe_mailto == ""
    reader = Recipient(email="a@b.org", unsubscribe_url="https://e.org/u?t=1")
    raw = to_bytes(to_mime(build_message(settings, EXAMPLE, RENDERED, reader)))
    assert parse(raw)["List-Unsubscribe"] == "<https://e.org/u?t=1>"
    assert parse(raw)["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_unsubscribe_mailto_setting_adds_the_mailto_part(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text(
        'name = "N"\nfrom = "n@example.org"\nsite_url = "https://example.org/"\n'
        'unsubscribe_mailto = "leave@example.org"\n'
    )
    loaded = load_settings(tmp_path, environ={})
    assert loaded.unsubscribe_mailto == "mailto:leave@example.org?subject=unsubscribe"


def test_long_list_unsubscribe_stays_plain(with_mailto: Settings) -> None:
    settings = with_mailto
    reader = Recipient(email="ann@example.org", name="Ann", unsubscribe_url=LONG_URL)
    raw = to_bytes(to_mime(build_message(settings, EXAMPLE, RENDERED, reader)))
    lines = header_lines(raw, "List-Unsubscribe")
    assert "=?" not in "".join(lines)
    assert all(len(line.encode()) <= 998 for line in lines)
    assert lines[0] == f"List-Unsubscribe: <{LONG_URL}>,"
    assert lines[1] == f" <{settings.unsubscribe_mailto}>"
    value = parse(raw)["List-Unsubscribe"]
    assert value == f"<{LONG_URL}>, <{settings.unsubscribe_mailto}>"
    assert parse(raw)["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_list_unsubscribe_folds_between_its_items(with_mailto: Settings) -> None:
    settings = with_mailto
    reader = Recipient(email="a@b.org", unsubscribe_url="https://e.org/u?t=1")
    raw = to_bytes(to_mime(build_message(settings, EXAMPLE, RENDERED, reader)))
    assert header_lines(raw, "List-Unsubscribe") == [
        "List-Unsubscribe: <https://e.org/u?t=1>,",
        f" <{settings.unsubscribe_mailto}>",
    ]


def test_build_eml_list_unsubscribe_is_plain(settings: Settings, issue_dir: Path) -> None:
    long = settings.__class__(**{**settings.__dict__, "unsubscribe_url": LONG_URL})
    build_issue(long, issue_dir)
    raw = (settings.build_dir / EXAMPLE / "email.eml").read_bytes()
    assert "=?" not in "".join(header_lines(raw, "List-Unsubscribe"))
    assert parse(raw)["List-Unsubscribe"] == f"<{LONG_URL}?token=sample>"


def test_ascii_subject_with_a_long_word_is_not_encoded(settings: Settings) -> None:
    subject = "See " + "https://example.org/" + "x" * 120 + " for everything"
    rendered = Rendered(subject=subject, html="<p>x</p>", text="x")
    raw = to_bytes(to_mime(build_message(settings, EXAMPLE, rendered, Recipient("a@b.org"))))
    lines = header_lines(raw, "Subject")
    assert "=?" not in "".join(lines) and all(len(line) <= 998 for line in lines)
    assert parse(raw)["Subject"] == subject


def test_non_ascii_subject_is_still_encoded(settings: Settings) -> None:
    rendered = Rendered(subject="Café “news” " * 8, html="<p>x</p>", text="x")
    raw = to_bytes(to_mime(build_message(settings, EXAMPLE, rendered, Recipient("a@b.org"))))
    lines = header_lines(raw, "Subject")
    assert "=?utf-8?" in "".join(lines).lower() and all(len(line) <= 78 for line in lines)
    assert parse(raw)["Subject"] == rendered.subject


@pytest.mark.parametrize(
    "key", ["2026-11-26 my issue", "2026-11-26-café", "a..b", ".hidden", "x<y>@z", 'a"b']
)
def test_message_id_is_whole_and_valid_for_any_folder_name(settings: Settings, key: str) -> None:
    raw = to_bytes(to_mime(build_message(settings, key, RENDERED, Recipient("a@b.org"))))
    value = parse(raw)["Message-ID"]
    assert value == message_id(key, "a@b.org", settings.sender_domain)
    left, _, domain = value.strip("<>").rpartition("@")
    assert re.fullmatch(rf"{ATOM}(\.{ATOM})*", left)
    assert domain == settings.sender_domain
    assert message_id(key, "a@b.org", settings.sender_domain) == value  # stable


def test_message_id_of_an_ordinary_folder_is_unchanged(settings: Settings) -> None:
    """Resent messages must keep the IDs earlier versions gave them."""
    assert message_id(EXAMPLE, "Ann@Example.org", "example.org") == (
        "<2026-11-26-welcome.4c56cef4b75cb3db968c099361b5b154@example.org>"
    )
    assert message_id(EXAMPLE, "a@b.org", "example.org", "test-1").startswith(
        "<2026-11-26-welcome.test-1."
    )
