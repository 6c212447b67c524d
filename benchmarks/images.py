"""What local images cost a build, and what a feed or page costs `add`.

    python benchmarks/images.py [--repeat N]

Prints seconds for: checking a 12-megapixel JPEG (header only, as every load of the issue
does), publishing it (decode, turn upright, resize to 1072 px, encode), a build of the
example issue with ten such photos against one without, reading a 50-item feed and
extracting one article page. No network: the feed and page are made here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from newsletter.compose.build import build_issue
from newsletter.compose.feeds import read_feed
from newsletter.compose.images import FILE_WIDTH
from newsletter.compose.pictures import inspect, prepare
from newsletter.compose.webpage import read_page
from newsletter.config import load_settings

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = "2026-11-26-welcome"


def timed(action: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def photo(width: int = 4000, height: int = 3000) -> bytes:
    """A 12-megapixel JPEG with detail in it (flat colour would flatter the encoder)."""
    image = Image.effect_mandelbrot((width, height), (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def feed(items: int = 50) -> bytes:
    entries = "".join(
        f"<item><title>Item {n}</title><link>https://news.example.org/{n}</link>"
        f"<pubDate>Tue, 03 Nov 2026 10:00:00 GMT</pubDate>"
        f"<description>&lt;p&gt;{'Words in a paragraph. ' * 40}&lt;/p&gt;</description></item>"
        for n in range(items)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{entries}'
        "</channel></rss>"
    ).encode()


def page() -> bytes:
    paragraphs = "".join(f"<p>{'A sentence of the article. ' * 20}</p>" for _ in range(30))
    return (
        "<html><head><title>Story</title></head><body><nav>"
        + "<a href='/x'>link</a>" * 50
        + f"</nav><article><h1>Story</h1>{paragraphs}</article><footer>f</footer></body></html>"
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    data = photo()
    print(f"photo: 4000x3000 JPEG, {len(data) / 1e6:.1f} MB")
    print(f"check (header only)      {timed(lambda: inspect(data), repeat) * 1000:8.2f} ms")
    publishing = timed(lambda: prepare(data, FILE_WIDTH), repeat)
    print(f"publish (resize to {FILE_WIDTH})  {publishing:8.3f} s")

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
        shutil.copytree(REPO / "issues" / EXAMPLE, root / "issues" / EXAMPLE)
        settings = load_settings(root, environ={})
        folder = root / "issues" / EXAMPLE
        plain = timed(lambda: build_issue(settings, folder), repeat)
        story = folder / "library-reopens.md"
        text = story.read_text(encoding="utf-8")
        for n in range(10):
            (folder / f"photo-{n}.jpg").write_bytes(data + bytes([n]))  # ten files
        story.write_text(
            text + "".join(f"\n![Photo {n}](photo-{n}.jpg)\n" for n in range(10)), "utf-8"
        )
        with_photos = timed(lambda: build_issue(settings, folder), repeat)
        print(f"build, example issue     {plain:8.3f} s")
        print(f"build, with 10 photos    {with_photos:8.3f} s")

    items = feed()
    since = dt.date(2026, 1, 1)
    reading = timed(lambda: read_feed(items, "feed.xml", since), repeat)
    print(f"feed, 50 items           {reading * 1000:8.1f} ms")
    html = page()
    extracting = timed(lambda: read_page(html, "https://example.org/story"), repeat)
    print(f"page extraction          {extracting * 1000:8.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
