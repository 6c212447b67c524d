"""The workspace: where newsletter.toml lives, and the validated settings it holds.

The workspace is found the way git finds a repository: from the current folder upwards to
the first newsletter.toml. Every key can be overridden by an environment variable, so a CI
job or a server can change a setting without touching the file; secrets live only there.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from newsletter.errors import ConfigError

CONFIG_FILE = "newsletter.toml"
DEFAULT_DROP_LINES = ("Did you enjoy this article?",)
# Scripts written right to left; used for the dir attribute when `direction` is "auto".
RTL_LANGUAGES = frozenset(
    {"ar", "arc", "dv", "fa", "ha", "he", "khw", "ks", "ku", "ps", "ur", "yi"}
)


@dataclass(frozen=True)
class ProviderSettings:
    """The [provider] table: which email provider sends, and its own options."""

    name: str = "outbox"
    base_url: str = ""
    message_stream: str = "broadcast"  # Postmark
    domain: str = ""  # Mailgun
    region: str = "us"  # Mailgun: us or eu
    timeout: float = 30.0
    retries: int = 5  # attempts per message, the first included
    retry_delay: float = 1.0  # first backoff in seconds; doubles up to 30 s


@dataclass(frozen=True)
class SendingSettings:
    """The [sending] table: how fast and how carefully the list is sent to."""

    rate: float = 0.0  # messages per second; 0 means the provider's default
    concurrency: int = 4  # batches in flight at once
    lease: float = 600.0  # seconds before another sender may call a batch in flight lost
    max_failed_batches: int = 3  # consecutive wholly refused batches that stop a send
    batch_size: int = 0  # messages per request; 0 means the provider's maximum


@dataclass(frozen=True)
class Settings:
    """Everything newsletter.toml (and the environment) says, checked and with defaults."""

    root: Path
    name: str
    sender: Address
    site_url: str
    reply_to: Address | None = None
    postal_address: str = ""
    language: str = "en"
    direction: str = "ltr"
    list_id: str = ""
    unsubscribe_url: str = ""
    archive_url: str = ""
    drop_lines: tuple[str, ...] = DEFAULT_DROP_LINES
    database_url: str = ""
    provider: ProviderSettings = field(default_factory=lambda: ProviderSettings())
    sending: SendingSettings = field(default_factory=lambda: SendingSettings())
    extra: Mapping[str, Any] = field(default_factory=dict)

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

    @cached_property
    def unsubscribe_mailto(self) -> str:
        return f"mailto:{(self.reply_to or self.sender).addr_spec}?subject=unsubscribe"

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


@dataclass(frozen=True)
class _Key:
    """One setting: where it sits in newsletter.toml and which variable overrides it."""

    path: str
    env: str
    help: str
    kind: str = "str"  # str | list


# The configuration reference; README's table is checked against it by the tests.
KEYS: tuple[_Key, ...] = (
    _Key("name", "NEWSLETTER_NAME", "The newsletter's name, shown in the header and List-ID."),
    _Key("from", "NEWSLETTER_FROM", 'Sender, e.g. "Civic Post <news@example.org>".'),
    _Key("reply_to", "NEWSLETTER_REPLY_TO", "Where replies go (optional)."),
    _Key("site_url", "NEWSLETTER_SITE_URL", "Absolute URL; relative links resolve against it."),
    _Key("postal_address", "NEWSLETTER_POSTAL_ADDRESS", "Postal address shown in the footer."),
    _Key("language", "NEWSLETTER_LANGUAGE", 'BCP 47 language tag of the issues, e.g. "en".'),
    _Key("direction", "NEWSLETTER_DIRECTION", '"ltr", "rtl" or "auto" (from the language).'),
    _Key("list_id", "NEWSLETTER_LIST_ID", "List-ID header value; default name.sender-domain."),
    _Key(
        "unsubscribe_url",
        "NEWSLETTER_UNSUBSCRIBE_URL",
        "Base of unsubscribe links; default <site_url>/unsubscribe.",
    ),
    _Key(
        "archive_url",
        "NEWSLETTER_ARCHIVE_URL",
        "Base of view-in-browser links; default <site_url>/archive/.",
    ),
    _Key(
        "drop_lines",
        "NEWSLETTER_DROP_LINES",
        'Trailing lines dropped on import ("|"-separated in the variable).',
        "list",
    ),
    _Key(
        "database.url",
        "NEWSLETTER_DATABASE_URL",
        "SQLAlchemy URL; default SQLite at .newsletter/newsletter.db.",
    ),
    _Key("provider.name", "NEWSLETTER_PROVIDER", "outbox, postmark, sendgrid, mailgun or resend."),
    _Key(
        "provider.base_url",
        "NEWSLETTER_PROVIDER_BASE_URL",
        "The provider's API address; default its public one.",
    ),
    _Key(
        "provider.message_stream",
        "NEWSLETTER_PROVIDER_MESSAGE_STREAM",
        'Postmark message stream; default "broadcast".',
    ),
    _Key("provider.domain", "NEWSLETTER_PROVIDER_DOMAIN", "Mailgun sending domain."),
    _Key("provider.region", "NEWSLETTER_PROVIDER_REGION", 'Mailgun region: "us" or "eu".'),
    _Key(
        "provider.timeout",
        "NEWSLETTER_PROVIDER_TIMEOUT",
        "Seconds to wait for the provider's answer; default 30.",
        "number",
    ),
    _Key("provider.retries", "NEWSLETTER_PROVIDER_RETRIES", "Attempts per message; default 5."),
    _Key(
        "provider.retry_delay",
        "NEWSLETTER_PROVIDER_RETRY_DELAY",
        "First pause before a retry, in seconds, doubling up to 30; default 1.",
    ),
    _Key(
        "sending.rate",
        "NEWSLETTER_SENDING_RATE",
        "Messages per second to the list; default the provider's conservative rate.",
    ),
    _Key(
        "sending.concurrency",
        "NEWSLETTER_SENDING_CONCURRENCY",
        "Batches in flight at once; default 4.",
    ),
    _Key(
        "sending.lease",
        "NEWSLETTER_SENDING_LEASE",
        "Seconds after which a batch another sender claimed counts as lost; default 600.",
    ),
    _Key(
        "sending.max_failed_batches",
        "NEWSLETTER_SENDING_MAX_FAILED_BATCHES",
        "Wholly refused batches in a row that stop a send; default 3.",
    ),
    _Key(
        "sending.batch_size",
        "NEWSLETTER_SENDING_BATCH_SIZE",
        "Messages per request, at most the provider's limit; default that limit.",
    ),
)
_KEYS_BY_PATH = {k.path: k for k in KEYS}
# Tables that later stages own; accepted here so that a newer file still loads.
_SECTIONS: frozenset[str] = frozenset()
_TABLES = frozenset({k.path.split(".")[0] for k in KEYS if "." in k.path})

_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_LIST_ID = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")


def find_workspace(start: Path | None = None, explicit: Path | None = None) -> Path:
    """Return the folder holding newsletter.toml: `explicit`, or the nearest above `start`."""
    if explicit is not None:
        root = explicit.expanduser().resolve()
        if not (root / CONFIG_FILE).is_file():
            raise ConfigError(f"{root}: no {CONFIG_FILE} here (create one with `newsletter init`)")
        return root
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise ConfigError(
        f"no {CONFIG_FILE} in {here} or any folder above it; "
        "run `newsletter init` or pass --workspace DIR"
    )


def load_settings(root: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read root/newsletter.toml, apply NEWSLETTER_* overrides and validate every key."""
    env = os.environ if environ is None else environ
    path = root / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from exc

    problems: list[str] = []
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in _flatten(data):
        if key in _KEYS_BY_PATH:
            values[key] = (value, f"{path}: key '{key}'")
        elif key.split(".")[0] in _SECTIONS:
            extra.setdefault(key.split(".")[0], {})[key.partition(".")[2]] = value
        else:
            known = ", ".join([*_KEYS_BY_PATH, *sorted(_SECTIONS)])
            problems.append(f"{path}: unknown key '{key}' (known: {known})")
    for spec in KEYS:
        if spec.env in env:
            raw = env[spec.env]
            parsed = (
                [s.strip() for s in raw.split("|") if s.strip()] if spec.kind == "list" else raw
            )
            values[spec.path] = (parsed, f"environment variable {spec.env}")

    def take(key: str, check: Callable[[Any, str], Any], default: Any) -> Any:
        if key not in values:
            return default
        value, where = values[key]
        try:
            return check(value, where)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            return default

    name = take("name", _text, "")
    sender = take("from", _address, None)
    reply_to = take("reply_to", _optional_address, None)
    site_url = take("site_url", _url, "")
    postal_address = take("postal_address", _postal, "")
    language = take("language", _language, "en")
    direction = take("direction", _direction, "auto")
    list_id = take("list_id", _list_id, "")
    unsubscribe_url = take("unsubscribe_url", _url, "")
    archive_url = take("archive_url", _url, "")
    drop_lines = take("drop_lines", _lines, DEFAULT_DROP_LINES)
    database_url = take("database.url", _database_url, "")
    provider = ProviderSettings(
        name=take("provider.name", _provider_name, "outbox"),
        base_url=take("provider.base_url", _url, ""),
        message_stream=take("provider.message_stream", _text, "broadcast"),
        domain=take("provider.domain", _text, ""),
        region=take("provider.region", _region, "us"),
        timeout=take("provider.timeout", _seconds, 30.0),
        retries=take("provider.retries", _attempts, 5),
        retry_delay=take("provider.retry_delay", _seconds, 1.0),
    )
    sending = SendingSettings(
        rate=take("sending.rate", _rate, 0.0),
        concurrency=take("sending.concurrency", _concurrency, 4),
        lease=take("sending.lease", _lease, 600.0),
        max_failed_batches=take("sending.max_failed_batches", _attempts, 3),
        batch_size=take("sending.batch_size", _batch_size, 0),
    )

    for key, got in (("name", name), ("from", sender), ("site_url", site_url)):
        if not got and key not in values:
            spec = _KEYS_BY_PATH[key]
            problems.append(f"{path}: key '{key}' is required (or set {spec.env})")
    if problems:
        raise ConfigError("\n".join(problems))

    if direction == "auto":
        direction = "rtl" if language.split("-")[0].lower() in RTL_LANGUAGES else "ltr"
    base = site_url.rstrip("/")
    if not list_id:
        list_id = f"{_slug(name) or 'newsletter'}.{sender.domain}"
    return Settings(
        root=root,
        name=name,
        sender=sender,
        reply_to=reply_to,
        site_url=site_url,
        postal_address=postal_address,
        language=language,
        direction=direction,
        list_id=list_id,
        unsubscribe_url=unsubscribe_url or f"{base}/unsubscribe",
        archive_url=archive_url or f"{base}/archive/",
        drop_lines=tuple(drop_lines),
        database_url=database_url or f"sqlite:///{root / '.newsletter' / 'newsletter.db'}",
        provider=provider,
        sending=sending,
        extra=extra,
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
        if key in _TABLES | _SECTIONS and isinstance(value, dict):
            flat.extend((f"{key}.{inner}", v) for inner, v in value.items())
        else:
            flat.append((key, value))
    return flat


def _provider_name(value: Any, where: str) -> str:
    text = _text(value, where).lower()
    if not re.fullmatch(r"[a-z0-9_-]+", text):
        raise ValueError(f"{text!r} is not a provider name")
    return text


def _database_url(value: Any, where: str) -> str:
    text = _text(value, where)
    scheme = text.partition(":")[0].split("+")[0]
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise ValueError("must be a sqlite:/// or postgresql:// URL")
    return text


def _region(value: Any, where: str) -> str:
    text = _text(value, where).lower()
    if text not in ("us", "eu"):
        raise ValueError(f'{text!r} must be "us" or "eu"')
    return text


def _number(
    kind: type[int] | type[float], low: float, high: float, what: str, low_open: bool = False
) -> Callable[[Any, str], Any]:
    """A check for a number of `kind` between low and high (above low if low_open)."""

    def check(value: Any, where: str) -> Any:
        try:
            number = kind(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{value!r} is not {what}") from exc
        if not (low < number if low_open else low <= number) or number > high:
            lowest = f"more than {low:g}" if low_open else f"at least {low:g}"
            raise ValueError(f"must be {lowest} and at most {high:g}")
        return number

    return check


_rate = _number(float, 0, 1e9, "a number of messages per second (0: the provider's default)")
_concurrency = _number(int, 1, 64, "a whole number")
_batch_size = _number(int, 0, 1000, "a whole number (0: the provider's limit)")
_lease = _number(float, 0, 86400, "a number of seconds")
_attempts = _number(int, 1, 20, "a whole number")
_seconds = _number(float, 0, 600, "a number of seconds", low_open=True)


def _text(value: Any, where: str) -> str:
    text = _text_or_empty(value, where)
    if not text:
        raise ValueError("must not be empty")
    return text


def _text_or_empty(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type(value).__name__}")
    if "\r" in value or "\n" in value.strip():
        raise ValueError("must be a single line")
    return value.strip()


def _postal(value: Any, where: str) -> str:
    """A postal address may span lines; the footer joins them with commas."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type(value).__name__}")
    return ", ".join(line.strip() for line in value.splitlines() if line.strip())


def _address(value: Any, where: str) -> Address:
    text = _text(value, where)
    display, addr = parseaddr(text)
    local, _, domain = addr.rpartition("@")
    if not local or "." not in domain or any(c.isspace() for c in addr):
        raise ValueError(f'{text!r} is not an email address like "Name <news@example.org>"')
    return Address(display_name=display, username=local, domain=domain)


def _optional_address(value: Any, where: str) -> Address | None:
    return _address(value, where) if value else None


def _url(value: Any, where: str) -> str:
    text = _text(value, where)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{text!r} must be an absolute http(s) URL such as https://example.org/")
    return text


def _language(value: Any, where: str) -> str:
    text = _text(value, where)
    if not _LANGUAGE.match(text):
        raise ValueError(f"{text!r} is not a language tag such as en, fr or pt-BR")
    return text


def _direction(value: Any, where: str) -> str:
    text = _text(value, where)
    if text not in ("ltr", "rtl", "auto"):
        raise ValueError(f'{text!r} must be "ltr", "rtl" or "auto"')
    return text


def _list_id(value: Any, where: str) -> str:
    text = _text(value, where)
    if not _LIST_ID.match(text) or "." not in text:
        raise ValueError(f"{text!r} must look like a domain name, e.g. news.example.org")
    return text


def _lines(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return [v.strip() for v in value if v.strip()]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
