from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.config import KEYS, REQUIRED, find_workspace, load_settings
from newsletter.errors import ConfigError

from conftest import REPO, write

MINIMAL = 'name = "N"\nfrom = "N <n@example.org>"\nsite_url = "https://example.org"\n'


def test_found_from_a_subfolder(workspace: Path) -> None:
    deep = workspace / "issues" / "2026-11-26-welcome"
    assert find_workspace(deep) == workspace.resolve()


def test_not_found(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no newsletter.toml in .* or any folder above"):
        find_workspace(tmp_path)
    with pytest.raises(ConfigError, match="no newsletter.toml here"):
        find_workspace(explicit=tmp_path)


def test_a_workspace_path_too_long_is_one_line(tmp_path: Path) -> None:
    """OSError "File name too long" escaped find_workspace as a traceback."""
    with pytest.raises(ConfigError) as info:
        find_workspace(explicit=tmp_path / ("a" * 300))
    message = str(info.value)
    assert len(message.splitlines()) == 1 and message.endswith("File name too long)")
    assert "aaaa" in message and len(message) < 300


def test_a_workspace_that_is_a_symlink_loop_is_one_line(tmp_path: Path) -> None:
    """RuntimeError "Symlink loop" from Path.resolve escaped find_workspace."""
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(ConfigError) as info:
        find_workspace(explicit=tmp_path / "loop")
    assert str(info.value) == (
        f"{tmp_path / 'loop'}: cannot be the workspace (Too many levels of symbolic links)"
    )


def test_defaults(tmp_path: Path) -> None:
    write(tmp_path / "newsletter.toml", MINIMAL)
    settings = load_settings(tmp_path, environ={})
    assert settings.language == "en" and settings.direction == "ltr"
    assert settings.unsubscribe_url == "https://example.org/unsubscribe"
    assert settings.archive_url == "https://example.org/archive/"
    assert settings.list_id == "n.example.org"
    assert settings.drop_lines == ("Did you enjoy this article?",)


def test_environment_overrides_every_key(tmp_path: Path) -> None:
    write(tmp_path / "newsletter.toml", MINIMAL)
    env = {
        "NEWSLETTER_NAME": "Other",
        "NEWSLETTER_FROM": "x@other.example",
        "NEWSLETTER_SITE_URL": "https://other.example/",
        "NEWSLETTER_LANGUAGE": "ar",
        "NEWSLETTER_DROP_LINES": "One | Two",
        "NEWSLETTER_POSTAL_ADDRESS": "1 Road",
    }
    settings = load_settings(tmp_path, environ=env)
    assert settings.name == "Other" and settings.sender.addr_spec == "x@other.example"
    assert settings.direction == "rtl"  # from the language
    assert settings.drop_lines == ("One", "Two")
    assert settings.postal_address == "1 Road"
    assert {k.env for k in KEYS} >= set(env)


def test_every_problem_named(tmp_path: Path) -> None:
    write(
        tmp_path / "newsletter.toml",
        'name = "N"\nfrom = "not an address"\nsite_url = "example.org"\nlanguage = "english!"\n'
        "colour = 1\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, environ={})
    text = str(info.value)
    assert "key 'from': 'not an address' is not an email address" in text
    assert "key 'site_url': 'example.org' must be an absolute http(s) URL" in text
    assert "key 'language'" in text
    assert "unknown key 'colour'" in text


def test_bad_environment_value_names_variable(tmp_path: Path) -> None:
    write(tmp_path / "newsletter.toml", MINIMAL)
    with pytest.raises(ConfigError, match="environment variable NEWSLETTER_SITE_URL"):
        load_settings(tmp_path, environ={"NEWSLETTER_SITE_URL": "ftp://x"})


def test_required_keys(tmp_path: Path) -> None:
    write(tmp_path / "newsletter.toml", "")
    with pytest.raises(ConfigError, match="key 'from' is required \\(or set NEWSLETTER_FROM\\)"):
        load_settings(tmp_path, environ={})


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    write(tmp_path / "newsletter.toml", 'name = "N"\nfrom = \n')
    with pytest.raises(ConfigError, match="line 2"):
        load_settings(tmp_path, environ={})


def test_unset_keys_take_the_table_defaults(tmp_path: Path) -> None:
    write(tmp_path / "newsletter.toml", MINIMAL)
    settings = load_settings(tmp_path, environ={})
    for key in KEYS:
        table, _, name = key.path.partition(".")
        if table in ("provider", "sending"):
            assert getattr(getattr(settings, table), name) == key.default, key.path


def test_readme_gives_the_table_defaults() -> None:
    """README's default column says what KEYS says, where the default is a plain value."""
    rows = {}
    for line in (REPO / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[2]
    for key in KEYS:
        if key.default is REQUIRED:
            assert rows[key.path] == "required", key.path
        elif isinstance(key.default, tuple):
            assert rows[key.path] == "`" + str(list(key.default)).replace("'", '"') + "`"
        elif key.default:  # "", 0 and None mean a default worked out later, told in words
            shown = f"{key.default:g}" if isinstance(key.default, float) else key.default
            assert rows[key.path] == f"`{shown}`", key.path


@pytest.mark.parametrize(
    "sender",
    [
        "Evil <a@b.c>, victim@example.org",
        "a@b.org, c@d.org",
        "Team: a@b.org, c@d.org;",
        "Name <a@b.org> trailing",
        "<a@b.org> <c@d.org>",
    ],
)
@pytest.mark.parametrize("key", ["from", "reply_to"])
def test_sender_must_be_exactly_one_mailbox(tmp_path: Path, sender: str, key: str) -> None:
    if key == "from":
        toml = MINIMAL.replace("N <n@example.org>", sender)
    else:
        toml = MINIMAL + f'reply_to = "{sender}"\n'
    write(tmp_path / "newsletter.toml", toml)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, environ={})
    assert f"key '{key}'" in str(info.value) and "one address" in str(info.value)


@pytest.mark.parametrize(
    "sender",
    [
        '\\"Smith, Jane\\" <jane@example.org>',
        "news@example.org",
        "Civic Post <news@example.org>",
        "Zoë Café <zoe@example.org>",
    ],
)
def test_one_mailbox_with_any_display_name_is_fine(tmp_path: Path, sender: str) -> None:
    write(tmp_path / "newsletter.toml", MINIMAL.replace("N <n@example.org>", sender))
    settings = load_settings(tmp_path, environ={})
    assert settings.sender.addr_spec.endswith("@example.org")


@pytest.mark.parametrize("value", ["Bulletin\u2028Bcc: x", "Bul\x1fletin", "Bul\x85letin", "A\vB"])
def test_one_line_settings_refuse_every_line_break_and_control_character(
    tmp_path: Path, value: str
) -> None:
    write(tmp_path / "newsletter.toml", MINIMAL)
    with pytest.raises(ConfigError, match="environment variable NEWSLETTER_NAME: must be"):
        load_settings(tmp_path, environ={"NEWSLETTER_NAME": value})


def test_a_folder_named_newsletter_toml_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").mkdir()
    with pytest.raises(ConfigError):
        load_settings(tmp_path, environ={})
