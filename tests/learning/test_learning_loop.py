"""Calibration, conformal candidate sets, routing by them, promotion, rules and re-scoring."""

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import select

from app.db import session_scope
from app.demo.claims import generate_claims
from app.ingest.service import ingest_items, parse_rows
from app.learning import artifacts
from app.learning.conformal import _Probabilities
from app.learning.features import choose_columns, table
from app.learning.fitting import fit
from app.learning.snapshot import (
    CONFORMAL,
    EVALUATION,
    LEFT_OUT,
    TRAIN,
    Row,
    Snapshot,
    hash_rows,
    split_roles,
    take_snapshot,
)
from app.learning.training import train_model_version
from app.models import Item, ModelVersion, Prediction, Queue, TrainingExample
from app.queues.service import Policy
from app.routing.decision import route_item
from app.routing.rules import rule_answer, rule_fallbacks
from tests.learning.test_training import _labelled

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _demo_snapshot(n, seed=7, source="human"):
    claims = generate_claims(n, seed=seed)
    rows = [
        Row(i + 1, c["payload"], c["label"], source, T0 + dt.timedelta(minutes=i))
        for i, c in enumerate(claims)
    ]
    return Snapshot(rows=rows, content_hash=hash_rows(rows))


def test_candidate_sets_cover_the_target_on_held_out_demo_data():
    snap = _demo_snapshot(10_000)
    fitted = fit(snap, queue=Queue(id=1, name="claims", policy={}), seed=0)
    m = fitted.metrics
    assert m["n_eval"] == 2000 and m["n_conformal"] == 2000
    # Measured on the 2,000 newest labels, which neither trained nor conformalised the model.
    assert abs(m["coverage"] - 0.95) <= 0.02, m["coverage"]
    # As short as that allows: far fewer than all three answers on average.
    assert m["mean_set_size"] < 2.0 and m["single_answer_share"] > 0.2
    assert 0 <= m["calibration_error"] < 0.05
    assert set(m["per_class"]) == {"legit", "fraud", "duplicate"}
    assert sum(map(sum, m["confusion"]["matrix"])) == 2000


def test_stored_thresholds_give_exactly_mapies_sets():
    from dataclasses import replace

    from mapie.classification import SplitConformalClassifier

    from app.learning.conformal import PER_ANSWER, Conformal

    snap = _demo_snapshot(2000, seed=3)
    fitted = fit(snap, queue=Queue(id=1, name="claims", policy={"coverage": 0.9}), seed=0)
    conformal = Conformal.from_dict(fitted.card["conformal"])
    assert conformal.mode == PER_ANSWER  # 400 held-out labels, each answer has enough
    roles = np.asarray(fitted.roles)
    x = table([r.payload for r in snap.rows], fitted.card["columns"])
    y = np.asarray([r.target for r in snap.rows], dtype=object)
    classes = [str(c) for c in fitted.split_model.classes_]
    cal_proba, cal_y = (
        fitted.split_model.predict_proba(x[roles == CONFORMAL]),
        y[roles == CONFORMAL],
    )
    proba = fitted.split_model.predict_proba(x[roles == EVALUATION])

    def mapie_sets(rows):
        mapie = SplitConformalClassifier(
            estimator=_Probabilities(classes), confidence_level=0.9, prefit=True
        ).conformalize(cal_proba[rows], cal_y[rows])
        return mapie.predict_set(proba)[1][:, :, 0]

    # Per answer (Mondrian): answer c's column is MAPIE's set conformalised on c's labels only.
    ours = conformal.sets(proba, classes)
    for j, c in enumerate(classes):
        assert (ours[:, j] == mapie_sets(cal_y == c)[:, j]).all(), c
    # Over all answers: MAPIE's marginal set.
    overall = replace(conformal, per_answer={})
    assert (overall.sets(proba, classes) == mapie_sets(slice(None))).all()


def test_same_snapshot_and_seed_reproduce_metrics_threshold_and_model():
    snap = _demo_snapshot(1500, seed=5)
    queue = Queue(id=1, name="claims", policy={})
    a, b = fit(snap, queue=queue, seed=11), fit(snap, queue=queue, seed=11)
    assert a.metrics == b.metrics
    assert a.card["conformal"] == b.card["conformal"]
    x = table([r.payload for r in snap.rows[:50]], a.card["columns"])
    assert np.array_equal(a.model.predict_proba(x), b.model.predict_proba(x))


