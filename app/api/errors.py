"""Every error under /api answers in API.md's shape; pages get a plain error page."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException

from app.errors import LoupeError

log = logging.getLogger(__name__)


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/readyz", "/metrics")


def error_response(status: int, code: str, message: str, details=None):
    if _wants_json():
        resp = jsonify({"error": code, "message": message, "details": details or []})
    else:
        resp = make_response(render_template("error.html", status=status, message=message))
    return resp, status


def _has_nul() -> bool:
    values = [request.path, *request.args.values()]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        values += list(request.form.values())
    return any("\x00" in v for v in values)


def register_error_handlers(app: Flask) -> None:
    @app.before_request
    def _refuse_nul():
        # PostgreSQL cannot store NUL in text: refuse it up front rather than fail later.
        if _has_nul():
            return error_response(400, "bad_request", "NUL characters are not allowed.")
        return None

    @app.errorhandler(LoupeError)
    def _domain(exc: LoupeError):
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name
        if exc.code == 413:
            code, message = (
                "too_large",
                (f"The body is larger than the limit of {app.config['MAX_CONTENT_LENGTH']} bytes."),
            )
        resp, status = error_response(exc.code or 500, code, message)
        if exc.code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            resp.headers["Allow"] = ", ".join(exc.valid_methods)
        return resp, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Something went wrong on our side.")
