"""The demo gives the lead something to decide: escalations, a flag and a disagreement."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from app.db import new_session
from app.demo.seed import QUEUE, seed_demo
from app.desk.adjudication import adjudication_list
from app.models import Queue
from app.queues.service import policy_of


def test_the_demo_lead_finds_escalations_a_flag_and_a_disagreement(app, engine):
    seed_demo(engine, history=150, incoming=40)
    with new_session(engine) as s:
        queue = s.scalar(select(Queue).where(Queue.name == QUEUE))
        entries = adjudication_list(session=s, queue=queue)
        kinds = Counter(r["kind"] for e in entries for r in e["reasons"])
        assert kinds == {"escalated": 3, "flagged": 1, "disagreement": 1}
        (disputed,) = [e for e in entries if e["reasons"][0]["kind"] == "disagreement"]
        assert {r["reviewer"] for r in disputed["reviews"]} == {"history", "colleague"}
        assert all(r["shown"]["candidates"] for r in disputed["reviews"])
        # The demo queue itself keeps one review per item.
        assert policy_of(queue).reviews_required == 1
