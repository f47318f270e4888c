"""A reviewer's next item and skips: the rules the review page and the JSON API share."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from app.models import Claim, Queue, User, utcnow
from app.review import actions, presence
from app.review.service import claim_ahead, claim_next, live_claim, promote_ahead, release
from app.states import ClaimState


@dataclass
class Desk:
    """What a reviewer works on: the current claim and the one leased ahead of it."""

    claim: Claim | None
    ahead: Claim | None


def next_for_reviewer(
    *, session: Session, queue: Queue, user: User, resume: bool, lease_ahead: bool, now=None
) -> Desk:
    """The reviewer's current item, and optionally the next one leased ahead.

    With `resume` the reviewer's live claim is kept (a reload or a second tab shows the
    same item), else the item leased ahead becomes current. Items skipped lately are passed
    over, and offered again only when nothing else is left.
    """
    now = now or utcnow()
    claim = live_claim(session=session, queue=queue, user=user, now=now) if resume else None
    ahead = live_claim(session=session, queue=queue, user=user, now=now, state=ClaimState.AHEAD)
    if claim is not None:
        # Back after a reload or from another page: the lease shortened on leaving is whole
        # again.
        presence.resume(session=session, queue=queue, claims=[claim, ahead], now=now)
    if claim is None and ahead is not None:
        claim, ahead = promote_ahead(session=session, ahead=ahead), None
    skipped = actions.recently_skipped(session=session, queue=queue, user=user, now=now)
    if claim is None:
        claim = claim_next(
            session=session, queue=queue, user=user, now=now, exclude_item_ids=skipped
        )
        if claim is None and skipped:
            claim = claim_next(session=session, queue=queue, user=user, now=now)
    if lease_ahead and claim is not None and ahead is None:
        ahead = claim_ahead(
            session=session,
            queue=queue,
            user=user,
            now=now,
            exclude_item_ids=[claim.item_id, *skipped],
        )
    return Desk(claim=claim, ahead=ahead)


def skip(*, session: Session, token: str, user: User, now=None) -> bool:
    """Gives the item back and remembers the skip, so the reviewer's next claims pass it over
    for a while (see actions.SKIP_MEMORY). False when the claim had already ended (skipping
    twice is harmless)."""
    claim = release(session=session, token=token, user=user)
    if claim is None:
        return False
    actions.record(session, item_id=claim.item_id, user=user, kind="skip", now=now)
    session.flush()
    return True
