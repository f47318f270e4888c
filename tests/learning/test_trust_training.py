"""Issue 10, the training side: auto-accept by target precision (Learn-Then-Test), the served
model refit on every label, and the paired promotion gate."""

import datetime as dt
import logging

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy import select

from app.db import session_scope
from app.learning.auto_accept import choose_rule
from app.learning.fitting import fit
from app.learning.registry import active_for_comparison
from app.learning.scoring import load_version
from app.learning.snapshot import Row, Snapshot, hash_rows
from app.learning.training import train_model_version
from app.models import ModelVersion, Queue, TrainingRun
from app.queues.service import Policy
from app.routing.decision import route_item
from app.states import RouteDecision
from tests.conftest import wait_for
from tests.learning.test_learning_loop import _demo_snapshot
from tests.learning.test_training import _labelled

log = logging.getLogger(__name__)
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _snapshot(x, y) -> Snapshot:
    """Rows of a bundled scikit-learn data set, in the given order (oldest first)."""
    rows = [
        Row(
            i + 1,
            {f"p{j}": float(v) for j, v in enumerate(xi)},
            str(yi),
            "human",
            T0 + dt.timedelta(minutes=i),
        )
        for i, (xi, yi) in enumerate(zip(x, y, strict=True))
    ]
    return Snapshot(rows=rows, content_hash=hash_rows(rows))


# --- auto-accept by target precision -------------------------------------------------------


@pytest.mark.parametrize(
    ("loader", "target", "n_fit", "n_cal"),
    [(load_digits, 0.97, 600, 600), (load_breast_cancer, 0.95, 150, 270)],
)
def test_chosen_threshold_holds_the_target_precision_on_unseen_data(loader, target, n_fit, n_cal):
    """Over 30 draws of held-out labels, the threshold chosen on them keeps precision >= the
    target on other labels the model never saw in at least ~90% (the confidence) of draws."""
    confidence, draws = 0.9, 30
    x, y = loader(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    fit_rows, rest = order[:n_fit], order[n_fit:]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.05))
    proba = model.fit(x[fit_rows], y[fit_rows]).predict_proba(x[rest])
    top, correct = proba.max(axis=1), model.classes_[proba.argmax(axis=1)] == y[rest]
    held, shares = 0, []
    for seed in range(draws):
        draw = np.random.default_rng(seed).permutation(len(rest))
        cal, unseen = draw[:n_cal], draw[n_cal:]
        rule = choose_rule(top[cal], correct[cal], target_precision=target, confidence=confidence)
        if rule["threshold"] is None:
            held += 1  # nothing auto-accepted: no wrong answer accepted either
            shares.append(0.0)
            continue
        accepted = top[unseen] >= rule["threshold"]
        shares.append(float(accepted.mean()))
        held += bool(not accepted.any() or correct[unseen][accepted].mean() >= target)
    interval = binomtest(held, draws).proportion_ci(confidence_level=0.95, method="exact")
    log.info(
        f"{loader.__name__}: target {target} held in {held}/{draws} draws "
        f"(95% CI {interval.low:.2f}-{interval.high:.2f}), mean auto-accept share "
        f"{np.mean(shares):.2f}, {len(rest) - n_cal} unseen rows per draw"
    )
    # Consistent with a guarantee of >= 90% (one-sided binomial test at 1%)...
    assert binomtest(held, draws, confidence, alternative="less").pvalue > 0.01
    # ...and not by accepting nothing: the rule does auto-accept most items.
    assert np.mean(shares) > 0.5


def test_training_run_chooses_the_rule_and_the_refit_model_keeps_it_on_unseen_digits():
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(1).permutation(len(y))
    seen, unseen = order[:1200], order[1200:]
    policy = {"target_precision": 0.95, "confidence": 0.9}
    fitted = fit(_snapshot(x[seen], y[seen]), queue=Queue(id=1, name="d", policy=policy))
    rule = fitted.metrics["auto_accept"]
    assert rule["target_precision"] == 0.95 and rule["confidence"] == 0.9
    assert rule["n"] == 480 and rule["why_none"] is None and 0.3 <= rule["threshold"] < 1
    assert 0.5 < rule["expected_share"] <= 1 and rule["held_out_precision"] >= 0.95
    # The trade-off curve: a stricter target never sends fewer items to people.
    curve = rule["curve"]
    assert [p["target_precision"] for p in curve] == sorted(p["target_precision"] for p in curve)
    assert all(a["to_people"] <= b["to_people"] for a, b in zip(curve, curve[1:], strict=False))
    assert any(
        p["target_precision"] == 0.95 and p["share"] == rule["expected_share"] for p in curve
    )
    # The served model trained on all 1,200 labels, the split model on the older 720.
    assert fitted.card["served"] == {
        "refit": True,
        "n_labels": 1200,
        "n_held_out": 480,
        "n_evaluation": 240,
        "note": None,
    }
    assert fitted.model is not fitted.split_model
    # On the 597 digits neither model saw, the served model with the chosen threshold.
    columns = fitted.card["columns"]
    from app.learning.features import table

    proba = fitted.model.predict_proba(
        table([{f"p{j}": float(v) for j, v in enumerate(xi)} for xi in x[unseen]], columns)
    )
    accepted = proba.max(axis=1) >= rule["threshold"]
    answers = fitted.model.classes_[proba.argmax(axis=1)]
    precision = float((answers[accepted] == y[unseen][accepted].astype(str)).mean())
    log.info(f"refit model: precision {precision:.3f} on {accepted.sum()} of {len(unseen)} unseen")
    assert accepted.mean() > 0.5 and precision >= 0.95


