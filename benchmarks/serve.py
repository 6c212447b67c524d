"""The public side under load on loopback: `serve`'s app (create_app) on uvicorn.

    python benchmarks/serve.py [--requests 3000] [--concurrency 16]

Runs the app in a child process (uvicorn, one worker, SQLite, as `serve` does) and an
httpx load from this one, then prints requests (or events) per second and p50/p99
latency for:
  - the ceiling: a bare Starlette endpoint answering 200, on the same uvicorn settings;
  - one-click unsubscribes: POST /unsubscribe?token=... with List-Unsubscribe=One-Click;
  - webhook events: SendGrid batches of 100 signed events, and single Postmark events;
  - subscribe POSTs (each from its own client address, as a proxy reports it, so that
    the per-client limit measures nothing but itself).
Then it checks that nothing was lost: every request answered 200 is in the database.
Aims on SQLite on this machine: one-click at least 1,000/s and at least 40% of the
bare endpoint, webhook events at least 5,000/s, p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
SECRET = "benchmark-signing-secret-0123456789"
AUTH = "hooks:benchmark-password"
ISSUE = "2026-11-26-welcome"


# --- the child: the app on uvicorn --------------------------------------------------------------


def child(root: str, port: int, bare: bool, env_json: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    if bare:

        async def ok(request: Any) -> PlainTextResponse:
            await request.body()
            return PlainTextResponse("ok")

        app: Any = Starlette(routes=[Route("/ok", ok, methods=["POST"])])
    else:
        sys.path.insert(0, str(REPO / "src"))
        from newsletter.config import load_settings
        from newsletter.web.app import create_app

        environ = json.loads(env_json)
        app = create_app(load_settings(Path(root), environ=environ), environ)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=True,  # as `serve --behind-proxy`: the client is X-Forwarded-For
        server_header=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(root: Path, bare: bool, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", str(root), str(port), "1" if bare else "0"],
        env={**os.environ, "NEWSLETTER_BENCH_ENV": json.dumps(env)},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/healthz", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- the load ---------------------------------------------------------------------------------

Request = tuple[str, bytes, dict[str, str]]  # path, body, headers


async def load(url: str, requests: list[Request], concurrency: int) -> dict[str, Any]:
    """POST every request, `concurrency` at a time; rate, latencies, which got 200."""
    latencies: list[float] = []
    ok: list[int] = [0] * len(requests)
    queue = iter(enumerate(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def worker() -> None:
            for n, (path, body, headers) in queue:
                began = time.perf_counter()
                try:
                    answer = await client.post(path, content=body, headers=headers)
                except httpx.TransportError:  # the server dropped it: counted as lost
                    ok[n] = 0
                    continue
                latencies.append(time.perf_counter() - began)
                ok[n] = answer.status_code

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    latencies = latencies or [float("nan")]
    return {
        "rate": len(requests) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "statuses": ok,
    }


def run(url: str, requests: list[Request], concurrency: int) -> dict[str, Any]:
    asyncio.run(load(url, requests[: concurrency * 2], concurrency))  # warm up
    return asyncio.run(load(url, requests[concurrency * 2 :], concurrency))


# --- the workspace and the requests -------------------------------------------------------------


def make_workspace(root: Path, readers: int) -> None:
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    shutil.copytree(REPO / "issues" / ISSUE, root / "issues" / ISSUE)
    with open(root / "list.csv", "w") as handle:
        handle.write("email,name\n")
        for n in range(readers):
            handle.write(f"reader{n}@example{n % 50}.org,Reader {n}\n")
    sys.path.insert(0, str(REPO / "src"))
    from newsletter.audience.importing import import_csv
    from newsletter.config import load_settings
    from newsletter.storage import open_engine

    engine = open_engine(load_settings(root, environ={}))
    import_csv(engine, root / "list.csv")
    engine.dispose()


def subscriber_ids(database: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(database) as conn:
        return list(conn.execute("SELECT id, email FROM subscribers ORDER BY id"))


def sendgrid_keys() -> tuple[Callable[[bytes], dict[str, str]], str]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def headers(body: bytes) -> dict[str, str]:
        stamp = str(int(time.time()))
        signature = private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "Content-Type": "application/json",
        }

    return headers, base64.b64encode(public).decode()


def one_clicks(people: list[tuple[int, str]]) -> list[Request]:
    from newsletter.delivery.tokens import unsubscribe_token

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    return [
        (
            f"/unsubscribe?token={unsubscribe_token(i, ISSUE, SECRET)}",
            b"List-Unsubscribe=One-Click",
            form,
        )
        for i, _ in people
    ]


def sendgrid_batches(
    people: list[tuple[int, str]], sign: Callable[[bytes], dict[str, str]]
) -> list[Request]:
    batches = []
    stamp = int(time.time())
    for start in range(0, len(people) - 99, 100):
        events = [
            {
                "email": email,
                "timestamp": stamp,
                "event": "bounce" if n % 2 else "delivered",
                "type": "bounce",
                "sg_event_id": f"sg-{start + n}",
                "issue": ISSUE,
            }
            for n, (_, email) in enumerate(people[start : start + 100])
        ]
        body = json.dumps(events).encode()
        batches.append(("/webhooks/sendgrid", body, sign(body)))
    return batches


def postmark_singles(people: list[tuple[int, str]]) -> list[Request]:
    auth = {
        "Authorization": "Basic " + base64.b64encode(AUTH.encode()).decode(),
        "Content-Type": "application/json",
    }
    template = json.loads((REPO / "tests/webhook_samples/postmark/spam-complaint.json").read_text())
    return [
        (
            "/webhooks/postmark",
            json.dumps(template | {"ID": 10_000 + n, "Email": email}).encode(),
            auth,
        )
        for n, (_, email) in enumerate(people)
    ]


def subscribes(count: int) -> list[Request]:
    return [
        (
            "/subscribe",
            f"email=new{n}%40example.net&name=New+{n}".encode(),
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Forwarded-For": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
            },
        )
        for n in range(count)
    ]


# --- nothing lost -----------------------------------------------------------------------------


def lost(
    database: Path, phases: dict[str, tuple[list[Request], dict[str, Any]]]
) -> tuple[list[str], dict[str, int]]:
    """What got a 200 and is not in the database; how many requests got no 200."""
    problems: list[str] = []
    refused: dict[str, int] = {}
    with sqlite3.connect(database) as conn:
        status = dict(conn.execute("SELECT id, status FROM subscribers"))
        by_email = dict(conn.execute("SELECT email, status FROM subscribers"))
        keys = {k for (k,) in conn.execute("SELECT event_key FROM events")}
    for name, (requests, result) in phases.items():
        for (path, body, _), code in zip(requests, result["statuses"], strict=True):
            if code != 200:
                refused[name] = refused.get(name, 0) + 1
                continue
            if name == "one-click":
                from newsletter.delivery.tokens import read_unsubscribe_token

                found = read_unsubscribe_token(path.split("token=")[1], SECRET)
                if found is None or status.get(found[0]) != "unsubscribed":
                    problems.append(f"one-click {found} not unsubscribed")
            elif name == "sendgrid":
                missing = [
                    e for e in json.loads(body) if f"sendgrid:{e['sg_event_id']}" not in keys
                ]
                problems += [f"sendgrid event {e['sg_event_id']} not stored" for e in missing]
            elif name == "postmark":
                ident = json.loads(body)["ID"]
                if f"postmark:SpamComplaint:{ident}" not in keys:
                    problems.append(f"postmark event {ident} not stored")
            elif name == "subscribe":
                email = body.decode().split("&")[0].removeprefix("email=").replace("%40", "@")
                if by_email.get(email) != "pending":
                    problems.append(f"subscribe {email} not pending")
    return problems, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    n, c = args.requests, args.concurrency
    sign, public_key = sendgrid_keys()
    env = {
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_WEBHOOK_AUTH": AUTH,
        "SENDGRID_WEBHOOK_VERIFICATION_KEY": public_key,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_workspace(root, 3 * n + 200 * c)
        people = subscriber_ids(root / ".newsletter" / "newsletter.db")
        clicks, hooks, marks = (
            people[: n + 2 * c],
            people[n + 2 * c : 2 * n + 100 * (2 * c)],
            people[2 * n + 200 * c :],
        )
        requests = {
            "bare": [("/ok", b"List-Unsubscribe=One-Click", {})] * (n + 2 * c),
            "one-click": one_clicks(clicks),
            "sendgrid": sendgrid_batches(hooks, sign),
            "postmark": postmark_singles(marks),
            "subscribe": subscribes(min(n, 1000) + 2 * c),
        }
        results: dict[str, dict[str, Any]] = {}
        server, url = start(root, True, env)
        try:
            results["bare"] = run(url, requests["bare"], c)
        finally:
            stop(server)
        server, url = start(root, False, env)
        try:
            for name in ("one-click", "sendgrid", "postmark", "subscribe"):
                results[name] = run(url, requests[name], c)
        finally:
            stop(server)
        phases = {k: (requests[k][2 * c :], results[k]) for k in results if k != "bare"}
        problems, refused = lost(root / ".newsletter" / "newsletter.db", phases)
    report(results, problems, refused, c)


def report(
    results: dict[str, dict[str, Any]],
    problems: list[str],
    refused: dict[str, int],
    concurrency: int,
) -> None:
    print(f"SQLite, one uvicorn worker, {concurrency} requests in flight, httpx on loopback")
    units = {"sendgrid": 100}
    for name, result in results.items():
        per = units.get(name, 1)
        what = (
            "events/s (batches of 100)"
            if per > 1
            else ("events/s" if name == "postmark" else "requests/s")
        )
        rate, p50, p99 = result["rate"] * per, result["p50_ms"], result["p99_ms"]
        print(f"  {name:<10} {rate:>8,.0f} {what:<26} p50 {p50:5.1f} ms  p99 {p99:5.1f} ms")
    bare, click = results["bare"]["rate"], results["one-click"]["rate"]
    aims = [
        ("one-click at least 1,000/s", click >= 1000),
        (f"one-click at least 40% of the bare endpoint ({click / bare:.0%})", click >= 0.4 * bare),
        ("SendGrid webhook events at least 5,000/s", results["sendgrid"]["rate"] * 100 >= 5000),
        (
            "p99 under 50 ms (one-click, webhooks)",
            all(results[k]["p99_ms"] < 50 for k in ("one-click", "sendgrid", "postmark")),
        ),
        ("nothing lost: every 200 is in the database", not problems),
    ]
    for text, met in aims:
        print(f"  {'met    ' if met else 'NOT MET'}  {text}")
    for problem in problems[:10]:
        print(f"    {problem}")
    for name, count in refused.items():
        print(f"  {name}: {count} requests did not get a 200 (see the server's errors above)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", os.environ["NEWSLETTER_BENCH_ENV"])
    else:
        main()
