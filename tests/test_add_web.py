"""`add` from the web: an article page and a feed served on 127.0.0.1, and every way a
server can get it wrong (slow, 404, 50 MB, binary, not a feed, redirects without end).

The server is a real one on a random loopback port. Unit cases use httpx.MockTransport;
a URL that is not loopback only ever meets a transport that fails the test if called.
"""

from __future__ import annotations

import datetime as dt
import threading
import tomllib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.compose.build import build_issue
from newsletter.compose.fetch import MAX_BYTES, new_client
from newsletter.compose.issue import add_articles, load_issue
from newsletter.config import Settings
from newsletter.errors import ContentError

from conftest import write

PAGE = b"""<!DOCTYPE html><html><head><title>Millbrook News | The garden opens</title>
<meta name="author" content="Jane Roe"><meta property="og:image" content="/img/lead.jpg">
<meta property="article:published_time" content="2026-11-20T10:00:00Z">
<meta name="description" content="Twelve raised beds and a party on Saturday."></head>
<body><nav><a href="/">Home</a> <a href="/about">About us</a></nav>
<article><h1>The garden opens</h1>
<p>The community garden on Mill Street opens on Saturday with <a href="/events">a party</a>
for everyone who helped build it over the summer.</p>
<img src="/img/beds.jpg" alt="Raised beds">
<p>Volunteers built twelve raised beds, and the first vegetables are already growing.</p>
<script>alert("no")</script><p onclick="alert(1)">Bring a cup; there will be tea.</p>
</article><footer>Copyright Millbrook</footer></body></html>"""

