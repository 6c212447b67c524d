"""/subscribe and /confirm: double opt-in, and /resubscribe from the goodbye page.

POST /subscribe answers the same page whatever became of the address (new, already on
the list, left, bounced, erased, or caught by the honeypot), so the answer says nothing
about who is on the list. The confirmation request is in the database before the answer
goes out; the email is sent after it, in the background (web.confirmations).

A form on the organisation's own site may post here: no cookie is set or read anywhere,
so there is no session for another site to ride on, and no CORS header is needed for a
plain form post (a script on another site could post, but never read the answer).
GET /confirm only shows a button: link scanners that fetch every link confirm nobody.
"""

from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from newsletter.audience.consent import (
    ConfirmationRequest,
    Confirmed,
    confirm,
    request_return,
    request_subscription,
)
from newsletter.delivery.tokens import CONFIRM_DAYS, is_expired, read_confirm_token
from newsletter.errors import SubscriberError
from newsletter.web.forms import FormError, one_value, read_form
from newsletter.web.public import BROKEN_LINK, Public, public_of

HONEYPOT = "website"  # a field people never see, so never fill in
LONGEST_ADDRESS = 320
LONGEST_NAME = 300
EXPIRED_LINK = (
    410,
    "This confirmation link has expired",
    f"Confirmation links work for {CONFIRM_DAYS} days. Please subscribe again and we "
    "will send you a new one.",
)
USED_LINK = (
    404,
    "This confirmation link is no longer valid",
    "It was replaced by a newer one, or the subscription was cancelled. Please subscribe "
    "again if you would like to receive the newsletter.",
)
REFUSED = (
    409,
    "This address cannot be subscribed",
    "Our emails to it were returned or reported, so we no longer send to it. Please "
    "write to us if you would like to receive the newsletter.",
)


def form_context(public: Public, **values: object) -> dict[str, object]:
    context: dict[str, object] = {
        "topics": public.settings.topics,
        "email": "",
        "name": "",
        "chosen": (),
        "problem": "",
    }
    context.update(values)
    return context


async def subscribe_form(request: Request) -> Response:
    public = public_of(request)
    public.limit(request, "page")
    return public.page("subscribe.html", form_context(public))


async def subscribe(request: Request) -> Response:
    public = public_of(request)
    public.limit(request, "subscribe")
    try:
        fields = await read_form(request)
        email = one_value(fields, "email", LONGEST_ADDRESS).strip()
        name = one_value(fields, "name", LONGEST_NAME)
        trap = one_value(fields, HONEYPOT, LONGEST_NAME)
        chosen = fields.get("topic", [])
    except FormError:
        raise HTTPException(400) from None
    if trap:
        return sent(public)  # a bot: it sees what a person would, and nothing happens
    try:
        wanted = request_subscription(
            public.engine,
            email,
            name=name,
            topics=chosen,
            public_topics=public.settings.topics,
            valid_for=public.mailer.valid_for,
        )
    except SubscriberError:
        problem = (
            "Please enter your email address, like name@example.org."
            if email
            else "Please enter your email address."
        )
        context = form_context(public, email=email, name=name, chosen=chosen, problem=problem)
        return public.page("subscribe.html", context, 400)
    return sent(public, wanted)


def sent(public: Public, wanted: ConfirmationRequest | None = None) -> Response:
    """The one answer to every subscribe: check your inbox."""
    response = public.page("subscribe-sent.html", {"days": CONFIRM_DAYS})
    if wanted is not None:
        response.background = BackgroundTask(public.mailer.send, [wanted.id])
    return response


def _confirmation(public: Public, request: Request, token: str) -> int | Response:
    """The confirmation request a token names, or the page saying what is wrong with it."""
    found = read_confirm_token(token, public.secret)
    if found is None:
        public.limit(request, "bad-token")
        return public.problem(BROKEN_LINK)
    request_id, expires_at = found
    if is_expired(expires_at):
        return public.problem(EXPIRED_LINK)
    return request_id


async def confirm_page(request: Request) -> Response:
    public = public_of(request)
    public.limit(request, "page")
    token = request.query_params.get("token", "")
    checked = _confirmation(public, request, token)
    if isinstance(checked, Response):
        return checked
    return public.page("confirm.html", {"token": token})


async def confirm_post(request: Request) -> Response:
    public = public_of(request)
    public.limit(request, "page")
    try:
        token = one_value(await read_form(request), "token", 1000)
    except FormError:
        raise HTTPException(400) from None
    checked = _confirmation(public, request, token)
    if isinstance(checked, Response):
        return checked
    outcome = confirm(public.engine, checked, public_topics=public.settings.topics)
    if outcome is Confirmed.ACTIVE:
        return public.page("confirmed.html")
    if outcome is Confirmed.EXPIRED:
        return public.problem(EXPIRED_LINK)
    return public.problem(REFUSED if outcome is Confirmed.REFUSED else USED_LINK)


async def resubscribe(request: Request) -> Response:
    """The goodbye page's offer to come back: a new confirmation email, as for a stranger."""
    public = public_of(request)
    public.limit(request, "subscribe")
    try:
        token = one_value(await read_form(request), "token", 1000)
    except FormError:
        raise HTTPException(400) from None
    found = public.subscriber_token(request, token)
    if found is None:
        return public.problem(BROKEN_LINK)
    wanted = request_return(public.engine, found[0], valid_for=public.mailer.valid_for)
    return sent(public, wanted)


def subscribe_routes() -> list[BaseRoute]:
    return [
        Route("/subscribe", subscribe_form, methods=["GET", "HEAD"]),
        Route("/subscribe", subscribe, methods=["POST"]),
        Route("/confirm", confirm_page, methods=["GET", "HEAD"]),
        Route("/confirm", confirm_post, methods=["POST"]),
        Route("/resubscribe", resubscribe, methods=["POST"]),
    ]
