"""A loopback server that answers Postmark's POST /email/batch, for the send benchmark.

    python benchmarks/fake_postmark.py     prints "port N" once listening on 127.0.0.1

It parses every body in full, checks each message has To and HtmlBody, and answers one
result per message, like Postmark. It runs in its own process so that it does not share
the client's interpreter lock; it stops when its standard input closes.
"""

from __future__ import annotations

import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body must not wait for a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        data = orjson.loads(body)
        if isinstance(data, dict):
            data = [data]  # POST /email: one message
        results = [
            {"ErrorCode": 0, "Message": "OK", "MessageID": str(uuid.uuid4()), "To": m["To"]}
            if m.get("To") and m.get("HtmlBody")
            else {"ErrorCode": 300, "Message": "Invalid email request"}
            for m in data
        ]
        payload = orjson.dumps(results if self.path == "/email/batch" else results[0])
        self.send_response(200)
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
