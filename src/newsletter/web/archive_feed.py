"""The archive's Atom feed (RFC 4287), written with feedgen.

Times come from the issues, never the clock: an entry is published and updated on its
issue's date, and the feed is updated when its newest entry was. So a run that changes
nothing writes the same bytes, and a feed reader is not told of news that is not there.
"""

from __future__ import annotations

import datetime as dt

from feedgen.feed import FeedGenerator

from newsletter.config import Settings
from newsletter.web.archive_pages import Entry, archive_base, issue_url, subscribe_url

FEED_FILE = "feed.xml"
# Newest issues the feed lists: readers poll it often, and the index lists them all.
FEED_ENTRIES = 50
# The feed's time when no issue is in it yet (RFC 4287 requires one).
_NO_ISSUES = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _moment(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def atom_feed(settings: Settings, entries: list[Entry]) -> bytes:
    """The feed of the newest archived issues; `entries` come newest first."""
    base = archive_base(settings)
    listed = entries[:FEED_ENTRIES]
    feed = FeedGenerator()
    feed.id(base)
    feed.title(settings.name)
    feed.author({"name": settings.name})
    feed.language(settings.language)
    feed.link(href=base, rel="alternate", type="text/html")
    feed.link(href=f"{base}{FEED_FILE}", rel="self", type="application/atom+xml")
    feed.link(href=subscribe_url(settings), rel="related", type="text/html")
    feed.subtitle(f"Every issue of {settings.name}, newest first.")
    feed.updated(max((_moment(e.date) for e in listed), default=_NO_ISSUES))
    for entry in listed:
        url = issue_url(settings, entry.key)
        item = feed.add_entry(order="append")
        item.id(url)
        item.title(entry.subject)
        item.link(href=url, rel="alternate", type="text/html")
        item.published(_moment(entry.date))
        item.updated(_moment(entry.date))
        item.summary(entry.preheader or entry.subject)
    data: bytes = feed.atom_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    return data
