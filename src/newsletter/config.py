"""The workspace: where newsletter.toml lives, and the validated settings it holds.

The workspace is found the way git finds a repository: from the current folder upwards to
the first newsletter.toml. Every key can be overridden by an environment variable, so a CI
job or a server can change a setting without touching the file; secrets live only there.

KEYS is the one table of settings: each key's place in the file, its variable, the check
its value must pass and its default. The loader loops over it, the dataclasses below take
their defaults from it, and the tests hold README's configuration table to it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar

from newsletter import config_checks as check
from newsletter.errors import ConfigError
from newsletter.files import PATH_LIMIT, os_reason, read_toml, shown

CONFIG_FILE = "newsletter.toml"
# Scripts written right to left; used for the dir attribute when `direction` is "auto".
RTL_LANGUAGES = frozenset(
    {"ar", "arc", "dv", "fa", "ha", "he", "khw", "ks", "ku", "ps", "ur", "yi"}
)
REQUIRED: Any = object()  # the default of a key the file or the environment must set

T = TypeVar("T")


@dataclass(frozen=True)
class Key(Generic[T]):
    """One setting: where it sits in newsletter.toml, its variable, check and default.

    `check` turns a value from the file or the environment into the setting, or raises
    ValueError saying what is wrong with it. `default` is the setting when neither gives
    one; "" or 0 where the value is worked out later (from other settings, or the
    provider's own), which `help` then describes. A `listed` key's variable holds its
    items separated by "|".
    """

    path: str
    env: str
    check: Callable[[Any], T]
    default: T
    help: str
    listed: bool = False


# --- the table -------------------------------------------------------------------------------

# The configuration reference, in the order problems are reported; README's table is
# checked against it by the tests.
KEYS: tuple[Key[Any], ...] = (
    Key("name", "NEWSLETTER_NAME", check.one_line, REQUIRED,
        "The newsletter's name, shown in the header and List-ID."),
    Key("from", "NEWSLETTER_FROM", check.address, REQUIRED,
        'Sender, e.g. "Civic Post <news@example.org>".'),
    Key("reply_to", "NEWSLETTER_REPLY_TO", check.optional_address, None,
        "Where replies go (optional)."),
    Key("site_url", "NEWSLETTER_SITE_URL", check.url, REQUIRED,
        "Absolute URL; relative links resolve against it."),
    Key("postal_address", "NEWSLETTER_POSTAL_ADDRESS", check.postal, "",
        "Postal address shown in the footer."),
    Key("language", "NEWSLETTER_LANGUAGE", check.language, "en",
        'BCP 47 language tag of the issues, e.g. "en".'),
    Key("direction", "NEWSLETTER_DIRECTION", check.direction, "auto",
        '"ltr", "rtl" or "auto" (from the language).'),
    Key("list_id", "NEWSLETTER_LIST_ID", check.list_id, "",
        "List-ID header value; default name.sender-domain."),
    Key("unsubscribe_url", "NEWSLETTER_UNSUBSCRIBE_URL", check.url, "",
        "Base of unsubscribe links; default <site_url>/unsubscribe."),
    Key("archive_url", "NEWSLETTER_ARCHIVE_URL", check.url, "",
        "Base of view-in-browser links; default <site_url>/archive/."),
    Key("unsubscribe_mailto", "NEWSLETTER_UNSUBSCRIBE_MAILTO", check.optional_address, None,
        "Mailbox for the mailto part of List-Unsubscribe; none unless set (someone must read it)."),
    Key("topics", "NEWSLETTER_TOPICS", check.topics, (),
        'Tags subscribers may choose on their own page ("|"-separated in the variable).',
        listed=True),
    Key("drop_lines", "NEWSLETTER_DROP_LINES", check.lines, ("Did you enjoy this article?",),
        'Trailing lines dropped on import ("|"-separated in the variable).', listed=True),
    Key("database.url", "NEWSLETTER_DATABASE_URL", check.database_url, "",
        "SQLAlchemy URL; default SQLite at .newsletter/newsletter.db."),
    Key("provider.name", "NEWSLETTER_PROVIDER", check.provider_name, "outbox",
        "outbox, postmark, sendgrid, mailgun or resend."),
    Key("provider.base_url", "NEWSLETTER_PROVIDER_BASE_URL", check.url, "",
        "The provider's API address; default its public one."),
    Key("provider.message_stream", "NEWSLETTER_PROVIDER_MESSAGE_STREAM", check.one_line,
        "broadcast", "Postmark message stream."),
    Key("provider.domain", "NEWSLETTER_PROVIDER_DOMAIN", check.one_line, "",
        "Mailgun sending domain."),
    Key("provider.region", "NEWSLETTER_PROVIDER_REGION", check.region, "us",
        'Mailgun region: "us" or "eu".'),
    Key("provider.timeout", "NEWSLETTER_PROVIDER_TIMEOUT", check.seconds, 30.0,
        "Seconds to wait for the provider's answer."),
    Key("provider.retries", "NEWSLETTER_PROVIDER_RETRIES", check.attempts, 5,
        "Attempts per message, the first included."),
    Key("provider.retry_delay", "NEWSLETTER_PROVIDER_RETRY_DELAY", check.seconds, 1.0,
        "First pause before a retry, in seconds, doubling up to 30."),
    Key("sending.rate", "NEWSLETTER_SENDING_RATE",
        check.number(float, 0, 1e9, "a number of messages per second (0: the provider's default)"),
        0.0, "Messages per second to the list; default the provider's conservative rate."),
    Key("sending.concurrency", "NEWSLETTER_SENDING_CONCURRENCY",
        check.number(int, 1, 64, "a whole number"), 4,
        "Batches in flight at once."),
    Key("sending.lease", "NEWSLETTER_SENDING_LEASE",
        check.number(float, 0, 86400, "a number of seconds"), 600.0,
        "Seconds after which a batch another sender claimed counts as lost."),
    Key("sending.max_failed_batches", "NEWSLETTER_SENDING_MAX_FAILED_BATCHES", check.attempts, 3,
        "Wholly refused batches in a row that stop a send."),
    Key("sending.batch_size", "NEWSLETTER_SENDING_BATCH_SIZE",
        check.number(int, 0, 1000, "a whole number (0: the provider's limit)"), 0,
        "Messages per request, at most the provider's limit; default that limit."),
    Key("webhooks.soft_bounce_limit", "NEWSLETTER_WEBHOOKS_SOFT_BOUNCE_LIMIT",
        check.number(int, 1, 100, "a whole number"), 3,
        "Soft bounces within the window that make an address bounced."),
    Key("webhooks.soft_bounce_days", "NEWSLETTER_WEBHOOKS_SOFT_BOUNCE_DAYS",
        check.number(int, 1, 365, "a whole number of days"), 30,
        "The window, in days, in which soft bounces are counted."),
)  # fmt: skip
_KEYS_BY_PATH = {k.path: k for k in KEYS}
_TABLES = frozenset(k.path.partition(".")[0] for k in KEYS if "." in k.path)


def _default(path: str) -> Any:
    return _KEYS_BY_PATH[path].default


# --- the settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderSettings:
    """The [provider] table: which email provider sends, and its own options."""

    name: str = _default("provider.name")
    base_url: str = _default("provider.base_url")
    message_stream: str = _default("provider.message_stream")
    domain: str = _default("provider.domain")
    region: str = _default("provider.region")
    timeout: float = _default("provider.timeout")
    retries: int = _default("provider.retries")
    retry_delay: float = _default("provider.retry_delay")


@dataclass(frozen=True)
class SendingSettings:
    """The [sending] table: how fast and how carefully the list is sent to."""

    rate: float = _default("sending.rate")
    concurrency: int = _default("sending.concurrency")
    lease: float = _default("sending.lease")
    max_failed_batches: int = _default("sending.max_failed_batches")
    batch_size: int = _default("sending.batch_size")


@dataclass(frozen=True)
class WebhookSettings:
    """The [webhooks] table: how providers' reports change subscribers."""

    soft_bounce_limit: int = _default("webhooks.soft_bounce_limit")
    soft_bounce_days: int = _default("webhooks.soft_bounce_days")


@dataclass(frozen=True)
class Settings:
    """Everything newsletter.toml (and the environment) says, checked, defaults worked out."""

    root: Path
    name: str
    sender: Address
    site_url: str
    reply_to: Address | None
    postal_address: str
    language: str
    direction: str  # "ltr" or "rtl": "auto" is resolved from the language
    list_id: str
    unsubscribe_url: str
    archive_url: str
    # "mailto:...?subject=unsubscribe", or "" when no one reads such a mailbox.
    unsubscribe_mailto: str
    topics: tuple[str, ...]  # tags subscribers may choose themselves
    drop_lines: tuple[str, ...]
    database_url: str
    provider: ProviderSettings
    sending: SendingSettings
    webhooks: WebhookSettings = WebhookSettings()

    @property
    def sender_domain(self) -> str:
        return self.sender.domain

    # Formatted once: every message of a send carries them (str(Address) is slow).
    @cached_property
    def sender_text(self) -> str:
        return str(self.sender)

    @cached_property
    def reply_to_text(self) -> str | None:
        return str(self.reply_to) if self.reply_to else None

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def issues_dir(self) -> Path:
        return self.root / "issues"

    @property
    def build_dir(self) -> Path:
        return self.root / "build"

    @property
    def state_dir(self) -> Path:
        return self.root / ".newsletter"


# --- finding and loading ---------------------------------------------------------------------


def find_workspace(start: Path | None = None, explicit: Path | None = None) -> Path:
    """Return the folder holding newsletter.toml: `explicit`, or the nearest above `start`."""
    if explicit is not None:
        try:
            root = explicit.expanduser().resolve()
            found = (root / CONFIG_FILE).is_file()
        except (OSError, RuntimeError) as exc:  # a name past 255 bytes, a link to itself
            raise ConfigError(
                f"{shown(explicit, PATH_LIMIT)}: cannot be the workspace ({os_reason(exc)})"
            ) from exc
        if not found:
            raise ConfigError(f"{root}: no {CONFIG_FILE} here (create one with `newsletter init`)")
        return root
    try:
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / CONFIG_FILE).is_file():
                return folder
    except (OSError, RuntimeError) as exc:  # a folder gone or not ours to read
        where = shown(start or ".", PATH_LIMIT)
        raise ConfigError(f"cannot look for {CONFIG_FILE} from {where} ({os_reason(exc)})") from exc
    raise ConfigError(
        f"no {CONFIG_FILE} in {here} or any folder above it; "
        "run `newsletter init` or pass --workspace DIR"
    )