def test_split_is_time_ordered_and_auto_labels_never_grade():
    rows = []
    for i in range(100):
        source = "auto" if i % 4 == 0 else "human"
        rows.append(Row(i, {}, "a", source, T0 + dt.timedelta(minutes=i)))
    roles = split_roles(rows)
    human = [i for i, r in enumerate(rows) if r.source == "human"]
    assert all(roles[i] in (TRAIN, LEFT_OUT) for i, r in enumerate(rows) if r.source == "auto")
    held = [i for i in human if roles[i] in (CONFORMAL, EVALUATION)]
    assert len([i for i in held if roles[i] == EVALUATION]) == 15  # 20% of 75
    # Everything held out is newer than everything trained on.
    assert max(i for i, r in enumerate(roles) if r == TRAIN) < min(held)
    # Auto labels newer than the held-out part are left out rather than graded or trained.
    assert all(roles[i] == LEFT_OUT for i in range(min(held), 100) if rows[i].source == "auto")


def test_columns_are_guessed_or_taken_from_the_queue():
    payloads = [
        {
            "amount": i * 1.5,
            "country": ["DE", "FR"][i % 2],
            "note": f"the parcel {i} never arrived at home",
            "purchase_date": "2026-01-02",
            "order_id": f"o-{i}",
            "meta": {"score": i, "tags": ["x"]},
        }
        for i in range(60)
    ]
    cols = {c["name"]: c["kind"] for c in choose_columns(payloads, None)}
    # Dates and identifiers are left out; nested numbers are kept.
    assert cols == {
        "amount": "numeric",
        "country": "categorical",
        "note": "text",
        "meta.score": "numeric",
    }
    named = choose_columns(
        payloads, [{"name": "country"}, {"name": "amount", "kind": "categorical"}]
    )
    assert named == [
        {"name": "country", "kind": "categorical"},
        {"name": "amount", "kind": "categorical"},
    ]
    x = table([{"amount": "12.5"}, {"amount": "n/a"}, {}], [{"name": "amount", "kind": "numeric"}])
    assert x[0, 0] == 12.5 and np.isnan(x[1, 0]) and np.isnan(x[2, 0])


def test_routing_by_conformal_set():
    policy = Policy(auto_accept_threshold=0.8, audit_rate=0)
    one = [{"label": "legit", "score": 0.93}]

    def route(cands, size):
        return route_item(
            policy=policy,
            candidates=cands,
            queue_name="q",
            external_id="x",
            detail={"coverage": 0.95, "set_size": size},
        )

    assert route(one, 1).decision == "auto_accept"
    assert "only answer in the 95% candidate set" in route(one, 1).reason
    two = [{"label": "legit", "score": 0.93}, {"label": "fraud", "score": 0.05}]
    assert route(two, 2).decision == "review" and "holds 2 answers" in route(two, 2).reason
    assert route([{"label": "legit", "score": 0.6}], 1).decision == "review"
    assert route(one, 0).decision == "review"


@pytest.mark.parametrize(
    ("rule", "payload", "hit"),
    [
        ({"op": ">", "value": 1000}, {"amount": 1500}, True),
        ({"op": ">", "value": 1000}, {"amount": "2000"}, True),
        ({"op": ">", "value": 1000}, {"amount": "<script>"}, False),
        ({"op": "==", "value": "DE"}, {"amount": "DE"}, True),
        ({"op": "in", "value": ["FR", "DE"]}, {"amount": "DE"}, True),
        ({"op": "contains", "value": "STOLEN"}, {"amount": "card stolen"}, True),
        ({"op": "absent"}, {}, True),
        ({"op": "present"}, {}, False),
        ({"op": "<=", "value": 5}, {"amount": True}, False),
    ],
)
def test_rules_match_what_they_say(rule, payload, hit):
    rules = [{"name": "r", "field": "amount", "label": "fraud", **rule}]
    assert (rule_answer(rules, payload) is not None) == hit


def test_queue_rules_are_validated(client, make):
    admin = make.user("admin")

    def create(rules, name="q1"):
        return client.post(
            "/api/v1/queues",
            json={"name": name, "labels": ["a", "b"], "policy": {"rules": rules}},
            headers=admin["headers"],
        )

    ok = {"name": "big", "field": "amount", "op": ">", "value": 10, "label": "a"}
    bad_cases = [
        {**ok, "op": "LIKE"},
        {**ok, "value": "ten"},
        {**ok, "label": "c"},
        {**ok, "op": "in", "value": "a"},
        {"name": "x"},
    ]
    for n, rule in enumerate(bad_cases):
        r = create([rule], name=f"bad{n}")
        assert r.status_code == 422, (rule, r.json)
        assert r.json["details"], r.json
    assert client.get("/api/v1/queues", headers=admin["headers"]).json["queues"] == []
    assert create([ok]).status_code == 201
    bad_policy = client.post(
        "/api/v1/queues",
        json={"name": "q2", "policy": {"coverage": 1.5, "metric": "auc", "train_on_auto": "x"}},
        headers=admin["headers"],
    )
    assert bad_policy.status_code == 422
    assert {d["field"] for d in bad_policy.json["details"]} >= {
        "policy.coverage",
        "policy.metric",
        "policy.train_on_auto",
    }


