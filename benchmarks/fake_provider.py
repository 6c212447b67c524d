"""A loopback server that answers the batch endpoints of Postmark, SendGrid and Mailgun,
for the send benchmark.

    python benchmarks/fake_provider.py     prints "port N" once listening on 127.0.0.1

It reads every body in full and checks what each provider documents a batch must hold,
then answers in the provider's shape:
  POST /email/batch, /email (Postmark): every message has To and HtmlBody; one result
      per message, with its own MessageID;
  POST /v3/mail/send (SendGrid): 1 to 1000 personalizations, each with a "to", and the
      text/plain content before the text/html; 202 with an X-Message-Id header;
  POST /v3/<domain>/messages (Mailgun): multipart form with one "to" per recipient, at
      most 1000, and recipient-variables; {"id", "message"}.
A body that breaks these gets 400 and the benchmark's send stops on it. The server runs
in its own process so that it does not share the client's interpreter lock; it stops
when its standard input closes.
"""

from __future__ import annotations

import re
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

MAILGUN = re.compile(r"/v3/[^/]+/messages")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body must not wait for a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path in ("/email/batch", "/email"):
            self.postmark(body)
        elif self.path == "/v3/mail/send":
            self.sendgrid(body)
        elif MAILGUN.fullmatch(self.path):
            self.mailgun(body)
        else:
            self.answer(404, {"message": f"no such endpoint: {self.path}"})

    def postmark(self, body: bytes) -> None:
        data = orjson.loads(body)
        if isinstance(data, dict):
            data = [data]  # POST /email: one message
        results = [
            {"ErrorCode": 0, "Message": "OK", "MessageID": str(uuid.uuid4()), "To": m["To"]}
            if m.get("To") and m.get("HtmlBody")
            else {"ErrorCode": 300, "Message": "Invalid email request"}
            for m in data
        ]
        self.answer(200, results if self.path == "/email/batch" else results[0])

    def sendgrid(self, body: bytes) -> None:
        data = orjson.loads(body)
        people = data.get("personalizations", [])
        types = [c.get("type") for c in data.get("content", [])]
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            self.answer(401, {"errors": [{"message": "authorization required"}]})
        elif not 1 <= len(people) <= 1000 or not all(p.get("to") for p in people):
            self.answer(400, {"errors": [{"message": "1 to 1000 personalizations, each to"}]})
        elif types != ["text/plain", "text/html"]:
            self.answer(400, {"errors": [{"message": "text/plain must come first"}]})
        else:
            self.answer(202, None, {"X-Message-Id": uuid.uuid4().hex[:22]})

    def mailgun(self, body: bytes) -> None:
        recipients = body.count(b'name="to"')
        if not self.headers.get("Authorization", "").startswith("Basic "):
            self.answer(401, {"message": "Forbidden"})
        elif not self.headers.get("Content-Type", "").startswith("multipart/form-data"):
            self.answer(400, {"message": "expected multipart/form-data"})
        elif not 1 <= recipients <= 1000 or b'name="recipient-variables"' not in body:
            self.answer(400, {"message": "1 to 1000 to, with recipient-variables"})
        else:
            self.answer(200, {"id": f"<{uuid.uuid4().hex}@mg.example>", "message": "Queued"})

    def answer(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        payload = b"" if data is None else orjson.dumps(data)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if data is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"port {server.server_address[1]}", flush=True)
    sys.stdin.read()  # until the parent closes it
    server.shutdown()


if __name__ == "__main__":
    main()
