"""The public side under load on loopback: `serve`'s app (create_app) on uvicorn.

    python benchmarks/serve.py [--requests 5000] [--concurrency 16] [--httpx]

Runs the app in a child process (uvicorn, one worker, SQLite, as `serve` does) under a
load of wrk (Debian's `wrk` package; an httpx load from this process without it, see
serve_load.py), then prints requests (or events) per second, p50/p99 latency and the
CPU milliseconds the server and the client spent per request, for:
  - the ceiling: a bare Starlette endpoint answering 200, on the same uvicorn settings;
  - one-click unsubscribes: POST /unsubscribe?token=... with List-Unsubscribe=One-Click;
  - webhook events: SendGrid batches of 100 signed events, and single Postmark events;
  - subscribe POSTs (each from its own client address, as a proxy reports it, so that
    the per-client limit measures nothing but itself).
The share of the bare endpoint's rate that one-click reaches is also measured in pairs:
both servers running, a bare run and a one-click run back to back, --pairs times; the
median pair is the figure (this machine's speed drifts by up to 2x within a minute, so
two runs far apart compare the moments as much as the code).
Then it checks that nothing was lost: every request answered 200 is in the database.
Aims on SQLite on this machine: one-click at least 1,000/s and at least 40% of the
bare endpoint, webhook events at least 5,000/s, p99 under 50 ms. On a machine that
others load too, the CPU per request is the figure to compare between runs.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import Request, Result, have_wrk, run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SECRET = "benchmark-signing-secret-0123456789"
AUTH = "hooks:benchmark-password"
ISSUE = "2026-11-26-welcome"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


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
    logging: dict[str, Any] | None = None
    if not bare:
        from newsletter.web.serve import log_config

        # As `serve` logs, with its lines written to /dev/null (warnings to stderr too).
        logging = log_config()
        logging["handlers"]["null"] = {"class": "logging.FileHandler", "filename": os.devnull}
        logging["handlers"]["warnings"] = logging["handlers"]["default"] | {"level": "WARNING"}
        logging["loggers"]["newsletter"]["handlers"] = ["null", "warnings"]
    profile = os.environ.get("NEWSLETTER_BENCH_PROFILE")  # a file for yappi's figures
    if profile:
        import signal

        import yappi

        def save(*_: object) -> None:
            # uvicorn raises the SIGTERM it caught again once it has shut down.
            yappi.stop()
            yappi.get_func_stats().save(profile + ("-bare" if bare else ""), type="pstat")
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, save)
        yappi.set_clock_type("cpu")
        yappi.start()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        log_config=logging,
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


def lost(database: Path, runs: list[tuple[str, list[Request], Result]]) -> list[str]:
    """The requests answered 200 whose change is not in the database.

    httpx tells which request got which answer; wrk only counts the answers that were not
    200, so with wrk every request sent is looked for and as many missing as there were
    such answers are forgiven.
    """
    problems: list[str] = []
    with sqlite3.connect(database) as conn:
        status = dict(conn.execute("SELECT id, status FROM subscribers"))
        by_email = dict(conn.execute("SELECT email, status FROM subscribers"))
        keys = {k for (k,) in conn.execute("SELECT event_key FROM events")}
    from newsletter.delivery.tokens import read_unsubscribe_token

    for name, requests, result in runs:
        missing: list[str] = []
        for n, (path, body, _) in enumerate(requests):
            if result.ok is not None and not result.ok[n]:
                continue
            if name == "one-click":
                found = read_unsubscribe_token(path.split("token=")[1], SECRET)
                if found is None or status.get(found[0]) != "unsubscribed":
                    missing.append(f"one-click {found} not unsubscribed")
            elif name == "sendgrid":
                missing += [
                    f"sendgrid event {e['sg_event_id']} not stored"
                    for e in json.loads(body)
                    if f"sendgrid:{e['sg_event_id']}" not in keys
                ]
            elif name == "postmark":
                ident = json.loads(body)["ID"]
                if f"postmark:SpamComplaint:{ident}" not in keys:
                    missing.append(f"postmark event {ident} not stored")
            elif name == "subscribe":
                email = body.decode().split("&")[0].removeprefix("email=").replace("%40", "@")
                if by_email.get(email) != "pending":
                    missing.append(f"subscribe {email} not pending")
        forgiven = result.not_ok * (100 if name == "sendgrid" else 1) if result.ok is None else 0
        if len(missing) > forgiven:
            problems += missing
    return problems


# The aims' rates, at which the latency is measured (requests a second): one-click 1,000
# a second, webhook events 5,000 a second (50 SendGrid batches of 100), and single
# Postmark events at the one-click rate (one event a request goes no faster than that).
AIM_RATES = {"one-click": 1000.0, "sendgrid": 50.0, "postmark": 1000.0}
EVENTS = {"sendgrid": 100}  # events a request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="per kind (default 5000)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--paced-seconds", type=float, default=3, help="how long each run at an aim's rate lasts"
    )
    parser.add_argument("--httpx", action="store_true", help="the httpx load even with wrk")
    parser.add_argument("--only", help="kinds to run, comma-separated (bare always runs)")
    parser.add_argument(
        "--pairs", type=int, default=5, help="back-to-back bare and one-click runs (default 5)"
    )
    args = parser.parse_args()
    n, c = args.requests, args.concurrency
    wrk = have_wrk() and not args.httpx
    counts = {"bare": n, "one-click": n, "sendgrid": max(30, n // 30), "postmark": n}
    counts["subscribe"] = min(n, 1000)
    paced = {k: round(rate * args.paced_seconds) for k, rate in AIM_RATES.items()}
    # Spares: 2 × the connections of each run (the paced one has 4 × c of them).
    need = {k: counts[k] + paced.get(k, 0) + 12 * c for k in counts}
    paired_from = need["one-click"]  # the one-clicks after these are the pairs' own
    need["one-click"] += args.pairs * (counts["one-click"] + 4 * c)
    sign, public_key = sendgrid_keys()
    env = {
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_WEBHOOK_AUTH": AUTH,
        "SENDGRID_WEBHOOK_VERIFICATION_KEY": public_key,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_workspace(root, need["one-click"] + need["postmark"] + 100 * need["sendgrid"])
        people = subscriber_ids(root / ".newsletter" / "newsletter.db")
        clicks = people[: need["one-click"]]
        marks = people[need["one-click"] : need["one-click"] + need["postmark"]]
        hooks = people[need["one-click"] + need["postmark"] :]
        requests = {
            "bare": [("/ok", b"List-Unsubscribe=One-Click", FORM)] * need["bare"],
            "one-click": one_clicks(clicks),
            "sendgrid": sendgrid_batches(hooks, sign),
            "postmark": postmark_singles(marks),
            "subscribe": subscribes(need["subscribe"]),
        }
        wanted = args.only.split(",") if args.only else list(requests)
        results: dict[str, Result] = {}
        at_aim: dict[str, Result] = {}
        checked: list[tuple[str, list[Request], Result]] = []
        # Subscribe last, in a server of its own: its confirmation emails go out in the
        # background and must not be counted against the other kinds.
        for bare, names in (
            (True, ["bare"]),
            (False, ["one-click", "sendgrid", "postmark"]),
            (False, ["subscribe"]),
        ):
            names = [name for name in names if name in wanted or bare]
            if not names:
                continue
            server, url = start(root, bare, env)
            try:
                for name in names:
                    plan: list[tuple[int, float | None]] = [(counts[name], None)]
                    if name in AIM_RATES:
                        plan.append((paced[name], AIM_RATES[name]))
                    done = run(url, server.pid, requests[name], c, wrk, plan)
                    results[name] = done[0][1]
                    if len(done) > 1:
                        at_aim[name] = done[1][1]
                    checked += [(name, sent, result) for sent, result in done]
            finally:
                stop(server)
        ratios: list[float] = []
        if "one-click" in wanted and args.pairs:
            clicks = requests["one-click"][paired_from:]
            for bare_run, (sent, click) in pairs(
                root, env, clicks, counts["one-click"], c, wrk, args.pairs
            ):
                ratios.append(click.rate / bare_run.rate)
                checked.append(("one-click", sent, click))
        problems = lost(root / ".newsletter" / "newsletter.db", checked)
    report(results, at_aim, problems, c, wrk, ratios)


def pairs(
    root: Path,
    env: dict[str, str],
    clicks: list[Request],
    count: int,
    concurrency: int,
    wrk: bool,
    times: int,
) -> list[tuple[Result, tuple[list[Request], Result]]]:
    """`times` pairs of runs back to back, both servers up: the bare endpoint, then as
    many one-clicks (each pair with one-clicks of its own). Returns each pair's bare
    result, and the one-clicks it sent with their result."""
    bare_server, bare_url = start(root, True, env)
    try:
        app_server, app_url = start(root, False, env)
        try:
            done = []
            bare_load = [("/ok", b"List-Unsubscribe=One-Click", FORM)] * (count + 4 * concurrency)
            for _ in range(times):
                bare = run(bare_url, bare_server.pid, bare_load, concurrency, wrk, [(count, None)])
                ((sent, click),) = run(
                    app_url, app_server.pid, clicks, concurrency, wrk, [(count, None)]
                )
                done.append((bare[0][1], (sent, click)))
                # The warm-up's, and this run's: the next pair's are all fresh.
                clicks = clicks[clicks.index(sent[-1]) + 1 if sent else 0 :]
            return done
        finally:
            stop(app_server)
    finally:
        stop(bare_server)


def line(name: str, result: Result) -> str:
    per = EVENTS.get(name, 1)
    what = {"sendgrid": "events/s (batches of 100)", "postmark": "events/s"}.get(name, "requests/s")
    return (
        f"  {name:<10} {result.rate * per:>8,.0f} {what:<26} {result.p50_ms:5.1f} ms"
        f" {result.p99_ms:5.1f} ms  {result.server_ms / per:6.3f} ms"
        f"   {result.client_ms / per:6.3f} ms"
        + (f"  ({result.not_ok} not 200)" if result.not_ok else "")
    )


def report(
    results: dict[str, Result],
    at_aim: dict[str, Result],
    problems: list[str],
    concurrency: int,
    wrk: bool,
    ratios: list[float] | None = None,
) -> None:
    load = "wrk" if wrk else "httpx (install Debian's wrk for a lighter client)"
    print(
        f"SQLite, one uvicorn worker, {load} on loopback; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
    )
    print(f"As fast as it answers, {concurrency} requests in flight:")
    print(f"  {'':<10} {'rate':>8} {'':<26} {'p50':>8} {'p99':>8}   server CPU  client CPU")
    for name, result in results.items():
        print(line(name, result))
    print("  (CPU per request, or per event for the webhooks)")
    if at_aim:
        print("At the aims' rates:")
    for name, result in at_aim.items():
        print(line(name, result))
    print(
        "  On one core of its own the server would answer about "
        + ", ".join(
            f"{name} {1000 / max(r.server_ms, 1e-3) * EVENTS.get(name, 1):,.0f}/s"
            for name, r in results.items()
        )
    )
    if ratios:
        print(
            f"  One-click's share of the bare endpoint's rate, {len(ratios)} pairs back to back: "
            + ", ".join(f"{r:.0%}" for r in ratios)
            + f" (median {statistics.median(ratios):.0%})"
        )
    if problems:
        print(f"  LOST: {len(problems)} changes answered 200 are not in the database, such as")
    for problem in problems[:10]:
        print(f"    {problem}")
    if len(results) < 5:
        return
    bare, click = results["bare"], results["one-click"]
    share = statistics.median(ratios) if ratios else click.rate / bare.rate
    how = f"median of {len(ratios)} pairs" if ratios else "one pair"
    aims = [
        ("one-click at least 1,000/s", click.rate >= 1000),
        (
            f"one-click at least 40% of the bare endpoint ({share:.0%}, {how}; the first runs "
            f"above {click.rate / bare.rate:.0%}, {bare.server_ms / click.server_ms:.0%} in "
            "server CPU per request)",
            share >= 0.4,
        ),
        (
            "webhook events at least 5,000/s (SendGrid batches)",
            results["sendgrid"].rate * 100 >= 5000,
        ),
        ("single Postmark events at least 1,000/s", results["postmark"].rate >= 1000),
        (
            "p99 under 50 ms at the aims' rates (one-click, webhooks)",
            all(r.p99_ms < 50 for r in at_aim.values()),
        ),
        ("nothing lost: every 200 is in the database", not problems),
    ]
    for text, met in aims:
        print(f"  {'met    ' if met else 'NOT MET'}  {text}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", os.environ["NEWSLETTER_BENCH_ENV"])
    else:
        main()
