"""Provider webhooks: bounces, complaints and unsubscribes, one module per provider."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Engine
from starlette.routing import BaseRoute

from newsletter.config import Settings


def webhook_routes(
    settings: Settings, engine: Engine, environ: Mapping[str, str]
) -> list[BaseRoute]:
    """The /webhooks/<provider> routes the app mounts (filled in by the webhooks work)."""
    return []
