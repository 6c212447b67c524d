"""/unsubscribe (a page with one button, and RFC 8058's one-click POST) and /manage.

Both take the token the send put in every message's unsubscribe link and List-Unsubscribe
header (delivery.tokens): the subscriber's id and the issue, signed. GET never changes
anything; any POST with a genuine token unsubscribes. A POST whose body says
`List-Unsubscribe=One-Click` is a mailbox provider acting for the reader (RFC 8058 §3.2):
it gets a short 200, no redirect, no page; the reader's own button gets the goodbye page,
which offers to come back (through confirmation again).

The manage page, from the same token, changes the name and the public topics; a
subscriber's other tags are the editors' and stay as they are.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from newsletter.audience.consent import Left, set_choices
from newsletter.audience.subscribers import Subscriber, get_subscriber_by_id
from newsletter.errors import SubscriberError
from newsletter.storage import SubscriberStatus
from newsletter.web.forms import Fields, FormError, is_one_click, one_value, parse_form, read_form
from newsletter.web.public import BROKEN_LINK, UNKNOWN_SUBSCRIBER, Public, public_of
from newsletter.web.subscribe import LONGEST_NAME

ON_LIST = (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING)


def _subscriber(public: Public, request: Request, token: str) -> Subscriber | Response:
    found = public.subscriber_token(request, token)
    if found is None:
        return public.problem(BROKEN_LINK)
    subscriber = get_subscriber_by_id(public.engine, found[0])
    if subscriber is None:
        return public.problem(UNKNOWN_SUBSCRIBER)
    return subscriber


async def unsubscribe_page(request: Request) -> Response:
    public = public_of(request)
    public.limit(request, "page")
    token = request.query_params.get("token", "")
    subscriber = _subscriber(public, request, token)
    if isinstance(subscriber, Response):
        return subscriber
    if subscriber.status not in ON_LIST:
        return public.page("goodbye.html", {"token": token, "already": True})
    return public.page("unsubscribe.html", {"token": token})


async def unsubscribe_post(request: Request) -> Response:
    """The reader's button, or the one-click POST of RFC 8058 (token in the query)."""
    public = public_of(request)
    body = await request.body()
    one_click = is_one_click(body)
    token = request.query_params.get("token", "")
    if not one_click:
        try:
            fields: Fields = parse_form(body) if body else {}
            token = one_value(fields, "token", 1000) or token
        except FormError:
            # Not our page's form, and not a one-click body either.
            raise HTTPException(400) from None
    found = public.subscriber_token(request, token)
    if found is None:
        if one_click:
            return PlainTextResponse("This unsubscribe link is not valid.\n", 400)
        return public.problem(BROKEN_LINK)
    left = await public.leave(found[0])
    if one_click:
        if left is Left.UNKNOWN:
            return PlainTextResponse("No such subscriber.\n", 404)
        return PlainTextResponse("Unsubscribed.\n")
    if left is Left.UNKNOWN:
        return public.problem(UNKNOWN_SUBSCRIBER)
    return public.page("goodbye.html", {"token": token, "already": left is Left.ALREADY})


async def manage_page(request: Request) -> Response:
    public = public_of(request)
    public.limit(request, "page")
    token = request.query_params.get("token", "")
    subscriber = _subscriber(public, request, token)
    if isinstance(subscriber, Response):
        return subscriber
    return _manage(public, token, subscriber)


def _manage(
    public: Public, token: str, subscriber: Subscriber, saved: bool = False, status: int = 200
) -> Response:
    if subscriber.status not in ON_LIST:
        return public.page("goodbye.html", {"token": token, "already": True})
    context = {
        "token": token,
        "name": subscriber.name,
        "topics": public.settings.topics,
        "chosen": [t for t in subscriber.tags if t in public.settings.topics],
        "saved": saved,
    }
    return public.page("manage.html", context, status)


async def manage_post(request: Request) -> Response:
    public = public_of(request)
    public.limit(request, "page")
    try:
        fields = await read_form(request)
        token = one_value(fields, "token", 1000)
        name = one_value(fields, "name", LONGEST_NAME)
    except FormError:
        raise HTTPException(400) from None
    subscriber = _subscriber(public, request, token)
    if isinstance(subscriber, Response):
        return subscriber
    if subscriber.status not in ON_LIST:
        return _manage(public, token, subscriber)
    try:
        changed = set_choices(
            public.engine,
            subscriber.id,
            name=name,
            topics=fields.get("topic", []),
            public_topics=public.settings.topics,
        )
    except SubscriberError:
        raise HTTPException(400) from None  # a topic the page never offered
    if changed is None:
        return public.problem(UNKNOWN_SUBSCRIBER)
    return _manage(public, token, changed, saved=True)


def unsubscribe_routes() -> list[BaseRoute]:
    return [
        Route("/unsubscribe", unsubscribe_page, methods=["GET", "HEAD"]),
        Route("/unsubscribe", unsubscribe_post, methods=["POST"]),
        Route("/manage", manage_page, methods=["GET", "HEAD"]),
        Route("/manage", manage_post, methods=["POST"]),
    ]
