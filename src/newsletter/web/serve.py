"""`newsletter serve`: the checks before it listens, and uvicorn started on the app.

It refuses, in one line each: no NEWSLETTER_SECRET_KEY (the links could not be checked);
plain http on an address other than loopback unless a TLS reverse proxy is in front
(`--behind-proxy` or NEWSLETTER_BEHIND_PROXY=1), because tokens and addresses would cross
the network in clear; several workers on SQLite (one writer at a time: one process); a
port already in use. Behind a proxy, uvicorn reads the client's address and scheme from
X-Forwarded-For and X-Forwarded-Proto sent by the addresses in FORWARDED_ALLOW_IPS
(default 127.0.0.1), uvicorn's own variable.
"""

from __future__ import annotations

import copy
import errno
import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from newsletter.config import Settings, load_workspace
from newsletter.delivery.tokens import SECRET_VARIABLE, secret_key
from newsletter.errors import ConfigError, UsageError
from newsletter.storage import engine_url
from newsletter.web.app import create_app

BEHIND_PROXY_VARIABLE = "NEWSLETTER_BEHIND_PROXY"
WORKSPACE_VARIABLE = "NEWSLETTER_WORKSPACE"
ARCHIVE_VARIABLE = "NEWSLETTER_SERVE_ARCHIVE"  # --archive, handed to worker processes
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    behind_proxy: bool = False
    archive: Path | None = None  # the archive's folder, if not the workspace's build/archive


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def behind_proxy(flag: bool, environ: Mapping[str, str]) -> bool:
    return flag or environ.get(BEHIND_PROXY_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def check_serve(settings: Settings, environ: Mapping[str, str], options: ServeOptions) -> None:
    """Every refusal, before anything listens; ConfigError or UsageError with one line."""
    if not environ.get(SECRET_VARIABLE):
        raise ConfigError(
            f"serve needs {SECRET_VARIABLE}: it checks the signed links in every email "
            "(the same key `send` signed them with)"
        )
    secret_key(environ, settings.provider.name)  # too short is refused here
    if not is_loopback(options.host) and not options.behind_proxy:
        raise UsageError(
            f"serve speaks plain http: on {options.host} it must sit behind a TLS reverse "
            f"proxy; pass --behind-proxy (or set {BEHIND_PROXY_VARIABLE}=1) once one is "
            "in front of it, or serve on 127.0.0.1"
        )
    if options.archive is not None and not options.archive.is_dir():
        raise UsageError(
            f"--archive: {options.archive} is not a folder; make it with "
            "`newsletter archive --out DIR`, or leave --archive out to serve build/archive"
        )
    if options.workers < 1:
        raise UsageError("--workers must be 1 or more")
    if options.workers > 1 and make_url(engine_url(settings)).get_backend_name() == "sqlite":
        raise UsageError(
            "SQLite takes one writer at a time: serve it with one worker, or use PostgreSQL "
            "(database.url) for --workers above 1"
        )
    check_port(options.host, options.port)


def check_port(host: str, port: int) -> None:
    """UsageError naming the port when something already listens there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"port {port} on {host} is in use; stop what listens there or pass --port N"
                ) from exc
            raise UsageError(f"cannot listen on {host} port {port}: {exc.strerror}") from exc


def log_config() -> dict[str, object]:
    """uvicorn's logging, with its access log replaced by ours (web.access_log)."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["newsletter"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def app_from_environment() -> Starlette:
    """The app for each of several worker processes: the workspace from the environment."""
    settings = load_workspace(explicit=Path(os.environ[WORKSPACE_VARIABLE]))
    archive = os.environ.get(ARCHIVE_VARIABLE)
    return create_app(settings, os.environ, archive_dir=Path(archive) if archive else None)


def serve(
    settings: Settings,
    environ: Mapping[str, str],
    options: ServeOptions,
    announce: Callable[[str], None] = print,
) -> None:
    """Check, then run uvicorn until Ctrl-C or SIGTERM."""
    check_serve(settings, environ, options)
    announce(f"http://{options.host}:{options.port}/")
    common: dict[str, object] = {
        "host": options.host.strip("[]"),
        "port": options.port,
        "access_log": False,
        "log_config": log_config(),
        "server_header": False,
        "proxy_headers": options.behind_proxy,
    }
    if options.workers == 1:
        app = create_app(settings, environ, archive_dir=options.archive)
        uvicorn.run(app, **common)  # type: ignore[arg-type]
        return
    os.environ[WORKSPACE_VARIABLE] = str(settings.root)
    if options.archive is not None:
        os.environ[ARCHIVE_VARIABLE] = str(options.archive.resolve())
    uvicorn.run(
        "newsletter.web.serve:app_from_environment",
        factory=True,
        workers=options.workers,
        **common,  # type: ignore[arg-type]
    )
