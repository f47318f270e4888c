"""Each dashboard panel's numbers on hand-made data, on SQLite and PostgreSQL (the buckets are
computed in SQL, differently per dialect)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.auth.service import create_user
from app.dashboard import panels as P
from app.dashboard.timeline import WINDOWS, frame, window_of
from app.errors import ValidationFailed
from app.models import AuditFrame, Claim, Item, Label, ModelVersion, Review
from app.queues.service import create_queue
from app.states import ItemStatus, LabelSource
from app.trust.precision import Cell, stratified_precision

# A Wednesday, half past noon UTC: the 24-hour window runs in hours from Tue 13:00 to Wed 13:00.
NOW = datetime(2026, 11, 18, 12, 30, tzinfo=UTC)
DAY = WINDOWS["24h"]


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


class Data:
    """Items, labels and reviews at chosen times in one queue."""

    def __init__(self, session, name="dash", **policy):
        self.s = session
        self.queue = create_queue(
            session=session, data={"name": name, "labels": ["fraud", "legit"]}
        )
        if policy:  # written raw, as a newer version's policy fields would be
            self.queue.policy = {**self.queue.policy, **policy}
        self.n = 0
        self.users: dict[str, int] = {}

    def item(
        self,
        created,
        *,
        status=ItemStatus.PENDING,
        decided=None,
        source=LabelSource.HUMAN,
        value="fraud",
        model_label=None,
        model_score=None,
    ) -> Item:
        self.n += 1
        if decided is not None and status == ItemStatus.PENDING:
            status = ItemStatus.AUTO_ACCEPTED if source == LabelSource.AUTO else ItemStatus.DONE
        it = Item(
            queue_id=self.queue.id, external_id=f"i{self.n}", created_at=created, status=status
        )
        self.s.add(it)
        self.s.flush()
        if decided is not None:
            self.s.add(
                Label(
                    item_id=it.id,
                    queue_id=self.queue.id,
                    value=value,
                    source=source,
                    decided_at=decided,
                    model_label=model_label,
                    model_score=model_score,
                )
            )
            self.s.flush()
        return it

    def review(self, name: str, when: datetime) -> None:
        if name not in self.users:
            self.users[name] = create_user(
                session=self.s, name=name, role="reviewer", password=None
            ).id
        it = self.item(when - timedelta(minutes=5), decided=when)
        claim = Claim(token=f"t{self.n}", item_id=it.id, user_id=self.users[name], expires_at=when)
        self.s.add(claim)
        self.s.flush()
        self.s.add(
            Review(
                item_id=it.id,
                claim_id=claim.id,
                user_id=self.users[name],
                label="fraud",
                created_at=when,
            )
        )
        self.s.flush()


def test_windows_align_on_the_clock_and_unknown_windows_are_refused():
    f = frame(DAY, now=NOW)
    assert (f.start, f.count, f.step) == (at(17, 13), 24, 3600)
    assert f.bucket_end(23) == NOW and f.bucket_end(0) == at(17, 14)
    week = frame(WINDOWS["30d"], now=NOW, coarse=True)
    assert week.start.weekday() == 0 and week.count == 5  # weeks start on Monday
    assert window_of(None).key == "7d"
    with pytest.raises(ValidationFailed):
        window_of("1y")


def test_depth_and_oldest_age_are_rebuilt_from_arrivals_and_decisions(session):
    d = Data(session)
    d.item(at(17, 10), decided=at(17, 15, 30))  # waiting at 14:00 and 15:00 (ends of 0 and 1)
    d.item(at(18, 2, 10))  # still waiting: from bucket 13 on
    d.item(at(18, 5), decided=at(18, 5, 20), source=LabelSource.AUTO)  # never waited at an end
    d.item(at(16, 1), decided=at(16, 2))  # decided before the window
    d.item(at(17, 20, 30), decided=at(18, 3, 30))  # waiting at the ends of buckets 7..13
    series = P.waiting_over_time(session=session, queue=d.queue, f=frame(DAY, now=NOW))
    expected = [1, 1] + [0] * 5 + [1] * 6 + [2] + [1] * 10
    assert series["depth"] == expected
    oldest = series["oldest_hours"]
    assert oldest[0] == 4.0 and oldest[1] == 5.0 and oldest[2] is None
    assert oldest[7] == 0.5 and oldest[13] == 6.5
    assert oldest[23] == round((NOW - at(18, 2, 10)).total_seconds() / 3600, 2)

    panel = P.depth_panel(session=session, queue=d.queue, window=DAY, now=NOW)
    assert panel.data["series"][0]["values"] == expected
    assert "1 at the start" in panel.caption and "at most 2" in panel.caption
    age = P.oldest_panel(session=session, queue=d.queue, window=DAY, now=NOW)
    assert age.data["reference"] is None and "now 10.3 h" in age.caption


def test_throughput_per_hour_and_per_reviewer(session):
    d = Data(session)
    d.review("ana", at(18, 12, 5))
    d.review("ana", at(18, 12, 10))
    d.review("bo", at(17, 13, 30))
    d.review("bo", at(17, 9))  # before the window
    per_hour = P.throughput_panel(session=session, queue=d.queue, window=DAY, now=NOW)
    counts = per_hour.data["series"][0]["values"]
    assert counts[0] == 1 and counts[23] == 2 and sum(counts) == 3
    assert "3 in the last 24 hours" in per_hour.caption
    people = P.reviewers_panel(session=session, queue=d.queue, window=DAY, now=NOW)
    assert people.data["rows"] == [{"name": "ana", "value": 2}, {"name": "bo", "value": 1}]
    assert "ana did 67%" in people.caption


def test_sla_breaches_decided_late_and_still_waiting(session):
    d = Data(session, sla_hours=2)
    d.item(at(17, 12, 30), decided=at(17, 15))  # due 14:30 (bucket 1), decided late
    d.item(at(17, 12, 30), decided=at(17, 13))  # on time
    d.item(at(18, 1))  # due 03:00 (bucket 14), still waiting
    d.item(at(18, 11))  # due 13:00: not yet due
    d.item(at(18, 2), decided=at(18, 2), source=LabelSource.AUTO)  # never waited for a person
    d.item(at(15, 8))  # waiting for days: past its deadline now, due before the window
    panel = P.sla_panel(session=session, queue=d.queue, window=DAY, now=NOW)
    late, waiting = (s["values"] for s in panel.data["series"])
    assert late[1] == 1 and sum(late) == 1
    assert waiting[14] == 1 and sum(waiting) == 1
    assert "3 were due" in panel.caption and "(67% breached)" in panel.caption
    assert "2 items wait past the deadline right now" in panel.caption
    assert not panel.empty


def test_sla_panel_says_when_no_service_level_is_set(session):
    d = Data(session)
    d.item(at(15, 8))
    panel = P.sla_panel(session=session, queue=d.queue, window=DAY, now=NOW)
    assert panel.empty and "No service level is set" in panel.caption


def test_audited_precision_per_time_bucket_with_its_interval(session):
    d = Data(session)

    def audited(when, right: bool, answered=True):
        it = d.item(
            when,
            decided=when if answered else None,
            source=LabelSource.AUDIT,
            value="fraud" if right else "legit",
        )
        session.add(
            AuditFrame(
                queue_id=d.queue.id,
                item_id=it.id,
                model_version="m1",
                answer="fraud",
                score=0.93,
                band="0.90-0.95",
                sample_rate=1.0,
                to_person=True,
                created_at=when,
            )
        )
        session.flush()

    for right in (True, True, True, False):
        audited(at(18, 9), right)  # 4-hour bucket 08:00-12:00 (index 4)
    audited(at(17, 17), True)  # bucket 0 (16:00-20:00)
    audited(at(18, 9, 30), True, answered=False)  # sent to a person, not answered yet
    audited(at(17, 1), False)  # before the window
    f = frame(DAY, now=NOW, coarse=True)
    assert (f.start, f.count) == (at(17, 16), 6)
    points = P.precision_over_time(session=session, queue=d.queue, f=f, confidence=0.9)
    expected = stratified_precision([Cell("0.90-0.95", 1.0, 5, 4, 3)], 0.9)
    assert points[4] == expected and points[4]["estimate"] == 0.75
    assert points[0]["estimate"] == 1.0 and points[0]["n"] == 1
    assert [p["estimate"] for p in points[1:4]] == [None, None, None]
    panel = P.precision_panel(session=session, queue=d.queue, window=DAY, now=NOW)
    assert panel.data["band"]["lower"][4] == expected["lower"]
    assert panel.data["reference"] == 0.9  # no target: the auto-accept threshold
    assert "Latest: 75.0%" in panel.caption


def test_model_quality_over_versions(session):
    d = Data(session)
    for i, (f1, acc, active) in enumerate(
        [(0.7, 0.8, False), (0.82, 0.85, True), (0.78, 0.84, False)]
    ):
        session.add(
            ModelVersion(
                queue_id=d.queue.id,
                version=f"m{i + 1}",
                active=active,
                snapshot=f"s{i}",
                metrics={"macro_f1": f1, "accuracy": acc},
                artifact=b"x",
                artifact_sha256="0" * 64,
                settings_hash=str(i),
            )
        )
        session.flush()
    panel = P.models_panel(session=session, queue=d.queue, window=DAY, now=NOW)
    assert panel.data["x"] == ["m1", "m2", "m3"]
    assert panel.data["series"][0] == {"name": "macro f1", "values": [0.7, 0.82, 0.78]}
    assert panel.data["series"][1]["values"] == [0.8, 0.85, 0.84]
    assert panel.data["highlight"] == 1
    assert "Best: m2 (82.0%)" in panel.caption and "the active one scores 82.0%" in panel.caption


def test_calibration_bins_human_labels_by_the_models_score(session):
    d = Data(session)
    for score, right in ((0.95, True), (0.92, False), (1.0, True), (0.55, True)):
        d.item(
            at(18, 9),
            decided=at(18, 10),
            value="fraud",
            model_label="fraud" if right else "legit",
            model_score=score,
        )
    d.item(
        at(18, 9),
        decided=at(18, 10),
        source=LabelSource.AUTO,
        model_label="fraud",
        model_score=0.99,
    )
    d.item(
        at(16, 9), decided=at(16, 10), model_label="legit", model_score=0.97
    )  # before the window
    d.item(at(18, 9), decided=at(18, 10), model_label=None, model_score=None)  # no model answer
    bins = P.calibration_bins(session=session, queue=d.queue, since=NOW - timedelta(days=1))
    assert [(b["lower"], b["n"], b["observed"]) for b in bins] == [(0.5, 1, 1.0), (0.9, 3, 0.6667)]
    assert bins[1]["mean_score"] == pytest.approx((0.95 + 0.92 + 1.0) / 3, abs=1e-4)
    panel = P.calibration_panel(session=session, queue=d.queue, window=DAY, now=NOW)
    assert "over 4 human decisions" in panel.caption and "overconfident" in panel.caption


def test_drift_panel_without_a_model_and_with_a_report(session, monkeypatch):
    d = Data(session)
    panel = P.drift_panel(session=session, queue=d.queue, window=DAY, now=NOW)
    assert panel.empty and "cannot be measured yet" in panel.caption
    report = {
        "status": "alarm",
        "window": 1000,
        "features": [{"name": "amount", "psi": 0.31}, {"name": "country", "psi": 0.02}],
    }
    monkeypatch.setattr(P, "drift_section", lambda **kw: report)
    panel = P.drift_panel(session=session, queue=d.queue, window=DAY, now=NOW)
    assert panel.data["rows"] == [
        {"name": "amount", "value": 0.31},
        {"name": "country", "value": 0.02},
    ]
    assert "Status: alarm" in panel.caption and "retrain" in panel.caption


def test_interval_panel_for_agreement_and_gold_accuracy():
    rows = [
        {"name": "ana", "estimate": 0.9, "lower": 0.8, "upper": 0.95, "n": 40},
        {"name": "bo", "estimate": None, "lower": None, "upper": None, "n": 0},
    ]
    panel = P.interval_panel(rows=rows, what="gold accuracy")
    assert panel.chart == "intervals" and not panel.empty and "Lowest: ana at 0.90" in panel.caption
    assert P.interval_panel(rows=rows[1:], what="kappa").empty
    # The shapes of app.desk.agreement's and app.desk.gold's reports (issue 11, points 3, 4).
    agreement = {
        "alpha": {"estimate": 0.7, "lower": 0.6, "upper": 0.8, "n": 30},
        "pairs": [
            {
                "reviewers": ["ana", "bo"],
                "kappa": {"estimate": 0.61, "lower": 0.4, "upper": 0.8, "n": 25},
            },
            {
                "reviewers": ["ana", "cy"],
                "kappa": {"estimate": None, "lower": None, "upper": None, "n": 3},
            },
        ],
    }
    assert P.kappa_rows(agreement) == [
        {"name": "ana & bo", "estimate": 0.61, "lower": 0.4, "upper": 0.8, "n": 25},
        {"name": "ana & cy", "estimate": None, "lower": None, "upper": None, "n": 3},
    ]
    gold = {
        "reviewers": [
            {"reviewer": "ana", "accuracy": {"estimate": 0.75, "lower": 0.5, "upper": 0.9, "n": 12}}
        ]
    }
    assert P.gold_accuracy_rows(gold) == [
        {"name": "ana", "estimate": 0.75, "lower": 0.5, "upper": 0.9, "n": 12}
    ]


def test_dashboard_lists_every_panel(session):
    d = Data(session)
    out = P.dashboard(session=session, queue=d.queue, window=DAY, now=NOW)
    assert [p["key"] for p in out] == [s.key for s in P.PANELS]
    assert all(p["caption"] for p in out)