def test_without_a_model_items_get_the_rule_answer_and_go_to_review(make, engine, db):
    make.queue(
        audit_rate=0,
        rules=[
            {
                "name": "large amount",
                "field": "amount",
                "op": ">=",
                "value": 1000,
                "label": "fraud",
            },
            {
                "name": "said twice",
                "field": "note",
                "op": "contains",
                "value": "twice",
                "label": "duplicate",
            },
        ],
    )
    with session_scope(engine) as s:
        queue = s.scalar(select(Queue))
        out = ingest_items(
            session=s,
            queue=queue,
            items=parse_rows(
                [
                    {"external_id": "big", "payload": {"amount": 5000, "note": "charged twice"}},
                    {"external_id": "dup", "payload": {"amount": 10, "note": "charged twice"}},
                    {"external_id": "none", "payload": {"amount": 10, "note": "<b>hi</b>"}},
                ]
            ),
        )
    assert out["created"] == 3 and out["routed"]["review"] == 3
    preds = {
        ext: (p.source, p.model_version, p.candidates, p.detail)
        for ext, p in db.all(
            select(Item.external_id, Prediction).join(Prediction, Prediction.item_id == Item.id)
        )
    }
    assert preds["big"][0:3] == ("rule", "rules", [{"label": "fraud", "score": None}])
    assert preds["big"][3] == {"fallback": "no trained model yet", "rule": "large amount"}
    assert preds["dup"][2][0]["label"] == "duplicate"
    reasons = dict(db.all(select(Item.external_id, Item.route_reason)))
    assert "business rule 'large amount'" in reasons["big"]
    assert reasons["none"].startswith("no trained model yet, and no business rule applies")


def test_past_the_time_budget_or_with_a_broken_model_the_rules_answer(make, engine, db):
    from app.learning import scoring

    make.queue(
        audit_rate=0,
        retrain_after=0,
        rules=[{"name": "any", "field": "amount", "op": "present", "label": "legit"}],
    )
    make.user("reviewer", queues=["claims"])
    queue_id = _labelled(engine, 60)
    with session_scope(engine) as s:
        train_model_version(db=s, queue_id=queue_id)
    payloads = [c["payload"] for c in generate_claims(600, seed=9)]
    with session_scope(engine) as s:
        queue = s.get(Queue, queue_id)
        in_time = scoring.score_payloads(
            session=s, queue=queue, payloads=payloads, budget_seconds=60
        )
        assert in_time.model_answered == 600 and in_time.fallback_reason is None
        late = scoring.score_payloads(session=s, queue=queue, payloads=payloads, budget_seconds=0)
        # The budget counts from the start (loading the model too): nothing was in time.
        assert late.model_answered == 0
        assert "did not answer within 0 s" in late.fallback_reason
        assert late.rows == []
        # Routing gives every unanswered item the rule's answer, with the reason.
        fallbacks = rule_fallbacks(
            queue.policy["rules"], payloads[late.model_answered :], late.fallback_reason
        )
        assert len(fallbacks) == 600
        assert fallbacks[-1] == (
            [{"label": "legit", "score": None}],
            "rules",
            {"fallback": late.fallback_reason, "rule": "any"},
            "rule",
        )
        # A model file that fails its checksum is never loaded: every item falls back.
        version = s.scalar(select(ModelVersion).where(ModelVersion.active))
        version.artifact_sha256 = "0" * 64
        s.flush()
        scoring._cache.clear()
        broken = scoring.score_payloads(session=s, queue=queue, payloads=payloads[:5])
        assert broken.model_answered == 0
        assert broken.fallback_reason == (
            "the active model cannot be loaded (model file does not match its checksum)"
        )
        s.rollback()


