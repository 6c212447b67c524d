"""Time `newsletter check` on a current build: the example issue and a 30-article one.

    python benchmarks/check.py [--repeat N]

The build is made once beforehand, so the figures are the rules alone (what `send` adds
before its plan when nothing changed), with the slowest rules listed. Aim: under 1 s for
the 30-article issue, whose HTML is near Gmail's 102 KB.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from newsletter.checks import RULES, check_email, load_email
from newsletter.compose.build import build_issue
from newsletter.config import load_settings

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "issues" / "2026-11-26-welcome"


def workspace(root: Path, articles: int) -> Path:
    """A copy of the example workspace whose issue repeats its articles to `articles`."""
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    folder = root / "issues" / EXAMPLE.name
    shutil.copytree(EXAMPLE, folder)
    sources = sorted(p for p in EXAMPLE.iterdir() if p.name != "issue.toml")
    names = []
    for i in range(articles):
        source = sources[i % len(sources)]
        name = f"{i:02d}-{source.name}" if i >= len(sources) else source.name
        if i >= len(sources):
            shutil.copy(source, folder / name)
        names.append(name)
    issue = folder / "issue.toml"
    text = issue.read_text(encoding="utf-8").split("articles = [")[0]
    listed = ", ".join(f'"{n}"' for n in names)
    issue.write_text(f'{text}articles = [{listed}]\ntemplate = "email"\n', encoding="utf-8")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for articles in (3, 30):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            folder = workspace(root, articles)
            settings = load_settings(root, environ={})
            build_issue(settings, folder)
            email = load_email(settings, folder)
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                report = check_email(load_email(settings, folder))
                times.append(time.perf_counter() - started)
            per_rule = []
            for rule in RULES.values():
                if rule.needs:
                    continue
                started = time.perf_counter()
                list(rule.run(email))
                per_rule.append((time.perf_counter() - started, rule.id))
            slowest = ", ".join(f"{rid} {t * 1000:.0f} ms" for t, rid in sorted(per_rule)[-3:])
            print(
                f"{articles:>2} articles, HTML {len(email.html) / 1000:.0f} KB: check "
                f"{statistics.median(times) * 1000:.0f} ms median of {args.repeat} "
                f"({len(report.findings)} findings); slowest rules: {slowest}"
            )


if __name__ == "__main__":
    main()