FEED = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>Millbrook News</title><link>https://news.example.org/</link>
<item><title>Library hours &amp; events</title><link>https://news.example.org/library</link>
<pubDate>Tue, 24 Nov 2026 10:00:00 GMT</pubDate><author>ed@example.org (Ed Ames)</author>
<description>Short version.</description>
<content:encoded><![CDATA[<p>The library is open <b>late</b> on Thursdays.</p>
<p><a href="/hours">All hours</a></p><script>alert(1)</script>]]></content:encoded></item>
<item><title>Flood meeting</title><link>https://news.example.org/flood</link>
<pubDate>Mon, 02 Nov 2026 09:00:00 GMT</pubDate>
<description>Come to the meeting.</description></item>
<item><title>Last year's fair</title><link>https://news.example.org/fair</link>
<pubDate>Sat, 01 Nov 2025 09:00:00 GMT</pubDate><description>Old news.</description></item>
</channel></rss>"""


class Site(BaseHTTPRequestHandler):
    """The routes a test needs; writes to a client that gave up are ignored."""

    stop = threading.Event()

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        routes: dict[str, Callable[[], None]] = {
            "/news/garden": lambda: self.answer(200, "text/html; charset=utf-8", PAGE),
            "/feed.xml": lambda: self.answer(200, "application/rss+xml", FEED),
            "/moved": lambda: self.redirect("/news/garden"),
            "/loop": lambda: self.redirect("/loop"),
            "/slow": self.slow,
            "/big": self.big,
            "/big-declared": lambda: self.answer_headers(200, "text/html", 50_000_000),
            "/binary": lambda: self.answer(200, "text/html", b"\x00\x01\x02\x03" * 1000),
            "/pdf": lambda: self.answer(200, "application/pdf", b"%PDF-1.4\n"),
            "/plain": lambda: self.answer(200, "text/plain", b"Just some words, no markup."),
        }
        route = routes.get(self.path)
        try:
            if route is None:
                self.answer(404, "text/html", b"<h1>Not here</h1>")
            else:
                route()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def answer_headers(self, status: int, kind: str, length: int | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def answer(self, status: int, kind: str, body: bytes) -> None:
        self.answer_headers(status, kind, len(body))
        self.wfile.write(body)

    def redirect(self, to: str) -> None:
        self.send_response(302)
        self.send_header("Location", to)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def slow(self) -> None:
        self.stop.wait(5)

    def big(self) -> None:
        """50 MB with no Content-Length: only counting while reading can stop it."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        chunk = b"<p>" + b"x" * 65_530 + b"</p>"
        for _ in range(50_000_000 // len(chunk)):
            if self.stop.is_set():
                return
            self.wfile.write(chunk)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # many connections at once never wait out a dropped SYN

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up mid-answer


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = QuietServer(("127.0.0.1", 0), Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Site.stop.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        Site.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def add_cli(workspace: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--workspace", str(workspace), "add", "welcome", *args])
    return result.exit_code, result.stdout, result.stderr


def folder_state(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- served on loopback ---------------------------------------------------------------------


def test_a_page_and_a_feed_from_a_server_are_added_and_the_issue_builds(
    site: str, workspace: Path, issue_dir: Path, settings: Settings
) -> None:
    code, out, err = add_cli(workspace, f"{site}/moved")  # one redirect, then the page
    assert code == 0, err
    assert out.strip().endswith("issues/2026-11-26-welcome/the-garden-opens.md")
    code, out, err = add_cli(workspace, f"{site}/feed.xml", "--since", "2026-11-02")
    assert code == 0, err
    assert [line.rsplit("/", 1)[-1] for line in out.splitlines()] == [
        "library-hours-events.md",
        "flood-meeting.md",
    ]
    order = tomllib.loads((issue_dir / "issue.toml").read_text())["articles"]
    assert order[-3:] == ["the-garden-opens.md", "library-hours-events.md", "flood-meeting.md"]

    articles = {a.source.name: a for a in load_issue(issue_dir, settings).articles}
    page = articles["the-garden-opens.md"]
    assert (page.title, page.author, page.date) == (
        "The garden opens",
        "Jane Roe",
        dt.date(2026, 11, 20),
    )
    assert page.url == f"{site}/news/garden"
    assert page.image == f"{site}/img/lead.jpg"
    assert f"[a party]({site}/events)" in page.body
    assert f"![Raised beds]({site}/img/beds.jpg)" in page.body
    assert "Bring a cup" in page.body and "alert" not in page.body and "Home" not in page.body
    item = articles["library-hours-events.md"]
    assert (item.title, item.author, item.date) == (
        "Library hours & events",
        "Ed Ames",
        dt.date(2026, 11, 24),
    )
    assert item.url == "https://news.example.org/library"
    assert "**late**" in item.body and "[All hours](https://news.example.org/hours)" in item.body
    assert "alert" not in item.body and "Short version" not in item.body  # content first
    assert articles["flood-meeting.md"].body.strip() == "Come to the meeting."  # the summary

    build_issue(settings, issue_dir)
    html = (settings.build_dir / issue_dir.name / "email.html").read_text()
    assert "The garden opens" in html and "Library hours &amp; events" in html


@pytest.mark.parametrize(
    ("path", "since", "message"),
    [
        ("/missing", None, "the server answered 404 Not Found"),
        ("/big", None, f"is larger than {MAX_BYTES // 1_000_000} MB"),
        ("/big-declared", None, "is 50 MB; a page or feed may be at most 10 MB"),
        ("/binary", None, "the server sent binary data, not a web page or feed"),
        ("/pdf", None, "the server sent 'application/pdf', not a web page or feed"),
        ("/plain", None, "is not a web page (the server sent 'text/plain')"),
        ("/loop", None, "more than 5 redirects"),
        ("/news/garden", "2026-11-01", "is a web page, not an RSS or Atom feed"),
        ("/feed.xml", None, "is a feed; give --since DATE"),
        ("/feed.xml", "2027-01-01", "no items dated 2027-01-01 or later"),
    ],
)
def test_what_a_server_gets_wrong_is_one_line_and_changes_nothing(
    site: str, workspace: Path, issue_dir: Path, path: str, since: str | None, message: str
) -> None:
    before = folder_state(issue_dir)
    code, out, err = add_cli(workspace, f"{site}{path}", *(["--since", since] if since else []))
    assert code == 1, out
    (line,) = err.strip().splitlines()
    assert line.startswith(f"Error: {site}{path}: ") and message in line, line
    assert folder_state(issue_dir) == before
    assert not [p for p in issue_dir.iterdir() if p.name.startswith(".")]


def test_a_server_that_does_not_answer_times_out(
    site: str, settings: Settings, issue_dir: Path
) -> None:
    before = folder_state(issue_dir)
    with (
        new_client(timeout=0.3) as client,
        pytest.raises(ContentError, match=r"/slow: no answer within 0.3 s \(timed out\)"),
    ):
        add_articles(issue_dir, [f"{site}/slow"], settings, client=client)
    assert folder_state(issue_dir) == before


def test_one_bad_source_among_good_ones_adds_nothing(
    site: str, workspace: Path, issue_dir: Path, tmp_path: Path
) -> None:
    before = folder_state(issue_dir)
    good = write(tmp_path / "good.txt", "Good\n\nText\n")
    code, _, err = add_cli(workspace, str(good), f"{site}/news/garden", f"{site}/missing")
    assert code == 1 and "404" in err
    assert folder_state(issue_dir) == before


# --- unit cases on a mock transport ---------------------------------------------------------


def refuse(request: httpx.Request) -> httpx.Response:
    pytest.fail(f"no request may leave the machine: {request.url}")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://files.example.org/story.html", "only http and https URLs can be fetched"),
        ("https:///story.html", "names no host"),
        ("https://news.example.org:http/x", "is not a URL"),
    ],
)
def test_urls_that_cannot_be_fetched_never_reach_the_network(
    settings: Settings, issue_dir: Path, url: str, message: str
) -> None:
    with (
        httpx.Client(transport=httpx.MockTransport(refuse)) as client,
        pytest.raises(ContentError, match=message),
    ):
        add_articles(issue_dir, [url], settings, client=client)


def test_a_page_on_a_mock_transport_is_read_with_its_charset(
    settings: Settings, issue_dir: Path
) -> None:
    page = (
        "<html><head><title>Café</title></head><body><article><h1>Café société</h1>"
        + ("<p>Le café de la place rouvre ses portes après six mois de travaux.</p>" * 3)
        + "</article></body></html>"
    )

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "news.example.org"
        return httpx.Response(
            200,
            content=page.encode("latin-1"),
            headers={"Content-Type": "text/html; charset=ISO-8859-1"},
        )

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        (written,) = add_articles(
            issue_dir, ["https://news.example.org/cafe"], settings, client=client
        )
    text = written.read_text(encoding="utf-8")
    assert "title: Café société" in text and "Le café de la place" in text


def test_a_connection_that_fails_is_one_line(settings: Settings, issue_dir: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    with (
        httpx.Client(transport=httpx.MockTransport(down)) as client,
        pytest.raises(ContentError, match=r"cannot be fetched \(Connection refused\)"),
    ):
        add_articles(issue_dir, ["https://news.example.org/x"], settings, client=client)


@pytest.mark.parametrize(
    ("location", "said"),
    [
        ("file:///etc/passwd", "redirected to a URL that is not http or https"),
        ("javascript:alert(1)", "redirected to a URL that is not http or https"),
        ("http://[::1", r"cannot be fetched \(Invalid URL in location header"),
    ],
)
def test_a_redirect_to_another_scheme_is_refused(
    settings: Settings, issue_dir: Path, location: str, said: str
) -> None:
    def elsewhere(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": location})

    with (
        httpx.Client(transport=httpx.MockTransport(elsewhere), follow_redirects=True) as client,
        pytest.raises(ContentError, match=said),
    ):
        add_articles(issue_dir, ["https://news.example.org/x"], settings, client=client)


def test_a_feed_file_is_read_as_a_feed(settings: Settings, issue_dir: Path, tmp_path: Path) -> None:
    feed = tmp_path / "news.rss"
    feed.write_bytes(FEED)
    written = add_articles(issue_dir, [feed], settings, since=dt.date(2026, 11, 20))
    assert [p.name for p in written] == ["library-hours-events.md"]
    not_a_feed = write(tmp_path / "page.xml", "<html><body><p>hello</p></body></html>")
    with pytest.raises(ContentError, match=r"page\.xml: not an RSS or Atom feed"):
        add_articles(issue_dir, [not_a_feed], settings, since=dt.date(2026, 1, 1))
    with pytest.raises(ContentError, match=r"news\.rss: is a feed; give --since DATE"):
        add_articles(issue_dir, [feed], settings)


def test_text_that_looks_like_markdown_stays_text(settings: Settings, tmp_path: Path) -> None:
    """A hostile item's words cannot become an image of a local file, or a link."""
    feed = tmp_path / "hostile.rss"
    feed.write_bytes(
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        b"<link>https://news.example.org/</link><item><title>Look</title>"
        b"<link>https://news.example.org/look</link>"
        b"<pubDate>Mon, 23 Nov 2026 09:00:00 GMT</pubDate><description>"
        b"see ![x](../../etc/passwd) and [here](https://phish.example.net/)\n\n# not a heading"
        b"</description></item></channel></rss>"
    )
    issue_dir = settings.issues_dir / "2026-11-26-welcome"
    (written,) = add_articles(issue_dir, [feed], settings, since=dt.date(2026, 11, 1))
    build_issue(settings, issue_dir)
    html = (settings.build_dir / issue_dir.name / "email.html").read_text()
    assert "etc/passwd" in html and "phish.example.net" in html  # shown as the words they are
    assert 'src="../../etc/passwd' not in html and 'passwd"' not in html
    assert 'href="https://phish.example.net' not in html
    assert "<h1>not a heading" not in html and "# not a heading" in html
