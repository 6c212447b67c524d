"""What the web tests share: Starlette's TestClient, the app on a workspace, a real
uvicorn server in a thread, and reading the outbox.

Starlette warns on importing its TestClient with httpx (it would like httpx2, which is not
a dependency); the warning is about Starlette's future, not about our code, so it is
silenced for that one import and pytest's filterwarnings=error holds everywhere else.
"""

from __future__ import annotations

import contextlib
import email
import re
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default
from typing import Any
from urllib.parse import unquote

import uvicorn
from sqlalchemy import Engine, select
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning

from newsletter.config import Settings
from newsletter.storage import confirmations, subscriber_tags, subscribers

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["TestClient"]

SECRET = "a-test-secret-that-is-long-enough"
ENVIRON = {"NEWSLETTER_SECRET_KEY": SECRET}


def engine_of(client_or_app: Any) -> Engine:
    """The database of a TestClient's app, or of an app itself."""
    app = client_or_app if isinstance(client_or_app, Starlette) else client_or_app.app
    engine: Engine = app.state.engine
    return engine


def state_of(engine: Engine, email_key: str) -> dict[str, Any] | None:
    """A subscriber's status, name and tags, straight from the database."""
    with engine.connect() as conn:
        row = conn.execute(
            select(subscribers.c.id, subscribers.c.status, subscribers.c.name).where(
                subscribers.c.email_key == email_key
            )
        ).first()
        if row is None:
            return None
        tags = sorted(
            conn.scalars(
                select(subscriber_tags.c.tag).where(subscriber_tags.c.subscriber_id == row.id)
            )
        )
    return {"id": row.id, "status": row.status, "name": row.name, "tags": tags}


def table_rows(engine: Engine) -> dict[str, int]:
    """How many rows the tables the pages write hold: to assert nothing changed."""
    with engine.connect() as conn:
        return {
            "subscribers": len(conn.execute(select(subscribers)).all()),
            "tags": len(conn.execute(select(subscriber_tags)).all()),
            "confirmations": len(conn.execute(select(confirmations)).all()),
        }


def snapshot(engine: Engine) -> list[tuple[Any, ...]]:
    """Every subscriber row and tag, to compare before and after a refused request."""
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(subscribers).order_by(subscribers.c.id))]
        rows += [tuple(r) for r in conn.execute(select(subscriber_tags))]
        rows += [tuple(r) for r in conn.execute(select(confirmations))]
    return rows


def outbox_messages(settings: Settings, folder: str) -> list[EmailMessage]:
    """The .eml files the outbox provider wrote for `folder`, oldest first."""
    found = sorted((settings.state_dir / "outbox" / folder).glob("*.eml"))
    return [
        email.message_from_bytes(p.read_bytes(), policy=default)  # type: ignore[misc]
        for p in found
    ]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def link_in(message: EmailMessage, path: str) -> str:
    """The first link to `path` (e.g. "/confirm") in a message's text part."""
    found = re.search(rf"https?://\S+{re.escape(path)}\?token=\S+", text_of(message))
    assert found, f"no {path} link in the message"
    return found.group(0)


def token_of(link: str) -> str:
    return unquote(link.split("token=", 1)[1])


def wait_for(condition: Any, timeout: float = 10.0) -> Any:
    """Poll until `condition()` is truthy (the confirmation email goes out after the
    answer, in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


@contextlib.contextmanager
def running_server(app: Starlette) -> Iterator[str]:
    """The app on a real uvicorn server on 127.0.0.1 at a free port, in a thread;
    stopped cleanly (lifespan shutdown included) when the block ends. Yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        if not wait_for(lambda: server.started, 20):
            raise RuntimeError("uvicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
