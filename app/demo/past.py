"""The demo's labelled past, as it would have happened: claims arrive in one batch a day for
two weeks and a reviewer works through them during the day, so the dashboard's charts (depth,
waiting age, throughput) have a history to draw. Uses the ordinary ingest, claim and
decision functions, each told the time."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlmodel import Session

from app.ingest.service import ingest_items, parse_rows
from app.models import Item, Queue, User
from app.review.service import claim_next, decide

DAYS = 14
WORKDAY = timedelta(hours=9)


def _batches(claims: list[dict], days: int, rng: random.Random) -> list[list[dict]]:
    """Uneven daily batches (a busy day leaves a backlog for the next)."""
    weights = [rng.uniform(0.4, 1.8) for _ in range(days)]
    total = sum(weights)
    bounds = [round(len(claims) * sum(weights[: i + 1]) / total) for i in range(days)]
    return [claims[a:b] for a, b in zip([0, *bounds[:-1]], bounds, strict=True)]


def _work(session: Session, queue: Queue, reviewer: User, truth: dict, start, until, rng) -> None:
    """The reviewer answers claim after claim from `start`, a few minutes each, until
    `until` or the queue is empty."""
    t = start
    while t < until:  # a claim's lease (600 s in the demo) outlasts each answer's minutes
        claim = claim_next(session=session, queue=queue, user=reviewer, now=t)
        if claim is None:
            return
        external_id = session.get_one(Item, claim.item_id).external_id
        t += timedelta(minutes=rng.uniform(2, 9))
        decide(session=session, token=claim.token, user=reviewer, label=truth[external_id], now=t)


def labelled_past(
    *, session: Session, queue: Queue, reviewer: User, claims: list[dict], now: datetime
) -> None:
    """Ingests `claims` ({"external_id", "payload", "label"}) over the DAYS before `now` and
    decides every one of them before `now`."""
    rng = random.Random(11)
    truth = {c["external_id"]: c["label"] for c in claims}
    first = now - timedelta(days=DAYS)
    for day, batch in enumerate(_batches(claims, DAYS, rng)):
        arrive = first + timedelta(days=day, minutes=rng.uniform(0, 90))
        if batch:
            rows = ({"external_id": c["external_id"], "payload": c["payload"]} for c in batch)
            ingest_items(session=session, queue=queue, items=parse_rows(rows), now=arrive)
        start = arrive + timedelta(minutes=20)
        _work(session, queue, reviewer, truth, start, arrive + WORKDAY, rng)
    # Whatever the last busy days left is cleared in the hours before now.
    _work(session, queue, reviewer, truth, now - timedelta(hours=6), now, rng)
    while (claim := claim_next(session=session, queue=queue, user=reviewer, now=now)) is not None:
        external_id = session.get_one(Item, claim.item_id).external_id
        decide(session=session, token=claim.token, user=reviewer, label=truth[external_id], now=now)
