"""How long a reviewer's items stay theirs while they move around: a reload, another of
Loupe's pages, a second tab, closing the tab, logging out.

A page cannot tell a reload from a closed tab when it unloads, so leaving the review page
does not give the items back at once: it shortens their lease to a short grace. The page
that loads next (the same review page, or any other page of the app) takes them up again;
when nothing does, the reviewer has really left and the items go back when the grace ends.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, literal, select, update
from sqlmodel import Session, col

from app.models import Claim, Item, Queue, User, UTCDateTime, table_of, utcnow
from app.queues.service import policy_of
from app.states import ClaimState, ItemStatus

LEAVE_GRACE = timedelta(seconds=45)
HELD = (ClaimState.LIVE, ClaimState.AHEAD)


def _held(session: Session, user: User, now: datetime):
    """(claim, item) pairs the user holds right now, locked like a decision locks them."""
    stmt = (
        select(Claim, Item)
        .join(Item, col(Item.id) == col(Claim.item_id))
        .where(
            col(Claim.user_id) == user.id,
            col(Claim.state).in_(HELD),
            col(Claim.expires_at) > now,
            col(Item.lease_token) == col(Claim.token),
        )
        .order_by(col(Item.id))
        .with_for_update(of=Item)
        .execution_options(populate_existing=True)
    )
    return session.execute(stmt).all()


def holds_any(*, session: Session, user: User, now=None) -> bool:
    """Whether the user holds any item: a read, so the frequent pings of idle pages need no
    write transaction (on SQLite, the database's one write lock)."""
    now = now or utcnow()
    return (
        session.scalar(
            select(col(Claim.id))
            .where(
                col(Claim.user_id) == user.id,
                col(Claim.state).in_(HELD),
                col(Claim.expires_at) > now,
            )
            .limit(1)
        )
        is not None
    )


def _set_expiry(claim: Claim, item: Item, until: datetime) -> None:
    claim.expires_at = until
    item.lease_expires_at = until


def _bound_leases(session: Session, user: User, now: datetime, until: datetime, *, cap: bool):
    """Moves the expiry of every lease the user holds to `until`: down to it when `cap`, up
    to it otherwise. One UPDATE per table, items first (the order a decision locks them in),
    each computed from the row's own current value, so a heartbeat that commits meanwhile
    is never overwritten with an older expiry."""
    for table, expiry, held in (
        (
            table_of(Item),
            table_of(Item).c.lease_expires_at,
            (col(Item.lease_owner_id) == user.id, col(Item.status) == ItemStatus.IN_REVIEW),
        ),
        (
            table_of(Claim),
            table_of(Claim).c.expires_at,
            (col(Claim.user_id) == user.id, col(Claim.state).in_(HELD)),
        ),
    ):
        moves = expiry > until if cap else expiry < until
        session.execute(
            update(table)
            .where(*held, expiry > now)
            .values({expiry.name: case((moves, literal(until, UTCDateTime())), else_=expiry)})
        )
    session.flush()


def leave(*, session: Session, user: User, now=None) -> None:
    """A page of the app was left (a reload, a navigation or a closed tab): the items the
    user holds stay theirs only for the grace from now on."""
    now = now or utcnow()
    _bound_leases(session, user, now, now + LEAVE_GRACE, cap=True)


def keep(*, session: Session, user: User, now=None) -> None:
    """The user is still on one of Loupe's pages: items they hold stay theirs for at least
    the grace from now (never less than they had)."""
    now = now or utcnow()
    _bound_leases(session, user, now, now + LEAVE_GRACE, cap=False)


def resume(*, session: Session, queue: Queue, claims: list[Claim | None], now=None) -> None:
    """The reviewer is back on the review page: their claims get a full lease again."""
    now = now or utcnow()
    until = now + timedelta(seconds=policy_of(queue).lease_seconds)
    for claim in claims:
        if claim is not None:
            item = session.get(Item, claim.item_id)
            # A gold item keeps no lease of its own (app.desk.gold): only the claim's counts.
            if item is not None and (
                item.lease_token == claim.token or item.status == ItemStatus.GOLD
            ):
                _set_expiry(claim, item, until)
    session.flush()


def release_all(*, session: Session, user: User, now=None) -> int:
    """Logging out: every item the user holds goes back to its queue at once."""
    now = now or utcnow()
    rows = _held(session, user, now)
    for claim, item in rows:
        claim.state = ClaimState.RELEASED
        item.status = ItemStatus.PENDING
        item.lease_owner_id = None
        item.lease_token = None
        item.lease_expires_at = None
    session.flush()
    return len(rows)
