"""The queue list page."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user, login_required

from app.auth.service import PERMISSIONS
from app.extensions import db_session
from app.models import id_of
from app.queues.service import (
    age_words,
    item_counts,
    policy_of,
    queue_home_stats,
    queues_for,
)
from app.queues.sla import sla_words

bp = Blueprint("queues", __name__)


@bp.get("/")
def home():
    return redirect(url_for("queues.index"))


@bp.get("/queues")
@login_required
def index():
    session = db_session()
    queues = queues_for(session=session, user=current_user)
    counts = item_counts(session=session, queue_ids=[id_of(q) for q in queues])
    stats = queue_home_stats(session=session, queues=queues, user=current_user)
    # The oldest waiting item against the queue's service level, for queues that have one.
    sla = {
        q.id: sla_words(
            age_seconds=st["oldest"].total_seconds() if st["oldest"] is not None else None,
            sla_hours=hours,
        )
        for q in queues
        if (hours := policy_of(q).sla_hours) is not None and (st := stats[q.id])
    }
    return render_template(
        "queues/index.html",
        queues=queues,
        counts=counts,
        stats=stats,
        sla=sla,
        age_words=age_words,
        may_configure=current_user.role in PERMISSIONS["configure"],
    )
