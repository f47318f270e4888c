"""Builds the demo queue through the same domain functions that users and producers use."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session, col
from werkzeug.security import generate_password_hash

from app.auth.service import add_membership, create_token, create_user
from app.db import session_scope
from app.demo.claims import FIELDS, LABELS, generate_claims
from app.demo.past import labelled_past
from app.errors import Conflict
from app.ingest.service import ingest_items, parse_rows
from app.learning.feedback import make_training_example
from app.learning.training import train_model_version
from app.models import Outbox, Queue, User, id_of, utcnow
from app.queues.service import create_queue

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


def seed_demo(engine, *, history: int = 600, incoming: int = 600) -> DemoLogin:
    """Creates the demo queue once; every run gives the reviewer a fresh password and the
    producer a fresh API token (only their hashes are stored, so neither can be shown again)."""
    password = secrets.token_urlsafe(9)
    with session_scope(engine) as s:
        queue = s.scalar(select(Queue).where(col(Queue.name) == QUEUE))
        reviewer = s.scalar(select(User).where(col(User.name) == "reviewer"))
        seeded = queue is None or reviewer is None
        if queue is None or reviewer is None:
            reviewer = _build(s, password=password, history=history, incoming=incoming)
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


def _build(s: Session, *, password: str, history: int, incoming: int) -> User:
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
    for u in (reviewer, producer, archivist):
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
    return reviewer