def test_auto_labels_train_only_when_the_queue_says_so(make, engine, db):
    from app.learning.feedback import materialize_auto_examples
    from app.learning.snapshot import CALIBRATION

    queue_id = make.queue(audit_rate=0, retrain_after=0, auto_accept_threshold=0.5, min_margin=0)
    make.user("reviewer", queues=["claims"])
    with session_scope(engine) as s:  # the model's own answers, older than the human ones
        ingest_items(
            session=s,
            queue=s.get(Queue, queue_id),
            items=parse_rows(
                {
                    "external_id": f"auto-{i}",
                    "payload": c["payload"],
                    "prediction": {"candidates": [{"label": c["label"], "score": 0.99}]},
                }
                for i, c in enumerate(generate_claims(30, seed=4))
            ),
        )
    _labelled(engine, 200)
    with session_scope(engine) as s:
        queue = s.get(Queue, queue_id)
        without = take_snapshot(session=s, queue_id=queue_id)
        assert {r.source for r in without.rows} == {"human"}
        assert materialize_auto_examples(session=s, queue_id=queue_id) == 30
        assert materialize_auto_examples(session=s, queue_id=queue_id) == 0  # once per label
        with_auto = take_snapshot(session=s, queue_id=queue_id, include_auto=True)
        assert len(with_auto.rows) == 230 and with_auto.content_hash != without.content_hash
        queue.policy = {**queue.policy, "train_on_auto": True}
        fitted = fit(with_auto, queue=queue, seed=0)
        parts = list(zip(with_auto.rows, fitted.roles, strict=True))
        assert {r.source for r, role in parts if role == TRAIN} == {"human", "auto"}
        # Auto labels train; only people's labels calibrate, set the sets and grade.
        held = [r.source for r, role in parts if role in (CALIBRATION, CONFORMAL, EVALUATION)]
        assert set(held) == {"human"}
        assert fitted.card["data"]["split"]["calibration"] == 20
        assert fitted.card["calibration"]["on"] == "20 held-out human labels"
        assert fitted.card["data"]["sources"] == {"human": 200, "auto": 30}
        x = table([r.payload for r in with_auto.rows[:5]], fitted.card["columns"])
        again = artifacts.load(*fitted.artifact)  # a FrozenEstimator inside: still loadable
        assert np.array_equal(again.predict_proba(x), fitted.model.predict_proba(x))
    assert db.count(TrainingExample, TrainingExample.source == "auto") == 30


def test_a_worse_model_is_kept_as_a_candidate(make, engine, db):
    make.queue(audit_rate=0, retrain_after=0)
    make.user("reviewer", queues=["claims"])
    queue_id = _labelled(engine, 300)
    with session_scope(engine) as s:
        v1 = train_model_version(db=s, queue_id=queue_id).version
    _labelled(engine, 100, seed=2)
    with session_scope(engine) as s:
        queue = s.get(Queue, queue_id)
        # A narrower feature choice: the new version only sees the currency, always EUR.
        queue.policy = {**queue.policy, "features": [{"name": "currency"}]}
        v2 = train_model_version(db=s, queue_id=queue.id).version
        assert not v2.active and v2.metrics["promoted"] is False
        assert v2.metrics["promotion_reason"].endswith("worse with confidence, kept as a candidate")
        # The paired interval of the difference lies below zero.
        assert v2.metrics["gate"]["high"] < 0 and v2.metrics["gate"]["n"] >= 10
        assert v2.metrics["active_version"] == v1.version
        assert v2.metrics["new_macro_f1_on_same_rows"] < v2.metrics["active_macro_f1"]
    assert db.scalar(select(ModelVersion.version).where(ModelVersion.active)) == v1.version


def test_stored_models_load_without_unpickling_and_refuse_foreign_types():
    snap = _demo_snapshot(300, seed=2)
    fitted = fit(snap, queue=Queue(id=1, name="claims", policy={}), seed=0)
    data, sha = artifacts.save(fitted.model)
    loaded = artifacts.load(data, sha)
    x = table([r.payload for r in snap.rows[:5]], fitted.card["columns"])
    assert np.array_equal(loaded.predict_proba(x), fitted.model.predict_proba(x))
    from skops.io import dumps

    foreign = dumps({"model": fitted.model, "extra": dt.timedelta(days=1)})
    with pytest.raises(artifacts.ArtifactError, match="not allowed"):
        artifacts.load(foreign, __import__("hashlib").sha256(foreign).hexdigest())


