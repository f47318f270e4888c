"""A reviewer's own figures ("My stats"): how much they decided, how long an item takes
them, how often they agree with the others, and their gold accuracy where the queue shows
it to reviewers (policy `gold_feedback_to_reviewers`)."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from app.desk.gold import gold_accuracy, interval
from app.models import Claim, Item, Label, Review, id_of, utcnow
from app.queues.service import policy_of, queues_for
from app.states import ItemStatus

AGREEMENT_DAYS = 30


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _agreement(session: Session, user_id: int, since: datetime) -> dict:
    """The share of the user's answers on items others answered too that match the final
    label (where there is one) or else the others' most common answer."""
    mine = dict(
        session.execute(
            select(col(Review.item_id), col(Review.label))
            .join(Item, col(Item.id) == col(Review.item_id))
            .where(
                col(Review.user_id) == user_id,
                col(Review.created_at) >= since,
                col(Item.status) != ItemStatus.GOLD,
            )
            .order_by(col(Review.id))
        ).all()
    )
    if not mine:
        return interval(0, 0)
    others: dict[int, list[str]] = defaultdict(list)
    for item_id, label in session.execute(
        select(col(Review.item_id), col(Review.label)).where(
            col(Review.item_id).in_(mine), col(Review.user_id) != user_id
        )
    ):
        others[item_id].append(label)
    finals = dict(
        session.execute(
            select(col(Label.item_id), col(Label.value)).where(col(Label.item_id).in_(others))
        ).all()
    )
    hits = n = 0
    for item_id, theirs in others.items():
        reference = finals.get(item_id) or Counter(theirs).most_common(1)[0][0]
        n += 1
        hits += mine[item_id] == reference
    return interval(hits, n)


def my_stats(*, session: Session, user, now=None) -> dict:
    """The reviewer's figures over every queue they belong to, and per queue."""
    now = now or utcnow()
    today = _day_start(now)
    week = today - timedelta(days=today.weekday())
    rows = session.execute(
        select(col(Item.queue_id), col(Review.created_at), col(Claim.created_at))
        .join(Item, col(Item.id) == col(Review.item_id))
        .join(Claim, col(Claim.id) == col(Review.claim_id))
        .where(col(Review.user_id) == user.id, col(Review.created_at) >= week)
    ).all()
    per_queue: dict[int, Counter] = defaultdict(Counter)
    seconds = []
    for queue_id, decided, claimed in rows:
        per_queue[queue_id]["week"] += 1
        per_queue[queue_id]["today"] += decided >= today
        seconds.append((decided - claimed).total_seconds())
    queues = []
    for queue in queues_for(session=session, user=user):
        entry: dict = {
            "queue": queue.name,
            "today": per_queue[id_of(queue)]["today"],
            "week": per_queue[id_of(queue)]["week"],
        }
        if policy_of(queue).gold_feedback_to_reviewers:
            entry["gold_accuracy"] = gold_accuracy(
                session=session, queue=queue, user_id=id_of(user)
            )
        queues.append(entry)
    return {
        "user": user.name,
        "today": sum(c["today"] for c in per_queue.values()),
        "week": sum(c["week"] for c in per_queue.values()),
        "median_seconds_per_item": round(statistics.median(seconds), 1) if seconds else None,
        "agreement": {
            **_agreement(session, id_of(user), now - timedelta(days=AGREEMENT_DAYS)),
            "days": AGREEMENT_DAYS,
        },
        "queues": queues,
    }
