"""The fake's HTTP server: one real server on 127.0.0.1 in a thread, routing each request
to the provider module whose endpoint it is, and playing the faults a test queued.

Faults make the next requests answer 429 with Retry-After, 500, slowly, with HTML, or
drop the connection mid-answer ("ok" takes a turn and changes nothing), so that the
adapters and the engine meet them over a real socket.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

from fake_provider import mailgun, postmark, resend, sendgrid
from fake_provider.wire import Accepted, Refusal, Seen, plain_error, validator

ENDPOINTS: tuple[ModuleType, ...] = (postmark, sendgrid, mailgun, resend)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out or a dropped answer is part of the test, not news."""


class FakeProvider:
    def __init__(self) -> None:
        self.accepted: list[Accepted] = []
        self.seen: list[Seen] = []
        self.faults: list[str] = []
        # Every JSON body is checked against its provider's official schema (tests/schemas).
        self.validators = {e.NAME: validator(e.SCHEMA) for e in ENDPOINTS if e.SCHEMA}
        self.schema_checked: set[str] = set()
        self.idempotency: dict[str, tuple[str, int, bytes]] = {}
        self.slow_seconds = 2.0
        self.delay = 0.0  # seconds every request waits before it is handled
        self.retry_after = "1"
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeProvider:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        """Forget everything, once requests still being answered (slow ones) are done."""
        deadline = time.monotonic() + 10
        while any(seen.status == 0 for seen in self.seen) and time.monotonic() < deadline:
            time.sleep(0.02)
        with self.lock:
            self.accepted.clear()
            self.seen.clear()
            self.faults.clear()
            self.idempotency.clear()
            self.delay = 0.0
            self.retry_after = "1"
            self.slow_seconds = 2.0

    def next_fault(self) -> str | None:
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    def record(self, item: Accepted) -> None:
        with self.lock:
            self.accepted.append(item)

    def recipients(self) -> list[str]:
        return [a.to for a in self.accepted]


def _route(path: str) -> ModuleType | None:
    return next((e for e in ENDPOINTS if e.matches(path)), None)


def _handler(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body must not wait for an ACK

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            endpoint = _route(self.path)
            seen = Seen(endpoint.NAME if endpoint else "unknown", self.path, headers, body)
            with fake.lock:
                fake.seen.append(seen)
            fault = fake.next_fault()  # "ok" takes a turn and changes nothing
            if fake.delay:
                time.sleep(fake.delay)
            error = endpoint.error if endpoint else plain_error
            try:
                if fault == "slow":
                    time.sleep(fake.slow_seconds)
                if fault == "429":
                    raise Refusal(
                        429, error(429, "rate limit exceeded"), {"Retry-After": fake.retry_after}
                    )
                if fault == "500":
                    raise Refusal(500, error(500, "internal error"))
                if fault == "html":
                    raise Refusal(200, "<html><body>Welcome to our proxy</body></html>")
                if fault == "502-html":
                    raise Refusal(502, "<html><body>Bad gateway</body></html>")
                if endpoint is None:
                    raise Refusal(404, {"message": f"no such endpoint {self.path}"})
                status, answer, extra = endpoint.handle(fake, self.path, headers, body)
            except Refusal as refusal:
                status, answer, extra = refusal.status, refusal.body, refusal.headers
            self._answer(seen, fault, status, answer, extra)

        def _answer(
            self, seen: Seen, fault: str | None, status: int, answer: Any, extra: dict[str, str]
        ) -> None:
            payload = (
                answer
                if isinstance(answer, bytes)
                else (answer.encode() if isinstance(answer, str) else json.dumps(answer).encode())
            )
            kind = "text/html" if isinstance(answer, str) else "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            for name, value in extra.items():
                self.send_header(name, value)
            seen.status = status
            if fault == "drop":
                # The request was processed; the answer never arrives whole.
                self.send_header("Content-Length", str(len(payload) + 100))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload:
                self.wfile.write(payload)

    return Handler


def running() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    try:
        yield fake
    finally:
        fake.stop()
