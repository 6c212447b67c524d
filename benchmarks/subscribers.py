"""Import speed and memory: 100,000 and 1,000,000 generated CSV rows.

    python benchmarks/subscribers.py [--sizes 100000,1000000] [--database-url URL]

Each import runs in a fresh child process on a fresh database, so the peak RSS printed is
that import's alone. The CSV has the columns a real export has (email, name, tags, status,
a custom field), a few percent of duplicate and invalid rows, and is written to a
temporary folder first. Aims: at least 20,000 rows/s on SQLite, and peak RSS under 150 MB
for a million rows.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

from _common import peak_rss_mb  # noqa: E402


def generate(path: Path, rows: int) -> None:
    rng = random.Random(rows)
    tags = ["news", "events", "members", "staff", "press"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "tags", "status", "city"])
        for n in range(rows):
            if n and n % 97 == 0:
                email = f"reader{n - 1}@example{(n - 1) % 50}.org"  # a duplicate
            elif n % 211 == 0:
                email = f"broken{n}@"  # invalid
            else:
                email = f"reader{n}@example{n % 50}.org"
            picked = ";".join(rng.sample(tags, rng.randint(0, 2)))
            writer.writerow([email, f"Reader {n}", picked, "active", f"Town {n % 300}"])


def child(csv_path: str, database_url: str) -> None:
    """Run one import and print its figures as JSON."""
    sys.path.insert(0, str(REPO / "src"))
    import dataclasses

    from newsletter.audience.importing import import_csv
    from newsletter.config import load_settings
    from newsletter.storage import open_engine

    root = Path(csv_path).parent
    (root / "newsletter.toml").write_text(
        'name = "Bench"\nfrom = "b@example.org"\nsite_url = "https://example.org/"\n'
    )
    settings = load_settings(root, environ={})
    if database_url:
        settings = dataclasses.replace(settings, database_url=database_url)
    engine = open_engine(settings)
    wall, cpu = time.perf_counter(), time.process_time()
    report = import_csv(engine, Path(csv_path), skip_invalid=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    engine.dispose()
    peak_mb = peak_rss_mb()
    print(
        json.dumps(
            {
                "rows": report.rows,
                "added": report.added,
                "skipped": report.skipped,
                "invalid": report.invalid,
                "wall": wall,
                "cpu": cpu,
                "peak_mb": peak_mb,
            }
        )
    )


def reset_postgres(url: str) -> None:
    sys.path.insert(0, str(REPO / "src"))
    from sqlalchemy import create_engine

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default SQLite)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    where = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{where}; each import in its own process, on an empty database")
    print(
        f"{'rows':>10}{'added':>10}{'skipped':>9}{'invalid':>9}{'wall s':>8}{'CPU s':>7}"
        f"{'rows/s':>9}{'peak RSS MB':>13}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "list.csv"
            generate(path, size)
            if args.database_url:
                reset_postgres(args.database_url)
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(path), args.database_url],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"{r['rows']:>10}{r['added']:>10}{r['skipped']:>9}{r['invalid']:>9}"
                f"{r['wall']:>8.1f}{r['cpu']:>7.1f}{r['rows'] / r['wall']:>9.0f}"
                f"{r['peak_mb']:>13.0f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
