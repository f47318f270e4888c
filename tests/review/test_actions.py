"""Escalate, flag, heartbeat, undo, reopen and the reviewer's history (domain functions)."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.errors import Conflict, Gone, NotFound, ValidationFailed
from app.ingest.service import ingest_items, parse_rows
from app.learning.feedback import make_training_example
from app.learning.training import train_model_version
from app.models import Item, ItemEvent, Label, Outbox, Review, TrainingExample, User, utcnow
from app.queues.service import get_queue
from app.review import actions
from app.review.service import claim_next, decide
from tests.conftest import item


@pytest.fixture
def setup(make, session):
    make.queue(audit_rate=0, retrain_after=0, lease_seconds=60)
    make.user("reviewer", queues=["claims"], name="rita")
    make.user("reviewer", queues=["claims"], name="sam")
    queue = get_queue(session=session, name="claims")
    ingest_items(
        session=session,
        queue=queue,
        items=parse_rows([item(f"a-{i}", "fraud", 0.6) for i in range(12)]),
    )
    users = {u.name: u for u in session.scalars(select(User))}
    return queue, users


def test_escalate_needs_a_reason_and_takes_the_item_out_of_review(setup, session):
    queue, users = setup
    claim = claim_next(session=session, queue=queue, user=users["rita"])
    with pytest.raises(ValidationFailed):
        actions.escalate(session=session, token=claim.token, user=users["rita"], reason="  ")
    it = actions.escalate(
        session=session, token=claim.token, user=users["rita"], reason="customer called twice <b>"
    )
    assert it.status == "escalated" and it.lease_token is None
    event = session.scalar(select(ItemEvent))
    assert (event.kind, event.comment) == ("escalate", "customer called twice <b>")
    # Nobody is handed the escalated item again.
    claims = [claim_next(session=session, queue=queue, user=users["sam"]) for _ in range(11)]
    assert all(c.item_id != it.id for c in claims)


def test_flag_keeps_the_item_with_the_reviewer(setup, session):
    queue, users = setup
    claim = claim_next(session=session, queue=queue, user=users["rita"])
    actions.flag(session=session, token=claim.token, user=users["rita"], comment="odd IBAN")
    assert actions.flags_of(session=session, item_id=claim.item_id) == ["odd IBAN"]
    done = decide(session=session, token=claim.token, user=users["rita"], label="fraud")
    assert done.item.status == "done"


def test_heartbeat_extends_a_live_lease_only(setup, session):
    queue, users = setup
    now = utcnow()
    claim = claim_next(session=session, queue=queue, user=users["rita"], now=now)
    later = now + timedelta(seconds=50)
    expiry = actions.heartbeat(session=session, token=claim.token, user=users["rita"], now=later)
    assert expiry == later + timedelta(seconds=60)
    assert session.get(Item, claim.item_id).lease_expires_at == expiry
    with pytest.raises(Gone):
        actions.heartbeat(
            session=session,
            token=claim.token,
            user=users["rita"],
            now=expiry + timedelta(seconds=1),
        )


def test_undo_takes_the_decision_back_within_the_window(setup, session):
    queue, users = setup
    claim = claim_next(session=session, queue=queue, user=users["rita"])
    d = decide(session=session, token=claim.token, user=users["rita"], label="legit")
    make_training_example(session=session, outbox_id=d.outbox_id)
    back = actions.undo_last(session=session, queue=queue, user=users["rita"])
    assert back.previous_label == "legit" and back.item.id == claim.item_id
    assert back.item.status == "in_review" and back.item.lease_owner_id == users["rita"].id
    assert session.scalar(select(Review).where(Review.item_id == claim.item_id)) is None
    assert session.scalar(select(Label).where(Label.item_id == claim.item_id)) is None
    assert session.scalar(select(TrainingExample)) is None
    assert session.scalar(select(Outbox)) is None
    # The reviewer answers again under the new claim.
    again = decide(session=session, token=back.claim.token, user=users["rita"], label="fraud")
    assert again.label.value == "fraud"
    with pytest.raises(NotFound):
        actions.undo_last(
            session=session,
            queue=queue,
            user=users["rita"],
            now=utcnow() + actions.UNDO_WINDOW + timedelta(seconds=1),
        )


def test_reopen_from_history_until_a_model_trains_on_it(setup, session):
    queue, users = setup
    rita = users["rita"]
    for _ in range(12):
        c = claim_next(session=session, queue=queue, user=rita)
        d = decide(
            session=session, token=c.token, user=rita, label="legit" if c.item_id % 2 else "fraud"
        )
        make_training_example(session=session, outbox_id=d.outbox_id)
    rows = actions.history(session=session, user=rita)
    assert len(rows) == 12 and all(r["reopenable"] for r in rows)
    assert len(actions.history(session=session, user=rita, label="fraud")) == 6
    first = rows[-1]["review"]
    with pytest.raises(Exception, match="own"):
        actions.reopen(session=session, review_id=first.id, user=users["sam"])
    reopened = actions.reopen(session=session, review_id=first.id, user=rita)
    assert reopened.item.status == "in_review"
    assert (
        session.scalar(select(ItemEvent.kind).where(ItemEvent.item_id == reopened.item.id))
        == "reopen"
    )
    decide(session=session, token=reopened.claim.token, user=rita, label="fraud")
    make_training_example(
        session=session, outbox_id=session.scalar(select(Outbox.id).order_by(Outbox.id.desc()))
    )
    train_model_version(db=session, queue_id=queue.id)
    rows = actions.history(session=session, user=rita)
    assert not any(r["reopenable"] for r in rows)
    with pytest.raises(Conflict, match="train"):
        actions.reopen(session=session, review_id=rows[0]["review"].id, user=rita)
