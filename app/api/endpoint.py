"""What every v1 API view shares, declared once above it with `@endpoint(...)`.

In this order: the caller from the bearer token (401), the queue named by `<name>` in the
path (404 when the caller is not a member: its existence is not revealed), the permission
(403), and the JSON body validated by its declared pydantic model (422 in API.md's shape).
The same declaration is the view's entry in the OpenAPI document at /api/openapi.json, and
exempts the view from the CSRF check (no cookie authenticates it).

The view names what it needs as keyword arguments: `user`, `queue` (resolved from `<name>`),
`body` (the validated model), and the path's other variables.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from flask import request
from pydantic import BaseModel, ValidationError
from spectree import Response as Doc

from app.api.schemas import ErrorOut
from app.auth.service import require, user_for_token
from app.errors import Unauthorized, ValidationFailed, pydantic_details
from app.extensions import csrf, db_session, openapi
from app.ingest.schemas import unstorable_values
from app.models import User
from app.queues.service import get_queue

# Errors any endpoint may answer, besides those it declares.
COMMON_ERRORS = (401, 403, 404, 422)


def caller() -> User:
    """The user behind the bearer token; 401 without a valid one."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send 'Authorization: Bearer <token>'.")
    user = user_for_token(session=db_session(), token=token.strip())
    if user is None:
        raise Unauthorized("That token is not valid.")
    return user


def json_object() -> dict:
    """The body as a JSON object; 422 for anything else, or for a NUL character or a
    non-finite number anywhere in it, which PostgreSQL cannot store."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed(
            "The body must be a JSON object.", [{"field": "", "message": "not a JSON object"}]
        )
    unstorable = unstorable_values(body)
    if unstorable:
        raise ValidationFailed(
            "The body holds values that cannot be stored.",
            [{"field": path, "message": message} for path, message in unstorable],
        )
    return body


def validated_body(model: type[BaseModel]) -> BaseModel:
    """The JSON object body validated by `model`; 422 naming every bad field.

    The message names the body after the model (DecisionIn: "The decision is not valid."),
    or after the model's `noun` when it has one.
    """
    noun = getattr(model, "noun", None) or model.__name__.removesuffix("In").lower()
    try:
        return model.model_validate(json_object())
    except ValidationError as exc:
        raise ValidationFailed(
            f"The {noun} is not valid.", pydantic_details(exc.errors())
        ) from None


def endpoint(
    *,
    tag: str,
    permission: str | None = None,
    body: type[BaseModel] | None = None,
    view_reads_body: bool = False,
    query: type[BaseModel] | None = None,
    ok: dict[int, type[BaseModel] | None] | None = None,
    errors: tuple[int, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declares an API view: who may call it, what it reads, what it answers.

    Args:
        tag: its group in the OpenAPI document.
        permission: the action of app.auth.service.PERMISSIONS the caller's role must allow.
        body: the model of its JSON body, validated before the view runs.
        view_reads_body: the view parses the body itself, still with `body` (ingest takes
            NDJSON as well; a partial policy is validated once merged): `body` is then
            only declared.
        query: the model of its query string, for the document (the view reads it).
        ok: its successful answers, status to model (None: not described); 200 by default.
        errors: the error statuses it answers besides COMMON_ERRORS.
    """

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        wants = inspect.signature(view).parameters
        checked_body = None if view_reads_body else body
        if checked_body is not None and "body" not in wants:
            raise TypeError(f"{view.__name__} declares a body but takes no `body` argument")

        @functools.wraps(view)
        def run(**path: Any) -> Any:
            user = caller()
            if "name" in path:
                queue = get_queue(session=db_session(), name=path.pop("name"), user=user)
                if "queue" in wants:
                    path["queue"] = queue
            if permission is not None:
                require(user, permission)
            if checked_body is not None:
                path["body"] = validated_body(checked_body)
            if "user" in wants:
                path["user"] = user
            return view(**path)

        statuses: dict[str, Any] = {
            f"HTTP_{status}": model for status, model in (ok or {200: None}).items()
        }
        statuses.update({f"HTTP_{status}": ErrorOut for status in (*COMMON_ERRORS, *errors)})
        # A bearer token, not a cookie, says who calls: there is no request to forge.
        csrf.exempt(run)
        # The checks above are the validation; spectree only writes the document.
        return openapi.validate(
            json=body, query=query, resp=Doc(**statuses), skip_validation=True, tags=[tag]
        )(run)

    return decorate
