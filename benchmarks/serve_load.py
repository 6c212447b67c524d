"""The load benchmarks/serve.py puts on the server, and what the server spent on it.

wrk (Debian's `wrk` package) when it is installed: a C client that costs the two cores
the server shares with it far less than Python does. Each request is sent once, from
precomputed raw HTTP (serve_wrk.lua). Without wrk, an httpx load from this process.

Either way the server's CPU time over the run (utime + stime of its process, from
/proc) is measured: on a machine busy with other work the rate tells little, the CPU
milliseconds per request say what the server itself costs.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

LUA = Path(__file__).with_name("serve_wrk.lua")
TICKS = os.sysconf("SC_CLK_TCK")

Request = tuple[str, bytes, dict[str, str]]  # path, body, headers
PACED_CONNECTIONS = 4  # times the concurrency, for the runs paced to a rate


@dataclass
class Result:
    """One run: rate, latency, CPU on both sides, and which requests got a 200."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu_s: float
    client_cpu_s: float
    sent: int  # requests[:sent] went out (each once)
    not_ok: int  # answers that were not 200
    unanswered: int = 0  # wrk: in flight when the run ended (the server still did them)
    ok: list[bool] | None = field(default=None)  # per request, when the client can tell

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def server_ms(self) -> float:
        return self.server_cpu_s * 1000 / max(1, self.requests)

    @property
    def client_ms(self) -> float:
        return self.client_cpu_s * 1000 / max(1, self.requests)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def settle(pid: int, quiet: float = 0.05) -> None:
    """Wait until the server has finished what is still in flight (no CPU for a moment)."""
    before = cpu_seconds(pid)
    for _ in range(200):
        time.sleep(quiet)
        after = cpu_seconds(pid)
        if after == before:
            return
        before = after


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def raw(host: str, request: Request) -> bytes:
    path, body, headers = request
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def with_wrk(
    url: str,
    server_pid: int,
    requests: list[Request],
    count: int,
    concurrency: int,
    rate: float | None = None,
) -> Result:
    """Send the first `count` requests (and, to the connections still busy at the end,
    a few spare ones after them) with wrk, each once; paced to `rate` a second if given."""
    threads = 1  # one wrk thread sends far more than one Python server answers
    host = url.removeprefix("http://")
    with tempfile.NamedTemporaryFile("wb", suffix=".requests", delete=False) as handle:
        for request in requests:
            data = raw(host, request)
            handle.write(b"%d\n" % len(data) + data)
    try:
        settle(server_pid)
        cpu_before = cpu_seconds(server_pid)
        started = time.perf_counter()
        process = subprocess.Popen(
            ["wrk", f"-t{threads}", f"-c{concurrency}", "-d600s", "--timeout", "30s"]
            + ["-s", str(LUA), url, "--", handle.name, str(count), str(threads)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "SERVE_BENCH_RATE": str(rate)} if rate else None,
        )
        assert process.stdout is not None
        done, lines = 0, []
        for line in process.stdout:
            if line == "done\n":
                done += 1
                if done == threads:
                    process.send_signal(signal.SIGINT)
            else:
                lines.append(line)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stdout.close()
        elapsed = time.perf_counter() - started
        settle(server_pid)
        server_cpu = cpu_seconds(server_pid) - cpu_before
    finally:
        os.unlink(handle.name)
    found = [line for line in lines if line.startswith("RESULT ")]
    if not found:
        raise SystemExit("wrk printed no result:\n" + "".join(lines))
    figures = json.loads(found[0].removeprefix("RESULT "))
    answered = figures["requests"]
    return Result(
        requests=answered,
        seconds=min(figures["duration_us"] / 1e6, elapsed),
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        server_cpu_s=server_cpu,
        client_cpu_s=usage.ru_utime + usage.ru_stime,
        sent=figures["sent"],
        not_ok=figures["not_ok"],
        unanswered=figures["sent"] - figures["answered"],
    )


async def _httpx_load(
    url: str, requests: list[Request], concurrency: int, rate: float | None
) -> tuple[float, list[float], list[bool]]:
    latencies: list[float] = []
    ok = [False] * len(requests)
    queue = iter(enumerate(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    next_slot = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal next_slot
            for n, (path, body, headers) in queue:
                if rate:
                    slot = max(next_slot, time.perf_counter())
                    next_slot = slot + 1 / rate
                    await asyncio.sleep(slot - time.perf_counter())
                began = time.perf_counter()
                try:
                    answer = await client.post(path, content=body, headers=headers)
                except httpx.TransportError:  # the server dropped it: counted as not 200
                    continue
                latencies.append(time.perf_counter() - began)
                ok[n] = answer.status_code == 200

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - began, latencies, ok


def with_httpx(
    url: str,
    server_pid: int,
    requests: list[Request],
    count: int,
    concurrency: int,
    rate: float | None = None,
) -> Result:
    """Send the first `count` requests from this process with httpx (paced to `rate`)."""
    settle(server_pid)
    cpu_before = cpu_seconds(server_pid)
    mine = resource.getrusage(resource.RUSAGE_SELF)
    elapsed, latencies, ok = asyncio.run(_httpx_load(url, requests[:count], concurrency, rate))
    after = resource.getrusage(resource.RUSAGE_SELF)
    settle(server_pid)
    latencies.sort()
    latencies = latencies or [float("nan")]
    return Result(
        requests=count,
        seconds=elapsed,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        server_cpu_s=cpu_seconds(server_pid) - cpu_before,
        client_cpu_s=after.ru_utime + after.ru_stime - mine.ru_utime - mine.ru_stime,
        sent=count,
        not_ok=ok.count(False),
        ok=ok,
    )


def run(
    url: str,
    server_pid: int,
    requests: list[Request],
    concurrency: int,
    wrk: bool,
    runs: list[tuple[int, float | None]],
) -> list[tuple[list[Request], Result]]:
    """A warm-up of `concurrency` requests, then each run of `runs` in turn: (how many
    requests, the rate to pace them to or None for as fast as the server answers).
    Each run takes the requests after the ones sent before it (requests holds spares:
    2 × its connections a run); returns the requests each run sent, with its result."""
    load = with_wrk if wrk else with_httpx
    offset = load(url, server_pid, requests[: 2 * concurrency], concurrency, concurrency).sent
    done = []
    for count, rate in runs:
        # Paced, more connections: the rate must not wait for answers on too few of them.
        connections = concurrency * PACED_CONNECTIONS if rate else concurrency
        mine = requests[offset : offset + count + 2 * connections]
        result = load(url, server_pid, mine, count, connections, rate)
        done.append((mine[: result.sent], result))
        offset += result.sent
    return done
