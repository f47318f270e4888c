"""How often a reviewer's answers are right: on gold items (known answers) and against final
labels that others decided."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session, col

from app.desk.gold import gold_hits
from app.models import Item, Label, Queue, Review, User
from app.states import LabelSource

# Fewer answers than this measure nothing: a reviewer's accuracy is then unknown (None).
MIN_ANSWERS = 20
# Only the reviewer's latest answers count: accuracy is about how they work now.
RECENT_ANSWERS = 500


@dataclass(frozen=True)
class Accuracy:
    """The share of `n` answers that matched the final label."""

    estimate: float
    n: int


def reviewer_accuracy(*, session: Session, queue: Queue, user_id: int) -> Accuracy | None:
    """The reviewer's measured accuracy in the queue, or None below MIN_ANSWERS answers.

    An answer counts when its item's answer is known (a gold item) or its final label was
    not the reviewer's alone: a lead adjudicated it, or several reviewers reached it. This
    is the one place that says what a reviewer's accuracy is (dynamic second review).
    """
    name = session.scalar(select(col(User.name)).where(col(User.id) == user_id))
    rows = session.execute(
        select(col(Review.label), col(Label.value), col(Label.source), col(Label.reviewers))
        .join(Item, col(Item.id) == col(Review.item_id))
        .join(Label, col(Label.item_id) == col(Review.item_id))
        .where(
            col(Item.queue_id) == queue.id,
            col(Review.user_id) == user_id,
            col(Label.source).in_((LabelSource.HUMAN, LabelSource.AUDIT, LabelSource.ADJUDICATED)),
        )
        .order_by(col(Review.id).desc())
        .limit(RECENT_ANSWERS)
    ).all()
    judged = [
        answer == final
        for answer, final, source, reviewers in rows
        if source == LabelSource.ADJUDICATED or len([r for r in reviewers or [] if r != name]) > 0
    ]
    judged += gold_hits(session=session, queue=queue, user_id=user_id)[-RECENT_ANSWERS:]
    if len(judged) < MIN_ANSWERS:
        return None
    return Accuracy(estimate=sum(judged) / len(judged), n=len(judged))
