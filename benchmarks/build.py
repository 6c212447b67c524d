"""Wall and CPU time per build stage, for the example issue and a generated 30-article one.

    python benchmarks/build.py [--repeat N]

Stages: read (issue.toml and articles), render (Jinja2 + Markdown), inline (premailer,
once per issue), eml (personalize for the sample reader and serialise the MIME message).
Aim: the 30-article issue builds in under 1 s of CPU once Python has started.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from newsletter.compose.build import sample_recipient
from newsletter.compose.inline import inline_css
from newsletter.compose.issue import load_issue
from newsletter.compose.message import build_message, to_bytes, to_mime
from newsletter.compose.render import render
from newsletter.config import load_settings

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "issues" / "2026-11-26-welcome"


def generated_issue(root: Path, count: int) -> Path:
    """An issue of `count` articles cycling through the example's three formats."""
    folder = root / "issues" / f"2026-01-01-bench-{count}"
    folder.mkdir(parents=True)
    sources = sorted(p for p in EXAMPLE.iterdir() if p.name != "issue.toml")
    names = []
    for i in range(count):
        source = sources[i % len(sources)]
        name = f"{i:02d}-{source.name}"
        shutil.copy(source, folder / name)
        names.append(name)
    listed = ", ".join(f'"{n}"' for n in names)
    (folder / "issue.toml").write_text(
        f'subject = "Benchmark issue with {count} articles"\n'
        f'preheader = "Generated"\nintro = "Hello **there**."\narticles = [{listed}]\n'
    )
    return folder


def measure(fn: Callable[[], Any], repeat: int) -> tuple[Any, float, float, float]:
    """Returns (result, first-call CPU ms, median wall ms, median CPU ms) after the first."""
    cpu0 = time.process_time()
    result = fn()
    first_cpu = (time.process_time() - cpu0) * 1000
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        walls.append((time.perf_counter() - w0) * 1000)
        cpus.append((time.process_time() - c0) * 1000)
    return result, first_cpu, statistics.median(walls), statistics.median(cpus)


def bench(label: str, root: Path, folder: Path, repeat: int) -> None:
    settings = load_settings(root, environ={})
    issue, *times_read = measure(lambda: load_issue(folder, settings), repeat)
    rendered, *times_render = measure(lambda: render(issue, settings), repeat)
    html, *times_inline = measure(lambda: inline_css(rendered.html, settings.site_url), repeat)
    final = type(rendered)(rendered.subject, html, rendered.text, rendered.preheader)
    reader = sample_recipient(settings)

    def eml() -> bytes:
        return to_bytes(to_mime(build_message(settings, issue.key, final, reader)))

    data, *times_eml = measure(eml, repeat)
    rows = [("read", times_read), ("render", times_render), ("inline", times_inline)]
    rows.append(("eml", times_eml))
    print(f"\n{label}: {len(issue.articles)} articles, HTML {len(html.encode()) / 1000:.1f} KB,")
    print(f"  .eml {len(data) / 1000:.1f} KB; median of {repeat} runs after a first one")
    print(f"  {'stage':<8}{'first CPU ms':>14}{'wall ms':>10}{'CPU ms':>10}")
    for name, (first, wall, cpu) in rows:
        print(f"  {name:<8}{first:>14.1f}{wall:>10.1f}{cpu:>10.1f}")
    total_wall = sum(r[1][1] for r in rows)
    total_cpu = sum(r[1][2] for r in rows)
    total_first = sum(r[1][0] for r in rows)
    print(f"  {'total':<8}{total_first:>14.1f}{total_wall:>10.1f}{total_cpu:>10.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}")
    bench("example issue", REPO, EXAMPLE, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
        bench("generated issue", root, generated_issue(root, 30), args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
