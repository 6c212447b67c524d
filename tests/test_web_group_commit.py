"""Group commit (web.group_commit) and what it commits: one-click unsubscribes and webhook
events of many requests in one transaction, each answered only after its commit, a bad
request failing alone; and the cheaper middleware keeping every refusal it had."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, update
from web_support import ENVIRON, SECRET, TestClient, engine_of, running_server
from webhook_samples.signing import basic_header, sample

from newsletter.audience.consent import Left, unsubscribe, unsubscribe_many
from newsletter.audience.feedback import (
    Kind,
    Report,
    SoftBounces,
    record_report_groups,
    record_reports,
)
from newsletter.audience.subscribers import add_subscriber, get_subscriber
from newsletter.config import Settings, load_settings
from newsletter.delivery.tokens import unsubscribe_token
from newsletter.storage import events, now, subscribers
from newsletter.web.app import create_app
from newsletter.web.group_commit import AT_ONCE_MOST, GroupCommit
from newsletter.web.security import CONTENT_SECURITY_POLICY

ISSUE = "2026-11-26-welcome"
ONE_CLICK = b"List-Unsubscribe=One-Click"
SOFT = SoftBounces(3, 30)

# --- GroupCommit on its own -------------------------------------------------------------------


class Recorder:
    """A write that records each group it was given; `bad` items make a group fail."""

    def __init__(self, bad: set[int] = frozenset(), pause: float = 0.0) -> None:  # type: ignore[assignment]
        self.groups: list[list[int]] = []
        self.bad = bad
        self.pause = pause
        self.lock = threading.Lock()

    def __call__(self, items: list[int]) -> list[int]:
        with self.lock:
            self.groups.append(list(items))
        if self.bad.intersection(items):
            raise RuntimeError("this group holds a bad item")
        threading.Event().wait(self.pause)  # a commit takes a moment
        return [item * 10 for item in items]


async def submit_all(commit: GroupCommit[int, int], items: list[int]) -> list[object]:
    return await asyncio.gather(*(commit.submit(i) for i in items), return_exceptions=True)


def test_requests_of_one_moment_share_a_write_and_each_gets_its_own_answer() -> None:
    write = Recorder(pause=0.02)
    answers = asyncio.run(submit_all(GroupCommit(write), list(range(50))))
    assert answers == [i * 10 for i in range(50)]
    assert sorted(i for group in write.groups for i in group) == list(range(50))  # each once
    assert len(write.groups) < 10  # the first alone, the rest gathered while it wrote


def test_a_group_is_capped_by_the_weight_of_its_items() -> None:
    write = Recorder(pause=0.01)
    answers = asyncio.run(
        submit_all(GroupCommit(write, most=8, weight=lambda _: 3), list(range(20)))
    )
    assert answers == [i * 10 for i in range(20)]
    assert max(len(group) for group in write.groups) == 2  # 3 + 3 <= 8 < 3 + 3 + 3


def test_a_failing_group_is_written_again_one_by_one_and_only_the_bad_one_fails() -> None:
    write = Recorder(bad={7}, pause=0.02)
    answers = asyncio.run(submit_all(GroupCommit(write), list(range(20))))
    assert isinstance(answers[7], RuntimeError)
    assert [a for n, a in enumerate(answers) if n != 7] == [i * 10 for i in range(20) if i != 7]
    assert [7] in write.groups  # tried alone too


def test_nothing_is_answered_before_its_write_returns() -> None:
    release = threading.Event()
    written: list[int] = []

    def write(items: list[int]) -> list[int]:
        release.wait(5)
        written.extend(items)
        return items

    async def scenario() -> None:
        commit = GroupCommit(write)
        task = asyncio.ensure_future(commit.submit(1))
        await asyncio.sleep(0.05)
        assert not task.done() and written == []
        release.set()
        assert await task == 1 and written == [1]

    asyncio.run(scenario())


def test_a_group_written_at_once_stays_on_the_event_loop() -> None:
    threads: list[int] = []

    def at_once(items: list[int]) -> list[int]:
        threads.append(threading.get_ident())
        return [item * 10 for item in items]

    def write(items: list[int]) -> list[int]:
        raise AssertionError("the worker thread was not needed")

    async def scenario() -> list[object]:
        commit = GroupCommit(write, at_once=at_once)
        answers = await submit_all(commit, list(range(30)))
        assert set(threads) == {threading.get_ident()}  # the loop's own thread
        return answers

    assert asyncio.run(scenario()) == [i * 10 for i in range(30)]


def test_a_large_group_goes_to_the_thread_so_the_loop_never_holds_still_long() -> None:
    at_once_groups: list[int] = []

    def at_once(items: list[int]) -> list[int]:
        at_once_groups.append(len(items))
        return [item * 10 for item in items]

    write = Recorder()
    many = AT_ONCE_MOST * 3
    answers = asyncio.run(submit_all(GroupCommit(write, at_once=at_once), list(range(many))))
    assert answers == [i * 10 for i in range(many)]
    assert all(size <= AT_ONCE_MOST for size in at_once_groups)
    assert any(len(group) > AT_ONCE_MOST for group in write.groups)


def test_a_group_that_cannot_be_written_at_once_goes_to_the_thread() -> None:
    tried: list[list[int]] = []

    def at_once(items: list[int]) -> list[int]:
        tried.append(list(items))
        raise RuntimeError("database is locked")

    write = Recorder(bad={7})
    answers = asyncio.run(submit_all(GroupCommit(write, at_once=at_once), list(range(20))))
    assert isinstance(answers[7], RuntimeError)  # the thread's way: the bad one alone fails
    assert [a for n, a in enumerate(answers) if n != 7] == [i * 10 for i in range(20) if i != 7]
    assert sorted(i for group in tried for i in group) == list(range(20))
    assert [7] in write.groups


# --- unsubscribe_many: the one-click group's transaction ------------------------------------


def test_unsubscribe_many_answers_each_id_as_unsubscribe_would(engine: Engine) -> None:
    ana = add_subscriber(engine, "ana@example.org").id
    ben = add_subscriber(engine, "ben@example.org").id
    gone = ben + 1000  # no such subscriber (erased)
    assert unsubscribe(engine, ben) is Left.UNSUBSCRIBED
    answers = unsubscribe_many(engine, [ana, ben, gone, ana])
    assert answers == [Left.UNSUBSCRIBED, Left.ALREADY, Left.UNKNOWN, Left.ALREADY]
    for email in ("ana@example.org", "ben@example.org"):
        found = get_subscriber(engine, email)
        assert found is not None and found.status == "unsubscribed"


@pytest.fixture
def sqlite_engine(settings: Settings) -> Iterator[Engine]:
    from newsletter.storage import open_engine

    engine = open_engine(settings)
    yield engine
    engine.dispose()


@hsettings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    statuses=st.lists(
        st.sampled_from(["active", "pending", "unsubscribed", "bounced"]), max_size=6
    ),
    picks=st.lists(st.integers(0, 8), max_size=12),
)
def test_a_group_leaves_as_the_same_requests_one_after_the_other(
    sqlite_engine: Engine, statuses: list[str], picks: list[int]
) -> None:
    """Whatever the statuses and the ids (repeated, unknown), a group's answers and the
    statuses it leaves are those of the same unsubscribes made one at a time."""
    engine = sqlite_engine
    with engine.begin() as conn:
        conn.execute(subscribers.delete())
    ids = [add_subscriber(engine, f"r{n}@example.org").id for n in range(len(statuses))]
    unknown = max(ids, default=0) + 1000
    wanted = [ids[p] if p < len(ids) else unknown + p for p in picks]

    def reset() -> None:
        with engine.begin() as conn:
            for ident, status in zip(ids, statuses, strict=True):
                conn.execute(
                    update(subscribers).where(subscribers.c.id == ident).values(status=status)
                )

    def states() -> list[str]:
        with engine.connect() as conn:
            return list(conn.scalars(select(subscribers.c.status).order_by(subscribers.c.id)))

    reset()
    one_by_one = [unsubscribe(engine, i) for i in wanted]
    after_one_by_one = states()
    reset()
    assert unsubscribe_many(engine, wanted) == one_by_one
    assert states() == after_one_by_one


# --- record_report_groups: the webhook group's transaction -----------------------------------


def report(key: str, email: str, kind: Kind = Kind.BOUNCE) -> Report:
    return Report("postmark", key, kind, email, now())


def test_webhook_groups_are_recorded_as_if_one_after_the_other(engine: Engine) -> None:
    add_subscriber(engine, "ana@example.org")
    add_subscriber(engine, "ben@example.org")
    first = [report("pm:1", "ana@example.org"), report("pm:2", "ben@example.org", Kind.OTHER)]
    replay = [report("pm:1", "ana@example.org")]
    complaint = [report("pm:3", "ben@example.org", Kind.COMPLAINT)]
    answers = record_report_groups(engine, [first, replay, complaint, []], soft=SOFT)
    assert [[o.new for o in group] for group in answers] == [[True, True], [False], [True], []]
    assert answers[1][0].change == "already recorded"
    assert answers[2][0].change == "active → complained"
    for email, status in (("ana@example.org", "bounced"), ("ben@example.org", "complained")):
        found = get_subscriber(engine, email)
        assert found is not None and found.status == status
    assert record_reports(engine, replay, SOFT)[0].new is False
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(events)) == 3


# --- through the app, many requests at once --------------------------------------------------


@pytest.fixture
def public_settings(workspace: Path) -> Settings:
    return load_settings(workspace, environ={})


async def post_all(url: str, requests: list[tuple[str, bytes, dict[str, str]]]) -> list[int]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        answers = await asyncio.gather(
            *(client.post(path, content=body, headers=headers) for path, body, headers in requests)
        )
    return [answer.status_code for answer in answers]


def test_many_one_clicks_at_once_are_all_committed_before_their_200(
    public_settings: Settings,
) -> None:
    app = create_app(public_settings, ENVIRON)
    engine = app.state.engine
    people = [add_subscriber(engine, f"reader{n}@example.org").id for n in range(60)]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    requests = [
        (
            f"/unsubscribe?token={unsubscribe_token(i, ISSUE, SECRET)}",
            b"List-Unsubscribe=One-Click",
            form,
        )
        for i in people
    ]
    with running_server(app) as url:
        assert asyncio.run(post_all(url, requests)) == [200] * 60
        with engine.connect() as conn:
            left = conn.scalar(select(func.count()).where(subscribers.c.status == "unsubscribed"))
        assert left == 60


def test_a_one_click_waits_in_the_thread_while_another_process_writes(
    public_settings: Settings,
) -> None:
    """The event loop never waits for SQLite's lock: while another connection holds it,
    the one-click is written by the thread once it is free, and pages are served meanwhile."""
    app = create_app(public_settings, ENVIRON)
    engine = app.state.engine
    ana = add_subscriber(engine, "ana@example.org").id
    other = sqlite3.connect(engine.url.database, isolation_level=None)
    path = f"/unsubscribe?token={unsubscribe_token(ana, ISSUE, SECRET)}"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    try:
        with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            other.execute("BEGIN IMMEDIATE")  # another process writing: a send, say
            answer: list[int] = []
            click = threading.Thread(
                target=lambda: answer.append(
                    client.post(path, content=ONE_CLICK, headers=form).status_code
                )
            )
            click.start()
            started = time.monotonic()
            while time.monotonic() - started < 0.5:
                # The loop is not stuck behind the lock: each page within a second.
                assert client.get("/healthz", timeout=1).status_code == 200
            assert answer == []  # nothing answered before its commit
            other.execute("ROLLBACK")
            click.join(10)
            assert answer == [200]
            subscriber = get_subscriber(engine, "ana@example.org")
            assert subscriber is not None and subscriber.status == "unsubscribed"
    finally:
        other.close()


def test_many_single_webhook_events_at_once_are_all_stored(public_settings: Settings) -> None:
    app = create_app(public_settings, ENVIRON | {"NEWSLETTER_WEBHOOK_AUTH": "hooks:pw-123"})
    engine = app.state.engine
    for n in range(40):
        add_subscriber(engine, f"reader{n}@example.org")
    headers = basic_header("hooks", "pw-123") | {"Content-Type": "application/json"}
    template = sample("postmark", "spam-complaint")
    requests = [
        (
            "/webhooks/postmark",
            json.dumps(template | {"ID": 500 + n, "Email": f"reader{n % 40}@example.org"}).encode(),
            headers,
        )
        for n in range(80)  # every address twice: a complaint, then one more
    ]
    with running_server(app) as url:
        assert asyncio.run(post_all(url, requests)) == [200] * 80
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(events)) == 80
            assert set(conn.scalars(select(subscribers.c.status))) == {"complained"}


# --- the middleware, made cheaper, still refuses and still adds ------------------------------


@pytest.fixture
def client(public_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(public_settings, ENVIRON), raise_server_exceptions=False) as c:
        yield c


def test_a_chunked_body_past_the_cap_is_still_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"email=" + b"a" * 1000

    answer = client.post(
        "/subscribe",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413
    assert engine_of(client) is not None


def test_every_answer_has_each_security_header_once(client: TestClient) -> None:
    for answer in (client.get("/subscribe"), client.get("/healthz"), client.get("/nowhere")):
        assert answer.headers.get_list("content-security-policy") == [CONTENT_SECURITY_POLICY]
        assert answer.headers.get_list("x-frame-options") == ["DENY"]
        assert len(answer.headers.get_list("cache-control")) == 1


def test_a_response_that_sets_its_own_cache_control_keeps_it_alone() -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from newsletter.web.front import Front

    async def cached(request: Request) -> PlainTextResponse:
        return PlainTextResponse(
            "x", headers={"Cache-Control": "max-age=60", "X-Frame-Options": "SAMEORIGIN"}
        )

    app = Starlette(routes=[Route("/", cached)], middleware=[Middleware(Front, limit=1000)])
    with TestClient(app) as c:
        answer = c.get("/")
    assert answer.headers.get_list("cache-control") == ["max-age=60"]
    assert answer.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert answer.headers.get_list("content-security-policy") == [CONTENT_SECURITY_POLICY]


def test_a_database_that_is_unavailable_fails_the_group_at_once() -> None:
    from sqlalchemy.exc import OperationalError

    from newsletter.errors import StorageError

    calls: list[list[int]] = []

    def write(items: list[int]) -> list[int]:
        calls.append(items)
        try:
            raise OperationalError("UPDATE", {}, Exception("database is locked"))
        except OperationalError as exc:
            raise StorageError("the database is locked by another newsletter process") from exc

    async def scenario() -> list[object]:
        commit = GroupCommit(write, gather=0.01)
        return await asyncio.gather(*(commit.submit(i) for i in range(5)), return_exceptions=True)

    answers = asyncio.run(scenario())
    assert all(isinstance(a, StorageError) for a in answers)
    assert calls == [[0, 1, 2, 3, 4]]  # not once more for each: each would wait as long