def test_no_rule_reaching_the_target_means_no_auto_accept_and_says_why():
    snap = _demo_snapshot(300, seed=5)
    policy = {"target_precision": 0.999, "confidence": 0.99}
    fitted = fit(snap, queue=Queue(id=1, name="claims", policy=policy))
    rule = fitted.metrics["auto_accept"]
    assert rule["threshold"] is None and rule["expected_share"] == 0.0
    assert rule["why_none"].startswith("no threshold reaches 99.9% precision with 99% confidence")
    from app.learning.conformal import Conformal
    from app.learning.scoring import LoadedModel, _rule_of

    loaded = LoadedModel(
        1,
        "claims-v1",
        fitted.model,
        fitted.card["columns"],
        Conformal.from_dict(fitted.card["conformal"]),
        auto_accept=_rule_of(fitted.metrics),
    )
    routes = []
    for r in snap.rows[-50:]:
        cands, detail = loaded.candidates(loaded.predict_proba([r.payload]))[0]
        routes.append(
            route_item(
                policy=Policy(**policy),
                candidates=cands,
                queue_name="claims",
                external_id=str(r.example_id),
                detail=detail,
            )
        )
    assert {r.decision for r in routes} == {RouteDecision.REVIEW}
    assert all(r.reason.startswith("no auto-accept rule reaches 99.9% precision") for r in routes)
    # Too few held-out labels for any rule: the reason says so.
    small = choose_rule(np.ones(5), np.ones(5), target_precision=0.9, confidence=0.9)
    assert small["threshold"] is None and "only 5 held-out human labels" in small["why_none"]


def test_routing_by_the_models_rule_and_producers_keep_the_score_threshold():
    policy = Policy(target_precision=0.95, confidence=0.9, audit_rate=0, auto_accept_threshold=0.6)
    rule = {"threshold": 0.8, "target_precision": 0.95, "confidence": 0.9, "why_none": None}
    detail = {"coverage": 0.95, "set_size": 2, "auto_accept": rule}

    def route(score, d):
        cands = [{"label": "a", "score": score}, {"label": "b", "score": round(1 - score, 2)}]
        return route_item(
            policy=policy, candidates=cands, queue_name="q", external_id="x", detail=d
        )

    ok = route(0.85, detail)
    assert ok.decision == RouteDecision.AUTO_ACCEPT
    assert ok.reason == (
        "calibrated confidence 0.85 ≥ 0.80, the threshold chosen for 95.0% precision with "
        "90% confidence"
    )
    low = route(0.7, detail)  # above the score threshold 0.6, below the model's rule
    assert low.decision == RouteDecision.REVIEW and "below 0.80" in low.reason
    stale = route(0.99, {**detail, "auto_accept": {**rule, "target_precision": 0.9}})
    assert stale.decision == RouteDecision.REVIEW and "now asks for 95.0%" in stale.reason
    untrained = route(0.99, {"coverage": 0.95, "set_size": 1})
    assert untrained.decision == RouteDecision.REVIEW
    assert "trained without that target" in untrained.reason
    # A producer's own prediction (no detail) is still judged by auto_accept_threshold.
    producer = route(0.85, None)
    assert producer.decision == RouteDecision.AUTO_ACCEPT and "≥ 0.60" in producer.reason


