"""The one error shape every API answer uses, and the domain's own error types."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class LoupeError(Exception):
    """A domain error that maps to an HTTP status and a stable code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "details": self.details}


class ValidationFailed(LoupeError):
    status = 422
    code = "validation_failed"


class NotFound(LoupeError):
    status = 404
    code = "not_found"


class Forbidden(LoupeError):
    status = 403
    code = "forbidden"


class Conflict(LoupeError):
    status = 409
    code = "conflict"


class Gone(LoupeError):
    status = 410
    code = "gone"


class TooLarge(LoupeError):
    status = 413
    code = "too_large"


def pydantic_details(errors: Iterable[Mapping[str, Any]], index: int | None = None) -> list[dict]:
    """Turns pydantic's error list into API.md's `{"index", "field", "message"}` rows."""
    rows = []
    for err in errors:
        field = ".".join(str(p) for p in err.get("loc", ()))
        row: dict[str, Any] = {"field": field, "message": err.get("msg", "invalid")}
        if index is not None:
            row = {"index": index, **row}
        rows.append(row)
    return rows


class Unauthorized(LoupeError):
    status = 401
    code = "unauthorized"


class UnsupportedMediaType(LoupeError):
    status = 415
    code = "unsupported_media_type"


class ServiceUnavailable(LoupeError):
    status = 503
    code = "unavailable"
