"""The fake's HTTP server: one real server on 127.0.0.1 in a thread, routing each request
to the provider module whose endpoint it is, and playing the faults a test queued.

Faults make the next requests answer 429 with Retry-After, 500, slowly, with HTML, drop
the connection mid-answer, process the request and then answer an unreadable 200
("garbled"), or answer a body of `huge_size` bytes made as it is sent ("huge", "huge-500");
"ok" takes a turn and changes nothing. So the adapters and the engine meet them over a
real socket. With `echo` set, every answer quotes the request back: its headers (as JSON
and URL-encoded), its body and `echo_extra`, in the body, in each per-item message and in
response headers, the way a careless proxy or provider might.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

from fake_provider import mailgun, postmark, resend, sendgrid
from fake_provider.wire import Accepted, Refusal, Seen, plain_error, validator

ENDPOINTS: tuple[ModuleType, ...] = (postmark, sendgrid, mailgun, resend)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # senders in several processes never wait out a dropped SYN

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
        self.echo = False  # answers quote the request back (see the module docstring)
        self.echo_extra = ""  # and this text, standing in for whatever a provider says
        self.huge_size = 200 * 1024 * 1024  # bytes of a "huge" answer
        self.huge_sent = 0  # bytes of the last "huge" answer the socket took
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
            self.echo = False
            self.echo_extra = ""
            self.huge_size = 200 * 1024 * 1024
            self.huge_sent = 0

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
                if fault == "garbled":  # processed, but the answer cannot be read
                    status, answer = 200, "<html><body>Welcome to our proxy</body></html>"
            except Refusal as refusal:
                status, answer, extra = refusal.status, refusal.body, refusal.headers
            if fake.echo:
                quoted = _quote(headers, body, fake.echo_extra)
                answer, extra = _echoed(answer, quoted), {**extra, **_echo_headers(headers)}
                if fake.echo_extra:
                    extra["X-Echo-Extra"] = fake.echo_extra
            if fault in ("huge", "huge-500"):
                self._huge(seen, 200 if fault == "huge" else 500)
                return
            self._answer(seen, fault, status, answer, extra)

        def _huge(self, seen: Seen, status: int) -> None:
            """A JSON-looking answer of huge_size bytes, made as it is sent; counts what
            the socket took before the client hung up."""
            size, chunk = fake.huge_size, b'{"pad": "' + b"x" * (64 * 1024 - 9)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            seen.status = status
            sent = 0
            try:
                while sent < size:
                    piece = chunk[: size - sent]
                    self.wfile.write(piece)
                    sent += len(piece)
            except OSError:
                pass  # the client stopped reading and closed: what the test wants
            finally:
                fake.huge_sent = sent
                self.close_connection = True

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


def _quote(headers: dict[str, str], body: bytes, extra: str) -> str:
    """The request as a careless answer would quote it back, credentials first (so that
    they fall within the excerpt a message quotes)."""
    credentials = " ".join(f"{k}: {v}" for k, v in _echo_headers(headers).items())
    return (
        f" [echo: {credentials} {extra} headers={json.dumps(headers)} "
        f"form={urllib.parse.urlencode(headers)} body={body[:4000].decode('utf-8', 'replace')}]"
    )


def _echoed(answer: Any, quoted: str) -> Any:
    """`answer` with the quote in its body and in every message it holds."""
    if isinstance(answer, bytes):
        return answer + quoted.encode()
    if isinstance(answer, str):
        return answer + quoted
    if isinstance(answer, list):
        return [_echoed(item, quoted) for item in answer]
    if isinstance(answer, dict):
        said = {k: v + quoted if k in ("Message", "message") and isinstance(v, str) else v
                for k, v in answer.items()}  # fmt: skip
        if isinstance(said.get("errors"), list):
            said["errors"] = [_echoed(e, quoted) for e in said["errors"]]
        return {**said, "echo": quoted}
    return answer


def _echo_headers(headers: dict[str, str]) -> dict[str, str]:
    """The request's credentials, back in response headers (which httpcore logs)."""
    return {
        f"X-Echo-{name}": value
        for name, value in headers.items()
        if name in ("authorization", "x-postmark-server-token") and value.isascii()
    }


def running() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    try:
        yield fake
    finally:
        fake.stop()