def load_settings(root: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read root/newsletter.toml, apply NEWSLETTER_* overrides and validate every key."""
    env = os.environ if environ is None else environ
    path = root / CONFIG_FILE
    data = read_toml(path, ConfigError)

    problems: list[str] = []
    given: dict[str, tuple[Any, str]] = {}  # key path -> (value, where it was given)
    for path_in_file, value in _flatten(data):
        if path_in_file in _KEYS_BY_PATH:
            given[path_in_file] = (value, f"{path}: key '{path_in_file}'")
        else:
            known = ", ".join(_KEYS_BY_PATH)
            problems.append(f"{path}: unknown key '{path_in_file}' (known: {known})")
    for key in KEYS:
        if key.env in env:
            raw = env[key.env]
            items = [s.strip() for s in raw.split("|") if s.strip()] if key.listed else raw
            given[key.path] = (items, f"environment variable {key.env}")

    got: dict[str, Any] = {}
    missing: list[str] = []
    for key in KEYS:
        got[key.path] = key.default
        if key.path not in given:
            if key.default is REQUIRED:
                missing.append(f"{path}: key '{key.path}' is required (or set {key.env})")
            continue
        value, where = given[key.path]
        try:
            got[key.path] = key.check(value)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    if problems or missing:
        raise ConfigError("\n".join(problems + missing))

    name, sender, language, site_url = got["name"], got["from"], got["language"], got["site_url"]
    direction = got["direction"]
    if direction == "auto":
        direction = "rtl" if language.split("-")[0].lower() in RTL_LANGUAGES else "ltr"
    base = site_url.rstrip("/")
    return Settings(
        root=root,
        name=name,
        sender=sender,
        site_url=site_url,
        reply_to=got["reply_to"],
        postal_address=got["postal_address"],
        language=language,
        direction=direction,
        list_id=got["list_id"] or f"{_slug(name) or 'newsletter'}.{sender.domain}",
        unsubscribe_url=got["unsubscribe_url"] or f"{base}/unsubscribe",
        archive_url=got["archive_url"] or f"{base}/archive/",
        unsubscribe_mailto=(
            f"mailto:{got['unsubscribe_mailto'].addr_spec}?subject=unsubscribe"
            if got["unsubscribe_mailto"]
            else ""
        ),
        topics=got["topics"],
        drop_lines=got["drop_lines"],
        database_url=got["database.url"] or f"sqlite:///{root / '.newsletter' / 'newsletter.db'}",
        provider=ProviderSettings(**_table(got, "provider")),
        sending=SendingSettings(**_table(got, "sending")),
        webhooks=WebhookSettings(**_table(got, "webhooks")),
    )


def load_workspace(
    start: Path | None = None,
    explicit: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    return load_settings(find_workspace(start, explicit), environ)


def _flatten(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """[provider] name = "x" becomes ("provider.name", "x"); other keys stay as they are."""
    flat: list[tuple[str, Any]] = []
    for key, value in data.items():
        if key in _TABLES and isinstance(value, dict):
            flat.extend((f"{key}.{inner}", v) for inner, v in value.items())
        else:
            flat.append((key, value))
    return flat


def _table(got: Mapping[str, Any], table: str) -> dict[str, Any]:
    """The settings of one [table], by their names inside it."""
    prefix = f"{table}."
    return {path.removeprefix(prefix): v for path, v in got.items() if path.startswith(prefix)}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
