"""Each provider's documented signature, made here the way the provider makes it.

SendGrid signs with a P-256 key pair of its own: the tests make a real one and give the
app only the public half, base64 DER as SendGrid shows it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import warnings
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.exceptions import StarletteDeprecationWarning

# Starlette warns on importing its TestClient with httpx (it would like httpx2, not a
# dependency): a warning about Starlette's future, silenced for this one import only.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["TestClient"]

SAMPLES = Path(__file__).parent
MAILGUN_KEY = "key-mailgun-signing-0123456789abcdef"
RESEND_SECRET = "whsec_" + base64.b64encode(b"resend-test-signing-secret-32by").decode()
BASIC = ("hooks", "correct horse battery staple")


def sample(provider: str, name: str) -> Any:
    return json.loads((SAMPLES / provider / f"{name}.json").read_text())


class SendGridKeys:
    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "Content-Type": "application/json",
        }


def mailgun_body(
    event: dict[str, Any],
    timestamp: int | None = None,
    token: str | None = None,
    key: str = MAILGUN_KEY,
) -> bytes:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    envelope = {
        "signature": {"timestamp": stamp, "token": token, "signature": signature},
        "event-data": event,
    }
    return json.dumps(envelope).encode()


def resend_headers(
    body: bytes,
    ident: str | None = None,
    timestamp: int | None = None,
    secret: str = RESEND_SECRET,
) -> dict[str, str]:
    ident = ident or "msg_" + secrets.token_hex(12)
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{ident}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "svix-id": ident,
        "svix-timestamp": stamp,
        "svix-signature": "v1," + base64.b64encode(digest).decode(),
        "Content-Type": "application/json",
    }


def basic_header(user: str = BASIC[0], password: str = BASIC[1]) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


def environ(sendgrid: SendGridKeys) -> dict[str, str]:
    return {
        "SENDGRID_WEBHOOK_VERIFICATION_KEY": sendgrid.public,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
        "RESEND_WEBHOOK_SECRET": RESEND_SECRET,
        "NEWSLETTER_WEBHOOK_AUTH": ":".join(BASIC),
    }


def make_client(settings: Any, engine: Any, env: dict[str, str]) -> TestClient:
    """The webhook routes on a bare app, mounted at /webhooks as create_app mounts them."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from newsletter.web.webhooks import webhook_routes

    app = Starlette(routes=[Mount("/webhooks", routes=webhook_routes(settings, engine, env))])
    return TestClient(app, base_url="http://127.0.0.1")
