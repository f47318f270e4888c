"""Per-band audit rates: a lead audits the bands where the model is less sure more often;
the draw follows each band's rate, the frame records it, the estimate and the budget use it,
and a band that does not exist is refused."""

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from app.models import AuditFrame
from app.queues.bands import BANDS, band_of
from app.queues.service import Policy
from app.routing.decision import route_item
from tests.conftest import item

ITEMS = "/api/v1/queues/claims/items"
POLICY = "/api/v1/queues/claims/policy"


def _routed(policy: Policy, score: float, n: int = 4000) -> float:
    """The share of n would-be auto-accepts at this score that the draw sends to an audit."""
    candidates = [{"label": "fraud", "score": score}, {"label": "legit", "score": 1 - score}]
    audits = sum(
        route_item(
            policy=policy, candidates=candidates, queue_name="claims", external_id=f"i{k}"
        ).decision
        == "audit"
        for k in range(n)
    )
    return audits / n


def test_each_band_is_drawn_at_its_own_rate():
    policy = Policy(audit_rate=0.02, audit_rate_by_band={"0.90-0.95": 0.3}, min_margin=0)
    assert policy.audit_rate_for(0.93) == 0.3 and policy.audit_rate_for(0.99) == 0.02
    # 4,000 deterministic draws: within about 4 standard errors of each rate.
    assert _routed(policy, 0.93) == pytest.approx(0.3, abs=0.03)
    assert _routed(policy, 0.995) == pytest.approx(0.02, abs=0.01)


@pytest.mark.parametrize(
    "bad",
    [
        {"0.9-0.95": 0.2},  # not a band's name
        {"0.90-0.95": 1.5},
        {"0.90-0.95": -0.1},
        {"0.90-0.95": "lots"},
        {"<script>": 0.1},
        ["0.90-0.95"],
    ],
)
def test_unknown_bands_and_rates_outside_0_1_are_refused(bad):
    with pytest.raises(ValidationError):
        Policy(audit_rate_by_band=bad)


def test_every_score_has_a_band_a_policy_can_name():
    assert {band_of(s / 1000) for s in range(1001)} == set(BANDS)


def test_the_frame_keeps_each_bands_rate_and_the_page_counts_the_budget_by_band(client, make, db):
    make.queue(audit_rate=0.0, audit_rate_by_band={"0.90-0.95": 1.0}, min_margin=0)
    lead = make.user("lead", queues=["claims"])
    producer = make.user("scientist", queues=["claims"])
    r = client.post(
        ITEMS,
        json={
            "items": [item(f"low-{k}", "fraud", 0.92) for k in range(10)]
            + [item(f"high-{k}", "fraud", 0.99) for k in range(30)]
        },
        headers=producer["headers"],
    )
    assert r.status_code in (200, 201), r.json
    assert r.json["routed"]["audit"] == 10 and r.json["routed"]["auto_accepted"] == 30
    rates = dict(db.all(select(AuditFrame.band, AuditFrame.sample_rate).distinct()))
    assert rates == {"0.90-0.95": 1.0, "0.99-1.00": 0.0}

    budget = client.get("/api/v1/queues/claims/quality", headers=lead["headers"]).json[
        "auto_accept"
    ]["budget"]
    assert budget["audit_rate_by_band"] == {"0.90-0.95": 1.0}
    assert budget["eligible_per_week"] == 10.0 and budget["audits_per_week"] == 2.5
    assert "25.0% (rates per band)" in budget["sentence"]

    # The API refuses an unknown band and keeps the policy as it was.
    r = client.patch(
        POLICY, json={"audit_rate_by_band": {"0.91-0.95": 0.5}}, headers=lead["headers"]
    )
    assert r.status_code == 422 and "unknown band '0.91-0.95'" in r.get_data(as_text=True)
    policy = client.get("/api/v1/queues/claims", headers=lead["headers"]).json["policy"]
    assert policy["audit_rate_by_band"] == {"0.90-0.95": 1.0}
