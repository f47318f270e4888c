"""Users, roles, API tokens and queue membership."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import select
from sqlmodel import Session, col
from werkzeug.security import check_password_hash, generate_password_hash

from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.models import ROLES, ApiToken, Queue, QueueMember, User, id_of

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,79}$")

# What each role may do beyond reviewing; admins may do everything everywhere.
PERMISSIONS = {
    "review": {"reviewer", "lead", "scientist", "admin"},
    "ingest": {"lead", "scientist", "admin"},
    "export": {"lead", "scientist", "admin"},
    "retrain": {"lead", "scientist", "admin"},
    "promote": {"lead", "scientist", "admin"},
    "configure": {"lead", "scientist", "admin"},
    "view_dashboard": {"lead", "scientist", "admin"},
    "create_queue": {"lead", "admin"},
    # The final word on escalated, disputed and flagged items (app.desk.adjudication).
    "adjudicate": {"lead", "admin"},
    "manage_jobs": {"admin"},
}


_DUMMY_HASH = generate_password_hash("not a password")


def hash_token(token: str) -> str:
    """Only this hash of an API token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(*, session: Session, name: str, role: str, password: str | None) -> User:
    """Creates a user; the password is stored as a salted scrypt hash."""
    if not USER_NAME.match(name or ""):
        raise ValidationFailed(
            "User names are 1-80 letters, digits, '.', '_', '@' or '-'.",
            [{"field": "name", "message": "invalid user name"}],
        )
    if role not in ROLES:
        raise ValidationFailed(
            f"Unknown role {role!r}; choose one of {', '.join(ROLES)}.",
            [{"field": "role", "message": "unknown role"}],
        )
    if session.scalar(select(col(User.id)).where(col(User.name) == name)) is not None:
        raise Conflict(f"A user named {name!r} already exists.")
    user = User(
        name=name, role=role, password_hash=generate_password_hash(password) if password else None
    )
    session.add(user)
    session.flush()
    return user


def authenticate(*, session: Session, name: str, password: str) -> User | None:
    """The user with that name and password, or None."""
    user = session.scalar(select(User).where(col(User.name) == name))
    if user is None or not user.password_hash:
        # One hash check either way, so timing does not reveal which names exist.
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def create_token(*, session: Session, user: User) -> str:
    """Makes a new API token for the user and returns it; only its hash is kept."""
    token = "lp_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=id_of(user), token_hash=hash_token(token)))
    session.flush()
    return token


def user_for_token(*, session: Session, token: str) -> User | None:
    """The user a bearer token belongs to, or None."""
    if not token or len(token) > 200:
        return None
    row = session.execute(
        select(User, ApiToken)
        .join(ApiToken, col(ApiToken.user_id) == col(User.id))
        .where(col(ApiToken.token_hash) == hash_token(token))
    ).first()
    return row[0] if row else None


def get_user(*, session: Session, name: str) -> User:
    user = session.scalar(select(User).where(col(User.name) == name))
    if user is None:
        raise NotFound(f"No user named {name!r}.")
    return user


def add_membership(*, session: Session, user: User, queue: Queue) -> None:
    """Makes the user a member of the queue (idempotent)."""
    if session.get(QueueMember, (queue.id, user.id)) is None:
        session.add(QueueMember(queue_id=id_of(queue), user_id=id_of(user)))
        session.flush()


def is_member(*, session: Session, user: User, queue: Queue) -> bool:
    return user.role == "admin" or session.get(QueueMember, (queue.id, user.id)) is not None


def require(user: User, action: str) -> None:
    """Raises 403 unless the user's role allows the action."""
    if user.role not in PERMISSIONS[action]:
        raise Forbidden(f"Your role ({user.role}) may not {action.replace('_', ' ')}.")
