"""Creating a workspace, and finding the files the package carries for it.

The default templates and the example issue live at the repository's root (which is itself
a working workspace); a wheel carries copies of them under newsletter/_data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from newsletter.config import CONFIG_FILE
from newsletter.errors import ConfigError
from newsletter.files import write_atomic

_PACKAGE_DATA = Path(__file__).parent / "_data"
_REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ISSUE = "2026-11-26-welcome"

STARTER_CONFIG = """\
# Settings for this newsletter. Every key can be overridden by an environment variable
# (NEWSLETTER_NAME, NEWSLETTER_FROM, NEWSLETTER_SITE_URL, ...). Secrets such as provider
# keys never go here: they come from the environment.
name = "{name}"
from = "{name} <news@example.org>"
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


def init_workspace(root: Path, name: str = "My Newsletter") -> list[Path]:
    """Create newsletter.toml, templates/ and issues/ with a sample issue in `root`."""
    config = root / CONFIG_FILE
    if config.exists():
        raise ConfigError(f"{config}: already exists; this folder is a workspace")
    if '"' in name or "\n" in name:
        raise ConfigError("--name must be one line without double quotes")
    root.mkdir(parents=True, exist_ok=True)
    created = [config]
    write_atomic(config, STARTER_CONFIG.format(name=name))
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
    return created
