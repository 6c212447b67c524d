"""Creating a workspace, and finding the files the package carries for it.

The default templates and the example issue live at the repository's root (which is itself
a working workspace); a wheel carries copies of them under newsletter/_data.
"""

from __future__ import annotations

import shutil
import tomllib
from email.headerregistry import Address
from pathlib import Path

import tomlkit

from newsletter import config_checks as check
from newsletter.config import CONFIG_FILE
from newsletter.errors import ConfigError
from newsletter.files import PATH_LIMIT, os_problem, shown, write_atomic

_PACKAGE_DATA = Path(__file__).parent / "_data"
_REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ISSUE = "2026-11-26-welcome"

STARTER_CONFIG = """\
# Settings for this newsletter. Every key can be overridden by an environment variable
# (NEWSLETTER_NAME, NEWSLETTER_FROM, NEWSLETTER_SITE_URL, ...). Secrets such as provider
# keys never go here: they come from the environment.
name = "My Newsletter"
from = "My Newsletter <news@example.org>"
# reply_to = "Editors <editors@example.org>"
site_url = "https://example.org/"
postal_address = "Street, Town, Postcode, Country"
language = "en"

# Trailing lines that articles copied from the website end with, dropped on import.
drop_lines = ["Did you enjoy this article?"]
"""

GITIGNORE = "build/\n.newsletter/\n"


def default_templates_dir() -> Path:
    packaged = _PACKAGE_DATA / "templates"
    return packaged if packaged.is_dir() else _REPO_ROOT / "templates"


def example_issue_dir() -> Path:
    packaged = _PACKAGE_DATA / "example-issue"
    return packaged if packaged.is_dir() else _REPO_ROOT / "issues" / EXAMPLE_ISSUE


def starter_config(name: str) -> str:
    """newsletter.toml for a new workspace named `name`, quoted by tomlkit and read back.

    Pasting the name into the text would make an unreadable file of a name with a
    backslash or a quote in it; the sender's display name is quoted as RFC 5322 wants.
    """
    try:
        name = check.one_line(name)
    except ValueError as exc:
        raise ConfigError(f"--name {exc}") from exc
    doc = tomlkit.parse(STARTER_CONFIG)
    doc["name"] = name
    doc["from"] = str(Address(display_name=name, addr_spec="news@example.org"))
    text = tomlkit.dumps(doc)
    data = tomllib.loads(text)
    sender = check.address(data["from"])
    if data["name"] != name or sender.display_name != name:  # pragma: no cover - a bug
        raise ConfigError(f"--name {name!r} cannot be written to {CONFIG_FILE}")
    return text


def init_workspace(root: Path, name: str = "My Newsletter") -> list[Path]:
    """Create newsletter.toml, templates/ and issues/ with a sample issue in `root`."""
    try:
        if root.exists() and not root.is_dir():
            raise ConfigError(
                f"{shown(root, PATH_LIMIT)}: is a file, not a folder; "
                "give a new folder for the workspace"
            )
        config = root / CONFIG_FILE
        if config.exists():
            raise ConfigError(
                f"{shown(config, PATH_LIMIT)}: already exists; this folder is a workspace"
            )
        return _create(root, starter_config(name))
    except OSError as exc:  # a name past 255 bytes, a read-only disk, ...
        raise ConfigError(f"cannot create the workspace: {os_problem(root, exc)}") from exc


def _create(root: Path, config_text: str) -> list[Path]:
    """newsletter.toml comes last: an init that fails half-way can simply be run again."""
    config = root / CONFIG_FILE
    root.mkdir(parents=True, exist_ok=True)
    created = [config]
    templates = root / "templates"
    templates.mkdir(exist_ok=True)
    for source in sorted(default_templates_dir().iterdir()):
        target = templates / source.name
        if source.is_file() and not target.exists():
            shutil.copyfile(source, target)
            created.append(target)
    sample = root / "issues" / EXAMPLE_ISSUE
    if not sample.exists():
        shutil.copytree(example_issue_dir(), sample)
        created.append(sample)
    ignore = root / ".gitignore"
    if not ignore.exists():
        write_atomic(ignore, GITIGNORE)
        created.append(ignore)
    write_atomic(config, config_text)
    return created