def test_a_queue_without_target_routes_as_before(make, engine, db):
    queue_id = make.queue(audit_rate=0, retrain_after=0, auto_accept_threshold=0.5, min_margin=0)
    make.user("reviewer", queues=["claims"])
    _labelled(engine, 200)
    with session_scope(engine) as s:
        v = train_model_version(db=s, queue_id=queue_id).version
        assert "auto_accept" not in v.metrics
        assert "target_precision" not in v.card["settings"]
        loaded = load_version(s, v)
        assert loaded.auto_accept is None
        policy = Policy(**s.get(Queue, queue_id).policy)
    payloads = [c.payload for c in _demo_snapshot(200, seed=9).rows]
    seen = set()
    for n, (cands, detail) in enumerate(loaded.candidates(loaded.predict_proba(payloads))):
        assert "auto_accept" not in detail
        r = route_item(
            policy=policy, candidates=cands, queue_name="claims", external_id=str(n), detail=detail
        )
        seen.add(r.decision)
        if r.decision == RouteDecision.AUTO_ACCEPT:
            assert detail["set_size"] == 1 and r.reason.startswith("the only answer in the 95%")
        elif detail["set_size"] != 1:
            assert "candidate set holds" in r.reason
    assert RouteDecision.AUTO_ACCEPT in seen and RouteDecision.REVIEW in seen


# --- the first model, the paired gate, policy changes ----------------------------------------


def test_the_first_model_waits_for_enough_labels_of_each_answer():
    snap = _demo_snapshot(60, seed=1)
    counts = {}
    for r in snap.rows:
        counts[r.target] = counts.get(r.target, 0) + 1
    queue = Queue(id=1, name="claims", labels=["legit", "fraud", "duplicate", "chargeback"])
    fitted = fit(snap, queue=queue)
    assert fitted.metrics["promoted"] is False
    assert fitted.metrics["promotion_reason"] == (
        "first model of the queue: kept as a candidate until each answer has at least 5 human "
        "labels (“chargeback” has 0)"
    )
    queue.labels = ["legit", "fraud", "duplicate"]
    assert fit(snap, queue=queue).metrics["promoted"] is True
    assert min(counts.values()) >= 5


def test_bad_policy_values_are_refused_and_change_nothing(client, make, db):
    make.queue()
    lead = make.user("lead", queues=["claims"])
    for bad in (
        {"target_precision": 0.3},
        {"target_precision": 1.0},
        {"target_precision": "high"},
        {"target_precision": [0.9]},
        {"confidence": 0.2},
        {"confidence": 1},
        {"confidence": None},
        {"confidence": 1e308},
        {"target_precision": 0.95, "confidence": "0.9; DROP TABLE"},
    ):
        r = client.patch("/api/v1/queues/claims/policy", json=bad, headers=lead["headers"])
        assert r.status_code == 422, bad
        assert r.json["details"][0]["field"] in ("policy.target_precision", "policy.confidence")
    policy = client.get("/api/v1/queues/claims", headers=lead["headers"]).json["policy"]
    assert policy["target_precision"] is None and policy["confidence"] == 0.9
    assert db.count(TrainingRun) == 0


def test_the_gate_promotes_a_clearly_better_model_not_a_worse_one_and_policy_changes_retrain(
    client, make, engine, db, worker_process
):
    """v1 reads one weak field. With the same labels, a lead narrows the features to a field
    that says nothing (worse: kept) and then widens them to every field (clearly better:
    promoted), both retrained by the worker and graded on the same held-out labels; then a
    coverage change retrains the same model with new settings and is promoted too."""
    queue_id = make.queue(audit_rate=0, retrain_after=0, features=[{"name": "days_since_purchase"}])
    make.user("reviewer", queues=["claims"])
    lead = make.user("lead", queues=["claims"])
    _labelled(engine, 300)
    with session_scope(engine) as s:
        v1 = train_model_version(db=s, queue_id=queue_id).version
        assert v1.active and v1.card["served"]["refit"]
    _labelled(engine, 150, seed=2)
    worker_process()

    def change(policy, expected_versions):
        r = client.patch("/api/v1/queues/claims/policy", json=policy, headers=lead["headers"])
        assert r.status_code == 200 and r.json["retraining"]["job_id"]
        assert r.json["retraining"]["fields"] == list(policy)
        wait_for(
            lambda: (
                db.count(ModelVersion) == expected_versions
                and db.count(TrainingRun, TrainingRun.finished_at.is_not(None))
                == expected_versions - 1
            ),
            timeout=120,
            what=f"version {expected_versions}",
        )
        with session_scope(engine) as s:
            return s.scalar(select(ModelVersion).order_by(ModelVersion.id.desc()))

    worse = change({"features": [{"name": "currency"}]}, 2)
    assert not worse.active and worse.metrics["promoted"] is False
    assert worse.metrics["promotion_reason"].endswith("worse with confidence, kept as a candidate")
    assert worse.metrics["gate"]["high"] < 0

    better = change({"features": None}, 3)
    assert better.active and better.metrics["promoted"] is True
    assert better.metrics["promotion_reason"].endswith("better with confidence, promoted")
    assert better.metrics["gate"]["low"] > 0
    # The same held-out labels for both: same snapshot, same split, same count.
    assert better.snapshot == worse.snapshot
    assert better.metrics["compared_on"] == worse.metrics["compared_on"] == 90
    with session_scope(engine) as s:
        run = s.scalar(select(TrainingRun).order_by(TrainingRun.id.desc()))
        assert run.trigger == f"policy changed by {lead['name']}: features"

    # Same labels, new coverage: the same model (identical answers on the held-out labels,
    # read from what the refit active model's split model answered), new settings.
    same = change({"coverage": 0.9}, 4)
    assert same.active and same.metrics["gate"]["difference"] == 0
    assert same.metrics["promotion_reason"].endswith(
        "not worse with confidence and trained with the queue's new settings, promoted"
    )
    assert same.metrics["coverage_target"] == 0.9
    # A field the model is not trained with changes nothing about training.
    r = client.patch(
        "/api/v1/queues/claims/policy", json={"audit_rate": 0.1}, headers=lead["headers"]
    )
    assert r.status_code == 200 and r.json["retraining"] is None


