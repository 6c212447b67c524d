"""Seconds for `newsletter archive` over many issues: cold, unchanged, and one issue added.

    python benchmarks/archive.py [--issues 500] [--workspace DIR]

Generates a workspace of small weekly issues (two short Markdown articles each, one with
an image the build publishes beside the email), builds them all (two processes; not
timed as the archive's), marks them sent, then times the archive written from nothing,
run again with nothing changed, and run after one more issue was sent. --workspace keeps
the generated workspace (and its builds) in DIR for the next run.
Aim: the incremental run under 2 s for 500 issues.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from newsletter.compose.build import build_issue
from newsletter.config import Settings, load_settings
from newsletter.storage import open_engine, sends, transaction
from newsletter.web.archive import write_archive

REPO = Path(__file__).resolve().parents[1]
FIRST_DAY = dt.date(2016, 1, 7)

ARTICLE = """\
---
title: {title}
author: The editors
date: {date}
summary: What happened in week {week}, in two paragraphs.
---

The council met on Tuesday and agreed the budget for the next quarter. Residents asked
about the bus timetable, the library's hours and the state of the footpath by the weir.

The next meeting is open to everyone; bring your questions. [Read the minutes](/minutes/{week}).
"""


def issue_key(n: int) -> str:
    return f"{(FIRST_DAY + dt.timedelta(weeks=n)).isoformat()}-week-{n}"


def write_issue(root: Path, n: int) -> Path:
    folder = root / "issues" / issue_key(n)
    folder.mkdir(parents=True, exist_ok=True)
    day = FIRST_DAY + dt.timedelta(weeks=n)
    (folder / "issue.toml").write_text(
        f'subject = "Week {n}: the budget, the buses and the weir"\n'
        f'preheader = "What the council decided in week {n}, and when to have your say."\n'
    )
    for part in ("a", "b"):
        (folder / f"{part}.md").write_text(
            ARTICLE.format(title=f"Week {n}, story {part}", date=day.isoformat(), week=n)
        )
    return folder


def build_range(root: str, numbers: list[int]) -> None:
    """Build issues in a worker; stands in for the image build step with a small file."""
    settings = load_settings(Path(root), environ={})
    for n in numbers:
        out = build_issue(settings, settings.issues_dir / issue_key(n)).out_dir
        (out / f"chart-{n:04d}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000))


def mark_sent(settings: Settings, keys: list[str]) -> None:
    engine = open_engine(settings)
    try:
        with transaction(engine) as conn:
            done = {row[0] for row in conn.execute(sends.select().with_only_columns(sends.c.issue))}
            rows = [
                {
                    "issue": key,
                    "content_hash": "0" * 64,
                    "segment": "",
                    "provider": "outbox",
                    "audience": 0,
                    "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                }
                for key in keys
                if key not in done
            ]
            if rows:
                conn.execute(sends.insert(), rows)
    finally:
        engine.dispose()


def timed(label: str, fn: Callable[[], Any]) -> Any:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<44} {wall:7.2f} s  ({cpu:.2f} s CPU)", flush=True)
    return result


def prepare(root: Path, count: int) -> Settings:
    """The workspace with `count` built issues; what is there already is kept."""
    if not (root / "newsletter.toml").exists():
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    missing = [n for n in range(count) if not (root / "issues" / issue_key(n)).is_dir()]
    for n in missing:
        write_issue(root, n)
    if missing:
        chunks = [missing[i::2] for i in range(2)]
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(build_range, [str(root)] * 2, chunks))
    settings = load_settings(root, environ={})
    mark_sent(settings, [issue_key(n) for n in range(count)])
    return settings


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=500)
    parser.add_argument("--workspace", type=Path, help="keep the generated workspace here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.workspace or Path(scratch) / "ws"
        settings = timed(
            f"generate and build {args.issues} issues (setup)",
            lambda: prepare(root, args.issues),
        )
        out = Path(scratch) / "archive"
        result = timed(f"archive, cold, {args.issues} issues", lambda: write_archive(settings, out))
        assert len(result.written) == args.issues, result
        result = timed("archive again, nothing changed", lambda: write_archive(settings, out))
        assert result.written == [], result.written
        extra = args.issues
        write_issue(root, extra)
        build_range(str(root), [extra])
        mark_sent(settings, [issue_key(extra)])
        result = timed(
            "archive, one new issue sent (incremental)", lambda: write_archive(settings, out)
        )
        assert result.written == [issue_key(extra)], result.written
        files = sum(1 for p in out.rglob("*") if p.is_file())
        print(f"archive: {len(result.archived)} issues, {files} files")
        if args.workspace:  # leave it as it was generated, for the next run
            shutil.rmtree(root / "issues" / issue_key(extra))
            shutil.rmtree(settings.build_dir / issue_key(extra), ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
