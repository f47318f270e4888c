"""The v1 JSON API, one blueprint per resource under /api/v1.

Each view is declared with app.api.endpoint.endpoint (caller, queue, permission, body, and
its OpenAPI entry), parses nothing else by hand, calls one domain function and serialises.
"""

from __future__ import annotations

from flask import Blueprint

from app.api import (
    adjudications,
    claims,
    dashboard,
    desk,
    items,
    labels,
    outbox,
    quality,
    queues,
    registry,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
for resource in (
    queues.bp,
    items.bp,
    claims.bp,
    labels.bp,
    registry.bp,
    outbox.bp,
    quality.bp,
    adjudications.bp,
    desk.bp,
    dashboard.bp,
):
    bp.register_blueprint(resource)
