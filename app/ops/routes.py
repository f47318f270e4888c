"""Liveness, readiness and metrics endpoints, and /favicon.ico (no login: probes, scrapers
and browsers call them)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, redirect, url_for
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text

from app.db import new_session
from app.extensions import openapi
from app.ops.metrics import QueueCollector

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    failing = {}
    try:
        with new_session(current_app.extensions["loupe.engine"]) as s:
            s.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        failing["database"] = str(exc).splitlines()[0][:200]
    try:
        current_app.extensions["loupe.redis"].ping()
    except Exception as exc:  # noqa: BLE001
        failing["redis"] = str(exc)[:200]
    if failing:
        return jsonify(
            {
                "error": "not_ready",
                "message": "Not ready: " + " and ".join(sorted(failing)) + " not answering.",
                "details": [{"field": k, "message": v} for k, v in failing.items()],
            }
        ), 503
    return jsonify({"status": "ready", "database": "ok", "redis": "ok"})


@bp.get("/favicon.ico")
def favicon():
    """Browsers and tools that ask for /favicon.ico without reading the page get the SVG."""
    return redirect(url_for("static", filename="favicon.svg"), code=301)


@bp.get("/api/openapi.json")
def openapi_document():
    """The API as OpenAPI 3, generated from the views and their pydantic models."""
    return jsonify(openapi.spec)


@bp.get("/metrics")
def metrics():
    registry = CollectorRegistry()
    registry.register(QueueCollector(current_app.extensions["loupe.engine"]))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
