"""The embedded default provider: every message becomes an .eml file on disk.

    .newsletter/outbox/<issue>/<time>-<n>-<address>.eml   the message as a mail program reads it
    .newsletter/outbox/<issue>/index.jsonl                one line per message

No key, no network: the quick start, --dry-run and most tests send here. The files hold
subscribers' addresses and personal links, so the folders are 0700 and the files 0600.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from newsletter.compose.message import Message, to_bytes, to_mime
from newsletter.config import Settings
from newsletter.delivery.providers.base import Options, SendResult, Status
from newsletter.files import write_atomic

# The same facts every adapter states, for the registry in providers/__init__.py.
NAME = "outbox"
KEY_VARIABLE = ""  # no key: nothing leaves the machine
MAX_BATCH = 500  # no limit of its own
# No request is made; the same budget lets the engine size outbox batches as it does for
# the HTTP providers, so a try-out behaves like the real send.
REQUEST_BUDGET = 8_000_000
DEFAULT_RATE = 1000.0  # messages a second: no provider to be polite to
IDEMPOTENT = False  # a batch written again is a second copy of each file
SHARES_BODY = False  # a whole .eml a recipient
FOLDER_MODE = 0o700
FILE_MODE = 0o600


def create(settings: Settings, options: Options) -> OutboxProvider:
    return OutboxProvider(settings.state_dir / "outbox")


class OutboxProvider:
    name = NAME
    max_batch = MAX_BATCH
    idempotent = IDEMPOTENT

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._count = 0
        self._private: set[Path] = set()  # folders made (or tightened) to FOLDER_MODE

    def send(self, batch: Sequence[Message]) -> list[SendResult]:
        results = []
        lines: dict[Path, list[str]] = {}
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for message in batch:
            with self._lock:
                self._count += 1
                n = self._count
            folder = self._private_folder(self.folder / message.issue)
            safe = re.sub(r"[^A-Za-z0-9@._+-]", "_", message.recipient.email)[:80]
            path = folder / f"{stamp}-{n:06d}-{safe}.eml"
            # No fsync per message: the outbox is for trying things out, not for mail.
            write_atomic(path, to_bytes(to_mime(message)), sync=False, private=True)
            lines.setdefault(folder / "index.jsonl", []).append(
                json.dumps(
                    {
                        "time": datetime.now(UTC).isoformat(timespec="seconds"),
                        "to": message.recipient.email,
                        "subject": message.subject,
                        "message_id": message.message_id,
                        "file": path.name,
                    },
                    ensure_ascii=False,
                )
            )
            results.append(SendResult(message.recipient.email, Status.SENT, message.message_id))
        for path, entries in lines.items():
            with self._lock, _private_append(path) as index:
                index.write("\n".join(entries) + "\n")
        return results

    def _private_folder(self, folder: Path) -> Path:
        """`folder` and the outbox above it, made or tightened to FOLDER_MODE, once each."""
        with self._lock:
            for each in (self.folder, folder):
                if each not in self._private:
                    each.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
                    each.chmod(FOLDER_MODE)  # mkdir leaves an existing folder as it was
                    self._private.add(each)
        return folder


def _private_append(path: Path) -> TextIO:
    """`path` opened to append, FILE_MODE whether new or left wider by an older version."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, "a", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise
