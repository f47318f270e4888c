"""Builds the demo queue through the same domain functions that users and producers use."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlmodel import Session, col
from werkzeug.security import generate_password_hash

from app.auth.service import add_membership, create_token, create_user
from app.db import session_scope
from app.demo.claims import FIELDS, LABELS, generate_claims
from app.demo.past import labelled_past
from app.desk.gold import claim_gold
from app.errors import Conflict
from app.ingest.service import ingest_items, parse_rows
from app.learning.feedback import make_training_example
from app.learning.training import train_model_version
from app.models import Item, Outbox, Queue, User, id_of, utcnow
from app.queues.service import create_queue, policy_of, update_policy
from app.review.actions import escalate, flag
from app.review.service import claim_next, current_prediction, decide
from app.states import ClaimState

QUEUE = "claims"


@dataclass
class DemoLogin:
    reviewer: str
    reviewer_role: str
    password: str
    producer: str
    producer_role: str
    token: str
    seeded: bool


def seed_demo(
    engine, *, history: int = 600, incoming: int = 600, gold_rate: float = 0.05
) -> DemoLogin:
    """Creates the demo queue once; every run gives the reviewer a fresh password and the
    producer a fresh API token (only their hashes are stored, so neither can be shown again).
    `gold_rate`: the share of claims that serve a gold item (a random draw; tests that expect
    a given item next set it to 0)."""
    password = secrets.token_urlsafe(9)
    with session_scope(engine) as s:
        queue = s.scalar(select(Queue).where(col(Queue.name) == QUEUE))
        reviewer = s.scalar(select(User).where(col(User.name) == "reviewer"))
        seeded = queue is None or reviewer is None
        if queue is None or reviewer is None:
            reviewer = _build(
                s, password=password, history=history, incoming=incoming, gold_rate=gold_rate
            )
        else:
            reviewer.password_hash = generate_password_hash(password)
        producer = s.scalar(select(User).where(col(User.name) == "producer"))
        if producer is None:
            raise Conflict(
                f"This database has a queue {QUEUE!r} and a user 'reviewer' but no user "
                "'producer': it was not made by the demo. Run the demo on a database of its own."
            )
        # Earlier starts' tokens stay valid: they are as local as this one (the same database
        # file on this machine), a script still holding yesterday's token keeps working, and
        # nothing marks which of the producer's tokens the demo made rather than a person
        # with `loupe token create`, so revoking them could take away one that person needs.
        token = create_token(session=s, user=producer)
        return DemoLogin(
            reviewer=reviewer.name,
            reviewer_role=reviewer.role,
            password=password,
            producer=producer.name,
            producer_role=producer.role,
            token=token,
            seeded=seeded,
        )


def _build(s: Session, *, password: str, history: int, incoming: int, gold_rate: float) -> User:
    """The queue, its three users, a labelled past, a baseline model and today's claims;
    returns the reviewer."""
    queue = create_queue(
        session=s,
        data={
            "name": QUEUE,
            "labels": LABELS,
            "description": "Card repayment claims: legitimate, fraud, or a duplicate?",
            "display": {"fields": FIELDS, "noun": "claim"},
            "policy": {
                "auto_accept_threshold": 0.8,
                "min_margin": 0.4,
                "audit_rate": 0.05,
                "retrain_after": 25,
                "lease_seconds": 600,
                "coverage": 0.95,
                # One claim in twenty is a gold item (a known answer) measuring the reviewer.
                "gold_rate": gold_rate,
                # What reviewers see when the model cannot answer in time (or is gone).
                "rules": [
                    {
                        "name": "large amount",
                        "field": "amount",
                        "op": ">=",
                        "value": 1000,
                        "label": "fraud",
                    },
                    {
                        "name": "says charged twice",
                        "field": "note",
                        "op": "contains",
                        "value": "twice",
                        "label": "duplicate",
                    },
                ],
            },
        },
    )
    reviewer = create_user(session=s, name="reviewer", role="lead", password=password)
    producer = create_user(session=s, name="producer", role="scientist", password=None)
    archivist = create_user(session=s, name="history", role="reviewer", password=None)
    colleague = create_user(session=s, name="colleague", role="reviewer", password=None)
    for u in (reviewer, producer, archivist, colleague):
        add_membership(session=s, user=u, queue=queue)

    claims = generate_claims(history + incoming)
    past, new = claims[:history], claims[history:]
    # The past: items a team already labelled over two weeks, reviewed through the ordinary
    # path, so the dashboard has a history to draw.
    labelled_past(session=s, queue=queue, reviewer=archivist, claims=past, now=utcnow())
    for outbox in s.scalars(select(Outbox).where(col(Outbox.queue_id) == queue.id)):
        make_training_example(session=s, outbox_id=id_of(outbox))
    train_model_version(db=s, queue_id=id_of(queue), seed=0)
    # Today's claims arrive without a prediction: the baseline scores and routes them.
    ingest_items(
        session=s,
        queue=queue,
        items=parse_rows({"external_id": c["external_id"], "payload": c["payload"]} for c in new),
    )
    _waiting_for_the_lead(s, queue=queue, reviewer=archivist, colleague=colleague)
    kim = create_user(session=s, name="kim", role="reviewer", password=None)
    _gold(s, queue=queue, reviewers=[archivist, kim])
    return reviewer


ESCALATIONS = (
    "The note says the card was stolen but the amount matches a regular payment: which one wins?",
    "Same merchant and amount as a claim settled last month; I cannot see that history.",
    "Customer called twice about this; a lead should decide before we answer.",
)


def _waiting_for_the_lead(s: Session, *, queue: Queue, reviewer: User, colleague: User) -> None:
    """A few escalations, one flagged answer and one disagreement, for the lead's desk."""
    for reason in ESCALATIONS:
        claim = claim_next(session=s, queue=queue, user=reviewer)
        if claim is None:
            return
        escalate(session=s, token=claim.token, user=reviewer, reason=reason)
    claim = claim_next(session=s, queue=queue, user=reviewer)
    if claim is None:
        return
    flag(session=s, token=claim.token, user=reviewer, comment="The amount looks typed in cents.")
    decide(session=s, token=claim.token, user=reviewer, label="legit")
    # A disagreement: for one item the queue asks two reviews (as a queue with
    # reviews_required 2 does for all), and the two reviewers answer differently.
    update_policy(session=s, queue=queue, changes={"reviews_required": 2})
    claim = claim_next(session=s, queue=queue, user=reviewer)
    if claim is not None:
        disputed = decide(session=s, token=claim.token, user=reviewer, label="fraud").item
        disputed.priority = 1  # the colleague's next claim is this item
        s.flush()
        second = claim_next(session=s, queue=queue, user=colleague)
        if second is not None:
            decide(
                session=s,
                token=second.token,
                user=colleague,
                label="duplicate",
                comment="Same amount and date as the claim before it.",
            )
    update_policy(session=s, queue=queue, changes={"reviews_required": 1})


GOLD_ITEMS = 8


def _wrong(label: str) -> dict:
    """A prediction whose top answer is not `label`."""
    others = [x for x in LABELS if x != label]
    return {
        "model_version": "producer-demo",
        "candidates": [{"label": others[0], "score": 0.7}, {"label": label, "score": 0.3}],
    }


def _gold(s: Session, *, queue: Queue, reviewers: list[User]) -> None:
    """A few gold items (known answers, scored by the baseline like today's claims), each
    answered by two reviewers: one answers from the evidence, one follows the model's top
    answer, so accuracy and automation bias both show on the Reviewers page."""
    claims = generate_claims(GOLD_ITEMS, seed=29)
    truth = {f"claim-{900001 + i}": c["label"] for i, c in enumerate(claims)}
    ingest_items(
        session=s,
        queue=queue,
        items=parse_rows(
            {
                "external_id": ext,
                "payload": c["payload"],
                "gold_label": truth[ext],
                # A producer's confident wrong answer on some, so automation bias shows.
                **({"prediction": _wrong(truth[ext])} if n % 2 == 0 else {}),
            }
            for n, (ext, c) in enumerate(zip(truth, claims, strict=True))
        ),
    )
    # Every seeding claim serves a gold item, whatever the queue's own gold_rate.
    policy = policy_of(queue).model_copy(update={"gold_rate": 1.0})
    for careful, user in zip((True, False), reviewers, strict=True):
        add_membership(session=s, user=user, queue=queue)
        now = utcnow()
        while (
            claim := claim_gold(
                session=s,
                queue=queue,
                user=user,
                policy=policy,
                token=secrets.token_urlsafe(24),
                now=now,
                expires_at=now + timedelta(seconds=policy.lease_seconds),
                state=ClaimState.LIVE,
                draw=lambda: 0.0,
            )
        ) is not None:
            item = s.get_one(Item, claim.item_id)
            model = current_prediction(session=s, item_id=id_of(item))
            top = model.candidates[0]["label"] if model and model.candidates else None
            answer = truth[item.external_id] if careful or top is None else top
            decide(session=s, token=claim.token, user=user, label=answer)