def test_evidence_names_payload_fields_of_a_calibrated_model():
    from app.learning.conformal import Conformal
    from app.learning.explain import contributions
    from app.learning.scoring import LoadedModel

    snap = _demo_snapshot(1500, seed=6)
    fitted = fit(snap, queue=Queue(id=1, name="claims", policy={}), seed=0)
    loaded = LoadedModel(
        1,
        "v",
        fitted.model,
        fitted.card["columns"],
        Conformal.from_dict(fitted.card["conformal"]),
    )
    payload = snap.rows[-1].payload
    top = loaded.classes[int(loaded.predict_proba([payload])[0].argmax())]
    ev = contributions(loaded, payload, top)
    assert ev["towards"] and all(c.weight > 0 for c in ev["towards"])
    fields = {c.field for c in ev["towards"] + ev["against"]}
    assert fields <= set(payload) and fields
    for c in ev["towards"] + ev["against"]:
        if c.kind == "category":
            assert payload[c.field] == c.value or c.value == "other"
        if c.kind == "word":
            assert c.value in payload[c.field].lower()


def test_a_person_changing_the_active_model_during_training_has_the_last_word(make, engine, db):
    from app.learning.registry import active_for_comparison, promote, rollback, store
    from app.models import User

    queue_id = make.queue(audit_rate=0, retrain_after=0)
    make.user("reviewer", queues=["claims"])
    lead = make.user("lead", queues=["claims"])
    _labelled(engine, 200)
    with session_scope(engine) as s:
        v1 = train_model_version(db=s, queue_id=queue_id).version.version
    _labelled(engine, 100, seed=2)
    with session_scope(engine) as s:
        queue = s.get(Queue, queue_id)
        queue.policy = {**queue.policy, "features": [{"name": "currency"}]}
        v2 = train_model_version(db=s, queue_id=queue.id).version.version  # a candidate
        queue.policy = {**queue.policy, "features": None}
    _labelled(engine, 60, seed=3)
    with session_scope(engine) as s:
        queue = s.get(Queue, queue_id)
        snap = take_snapshot(session=s, queue_id=queue_id)
        fitted = fit(snap, queue=queue, seed=0, active=active_for_comparison(s, queue_id))
    # Graded against v1 and better, say; meanwhile a lead makes v2 active.
    fitted.metrics["promoted"] = True
    with session_scope(engine) as s:
        user = s.scalar(select(User).where(User.name == lead["name"]))
        promote(session=s, queue=s.get(Queue, queue_id), version=v2, user=user)
    with session_scope(engine) as s:
        v3 = store(session=s, queue=s.get(Queue, queue_id), fitted=fitted)
        assert not v3.active
        assert v3.metrics["promotion_reason"].startswith("the active model changed")
    assert db.scalar(select(ModelVersion.version).where(ModelVersion.active)) == v2
    by = dict(db.all(select(ModelVersion.version, ModelVersion.activated_by)))
    assert by == {v1: "training run", v2: f"promoted by {lead['name']}", v3.version: None}
    with session_scope(engine) as s:
        user = s.scalar(select(User).where(User.name == lead["name"]))
        assert rollback(session=s, queue=s.get(Queue, queue_id), user=user).version == v1


def test_a_broken_active_model_does_not_block_a_new_one(make, engine, db):
    queue_id = make.queue(audit_rate=0, retrain_after=0)
    make.user("reviewer", queues=["claims"])
    _labelled(engine, 100)
    with session_scope(engine) as s:
        train_model_version(db=s, queue_id=queue_id)
        v1 = s.scalar(select(ModelVersion))
        v1.artifact = v1.artifact[:-10] + b"0123456789"  # corrupt, checksum kept
    _labelled(engine, 30, seed=2)
    from app.learning import scoring

    scoring._cache.clear()
    with session_scope(engine) as s:
        v2 = train_model_version(db=s, queue_id=queue_id).version
        assert v2.active
        assert v2.metrics["promotion_reason"].startswith("the active model cannot be loaded")


def test_new_settings_on_the_same_labels_make_a_new_version(make, engine, db):
    from app.models import TrainingSnapshot

    queue_id = make.queue(audit_rate=0, retrain_after=0)
    make.user("reviewer", queues=["claims"])
    _labelled(engine, 150)
    with session_scope(engine) as s:
        v1 = train_model_version(db=s, queue_id=queue_id).version
        assert train_model_version(db=s, queue_id=queue_id).version is None
        queue = s.get(Queue, queue_id)
        queue.policy = {**queue.policy, "coverage": 0.8}
        v2 = train_model_version(db=s, queue_id=queue.id).version
        assert v2 is not None and v2.snapshot == v1.snapshot
        assert v2.card["settings"]["coverage"] == 0.8 and v2.metrics["coverage_target"] == 0.8
        assert v2.snapshot_id == v1.snapshot_id  # the rows are stored once
    assert db.count(TrainingSnapshot) == 1
