"""When several people review an item: the answer they reach together, or none (a lead
decides), and when one review is not enough."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlmodel import Session, col

from app.desk.accuracy import reviewer_accuracy
from app.models import Item, ItemEvent, Prediction, Queue, QueueMember, Review, User

CONSENSUS_RULES = ("unanimous", "majority", "dawid_skene")
# Dawid-Skene settles an item only when its posterior for the answer is at least this;
# a split between reviewers it cannot tell apart goes to a lead.
DAWID_SKENE_MIN_POSTERIOR = 0.8
# Reviews of the queue's multi-review history the model learns reliabilities from.
DAWID_SKENE_HISTORY = 20_000
SECOND_REVIEW = "second_review"  # the ItemEvent kind that asks one more review of an item


@dataclass(frozen=True)
class Verdict:
    """The answer the reviews reach (None: unresolved) and how."""

    label: str | None
    why: str


def consensus(
    *, session: Session, queue: Queue, rule: str, item_id: int, votes: list[tuple[int, str]]
) -> Verdict:
    """The label the reviews `votes` ((user id, label), one per reviewer) agree on under the
    queue's rule, or an unresolved verdict for a lead."""
    counts = Counter(label for _, label in votes)
    top, top_n = counts.most_common(1)[0]
    if len(counts) == 1:
        return Verdict(top, "unanimous")
    if rule == "majority":
        if top_n * 2 > len(votes):
            return Verdict(top, f"majority {top_n} of {len(votes)}")
        return Verdict(None, f"no majority among {len(votes)} reviewers")
    if rule == "dawid_skene":
        return _dawid_skene(session=session, queue=queue, item_id=item_id)
    return Verdict(None, f"{len(counts)} different answers from {len(votes)} reviewers")


def _dawid_skene(*, session: Session, queue: Queue, item_id: int) -> Verdict:
    """Dawid-Skene over the queue's recent items with several reviews: each reviewer's
    confusion matrix is learned from all of them, then weighs their answers on this item."""
    # crowd-kit (with pandas) takes seconds to import: only queues that use it pay.
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    multi = (
        select(col(Review.item_id))
        .join(Item, col(Item.id) == col(Review.item_id))
        .where(col(Item.queue_id) == queue.id)
        .group_by(col(Review.item_id))
        .having(func.count() > 1)
    )
    rows = session.execute(
        select(col(Review.item_id), col(Review.user_id), col(Review.label))
        .where(col(Review.item_id).in_(multi))
        .order_by(col(Review.id).desc())
        .limit(DAWID_SKENE_HISTORY)
    ).all()
    data = pd.DataFrame(rows, columns=["task", "worker", "label"])
    if item_id not in set(data["task"]):
        return Verdict(None, "Dawid-Skene: the item's reviews are outside the history")
    with warnings.catch_warnings():
        # crowd-kit 1.4 still calls pandas APIs that pandas 3 deprecates; nothing Loupe
        # can change, and no reason for a reviewer's decision to fail.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        model = DawidSkene(n_iter=100).fit(data)
    probas = model.probas_
    if probas is None:  # crowd-kit sets it in fit; None only before
        return Verdict(None, "Dawid-Skene gave no answer")
    posterior = probas.loc[item_id]
    label, p = str(posterior.idxmax()), float(posterior.max())
    if p >= DAWID_SKENE_MIN_POSTERIOR:
        return Verdict(label, f"Dawid-Skene, posterior {p:.2f}")
    return Verdict(None, f"Dawid-Skene undecided (best posterior {p:.2f})")


def reviews_needed(*, session: Session, item_id: int, reviews_required: int) -> int:
    """The reviews the item needs: the queue's k, or two once a second review was asked."""
    asked = session.scalar(
        select(col(ItemEvent.id))
        .where(col(ItemEvent.kind) == SECOND_REVIEW, col(ItemEvent.item_id) == item_id)
        .limit(1)
    )
    return max(reviews_required, 2) if asked is not None else reviews_required


def second_review_reason(
    *,
    session: Session,
    queue: Queue,
    on_override: float | None,
    below_accuracy: float | None,
    user_id: int,
    label: str,
    prediction: Prediction | None,
) -> str | None:
    """Why a single review is not enough (None: it is): the reviewer overrode a confident
    model, or their measured accuracy is low."""
    top = prediction.candidates[0] if prediction and prediction.candidates else None
    score = top.get("score") if top else None
    if (
        on_override is not None
        and top is not None
        and score is not None
        and float(score) >= on_override
        and top["label"] != label
    ):
        return f"the reviewer overrode the model's {top['label']!r} ({float(score):.0%})"
    if below_accuracy is not None:
        measured = reviewer_accuracy(session=session, queue=queue, user_id=user_id)
        if measured is not None and measured.estimate < below_accuracy:
            return (
                f"the reviewer's measured accuracy is {measured.estimate:.0%} "
                f"over {measured.n} answers"
            )
    return None


def ask_second_review(*, session: Session, item_id: int, user_id: int, why: str, now) -> None:
    """Records that the item needs one more review, and why (shown to the lead later)."""
    session.add(
        ItemEvent(item_id=item_id, user_id=user_id, kind=SECOND_REVIEW, comment=why, created_at=now)
    )


def eligible_reviewers(*, session: Session, queue: Queue) -> int:
    """How many people can review the queue's items: its members."""
    return (
        session.scalar(
            select(func.count())
            .select_from(QueueMember)
            .join(User, col(User.id) == col(QueueMember.user_id))
            .where(col(QueueMember.queue_id) == queue.id)
        )
        or 0
    )


def overlap_status(*, session: Session, queue: Queue, reviews_required: int) -> dict:
    """Whether the queue has enough members for its overlap; `short` with a sentence when
    items would wait forever for a k-th reviewer who does not exist."""
    members = eligible_reviewers(session=session, queue=queue)
    short = members < reviews_required
    return {
        "reviews_required": reviews_required,
        "eligible_reviewers": members,
        "short": short,
        "message": (
            f"Each item needs {reviews_required} different reviewers but the queue has "
            f"{members} member{'s' if members != 1 else ''}: items wait until more join."
            if short
            else None
        ),
    }
