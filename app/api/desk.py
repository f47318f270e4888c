"""The lead's desk over the API: gold items and reviewers' accuracy on them, agreement
between reviewers, and each reviewer's own figures."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from app.api.endpoint import endpoint, validated_body
from app.api.schemas import (
    AgreementOut,
    AgreementQuery,
    GoldIn,
    GoldMarkOut,
    GoldOut,
    MyStatsOut,
)
from app.desk.agreement import MAX_DAYS, agreement_report
from app.desk.gold import check_marker, gold_report, mark_gold, unmark_gold
from app.desk.my_stats import my_stats
from app.errors import ValidationFailed
from app.extensions import db_session, write_session
from app.models import Queue, User

bp = Blueprint("desk", __name__)


def window_days(raw: str | None) -> int:
    """`?days=N`: a whole number of days from 1 to MAX_DAYS (30 when absent)."""
    if raw is None:
        return 30
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DAYS:
        raise ValidationFailed(
            f"days is a whole number from 1 to {MAX_DAYS}.",
            [{"field": "days", "message": "not a whole number of days in range"}],
        )
    return int(raw)


@bp.post("/queues/<name>/items/<path:external_id>/gold")
@endpoint(tag="desk", body=GoldIn, view_reads_body=True, ok={200: GoldMarkOut}, errors=(409,))
def mark_gold_view(queue: Queue, user: User, external_id: str):
    """Make a waiting item a gold item with its known answer, or change that answer (leads,
    admins). 409 when the item is leased, answered, audited or labelled already."""
    check_marker(user)  # a reviewer hears 403 whatever the body
    body = validated_body(GoldIn)
    assert isinstance(body, GoldIn)
    session = write_session()
    gold = mark_gold(
        session=session, queue=queue, user=user, external_id=external_id, label=body.label
    )
    session.commit()
    return jsonify(
        {"external_id": external_id, "gold": True, "label": gold.label, "outcome": "marked"}
    )


@bp.delete("/queues/<name>/items/<path:external_id>/gold")
@endpoint(tag="desk", ok={200: GoldMarkOut})
def unmark_gold_view(queue: Queue, user: User, external_id: str):
    """Stop using an item as gold (leads, admins): unanswered it goes back to the queue
    (`returned`); answered it is `retired` (no longer served or counted, never labelled)."""
    session = write_session()
    outcome = unmark_gold(session=session, queue=queue, user=user, external_id=external_id)
    session.commit()
    return jsonify({"external_id": external_id, "gold": False, "label": None, "outcome": outcome})


@bp.get("/queues/<name>/gold")
@endpoint(tag="desk", permission="configure", ok={200: GoldOut})
def gold_view(queue: Queue):
    """Gold items, accuracy per reviewer and for the queue (Clopper-Pearson intervals), and
    automation bias (leads, scientists, admins)."""
    return jsonify(gold_report(session=db_session(), queue=queue))


@bp.get("/queues/<name>/agreement")
@endpoint(tag="desk", permission="configure", query=AgreementQuery, ok={200: AgreementOut})
def agreement_view(queue: Queue):
    """Krippendorff's alpha for the queue and Cohen's kappa per reviewer pair over the last
    `days` days, with bootstrap intervals and item counts (leads, scientists, admins)."""
    days = window_days(request.args.get("days"))
    return jsonify(agreement_report(session=db_session(), queue=queue, days=days))


@bp.get("/me/stats")
@endpoint(tag="desk", ok={200: MyStatsOut})
def my_stats_view(user: User):
    """The caller's own figures ("My stats")."""
    return jsonify(my_stats(session=db_session(), user=user))