def test_the_active_refit_model_is_graded_on_its_split_models_answers(make, engine, db):
    queue_id = make.queue(audit_rate=0, retrain_after=0)
    make.user("reviewer", queues=["claims"])
    _labelled(engine, 200)
    with session_scope(engine) as s:
        v1 = train_model_version(db=s, queue_id=queue_id).version
        active = active_for_comparison(s, queue_id)
        # Refit on every label: all 200 count as seen; 40 answers kept from before the refit.
        assert len(active.trained_on) == 200 and len(active.held_out) == 40
        assert active.n_labels == 200 and active.settings_hash == v1.settings_hash


def _labelled_digits(engine, n: int) -> None:
    """n handwritten digits labelled by a reviewer through claim/decide (true labels)."""
    from app.ingest.service import ingest_items, parse_rows
    from app.learning.feedback import make_training_example
    from app.models import Item, Outbox, User
    from app.review.service import claim_next, decide

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(2).permutation(len(y))[:n]
    truth = {f"d{i}": str(y[i]) for i in order}
    with session_scope(engine) as s:
        queue = s.scalar(select(Queue))
        user = s.scalar(select(User).where(User.role == "reviewer"))
        ingest_items(
            session=s,
            queue=queue,
            items=parse_rows(
                {"external_id": f"d{i}", "payload": {f"p{j}": float(v) for j, v in enumerate(x[i])}}
                for i in order
            ),
        )
        while (claim := claim_next(session=s, queue=queue, user=user)) is not None:
            label = truth[s.get(Item, claim.item_id).external_id]
            decide(session=s, token=claim.token, user=user, label=label)
        for oid in s.scalars(select(Outbox.id)):
            make_training_example(session=s, outbox_id=oid)


def test_the_card_shows_the_rule_its_trade_off_and_what_the_served_model_learned_from(
    client, make, engine
):
    from tests.learning.test_models_api import login

    queue_id = make.queue(
        name="digits",
        labels=[str(d) for d in range(10)],
        audit_rate=0,
        retrain_after=0,
        target_precision=0.95,
    )
    lead = make.user("lead", queues=["digits"])
    make.user("reviewer", queues=["digits"])
    _labelled_digits(engine, 900)
    with session_scope(engine) as s:
        v1 = train_model_version(db=s, queue_id=queue_id).version
        rule = v1.metrics["auto_accept"]
        queue = s.get(Queue, queue_id)
        queue.policy = {**queue.policy, "target_precision": 0.999}
        v2 = train_model_version(db=s, queue_id=queue_id).version
        names = v1.version, v2.version
    login(client, lead)
    card = client.get(f"/queues/digits/models/{names[0]}").data.decode()
    assert rule["threshold"] is not None and rule["expected_share"] > 0.5
    assert f"at least <strong>{rule['threshold']:.3f}</strong>" in card
    assert "Trade-off: target precision against work for people" in card
    assert card.count("<tr") >= len(rule["curve"]) and "Sent to people" in card
    assert "Trained on all 900 labels" in card and "from the newest 360 held out" in card
    assert "is assumed to be at least as accurate" in card
    unreachable = client.get(f"/queues/digits/models/{names[1]}").data.decode()
    assert "Nothing is auto-accepted." in unreachable
    assert "no threshold reaches 99.9% precision with 90% confidence" in unreachable
