"""Who may see a queue's dashboard (page and API), the window selector's answers, and the
SVG each chart kind draws."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from app.dashboard import charts
from tests.review.test_review_pages import login

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def team(make):
    make.queue("claims")
    make.queue("other")
    return {
        "reviewer": make.user("reviewer", queues=["claims"]),
        "lead": make.user("lead", queues=["claims"]),
        "scientist": make.user("scientist", queues=["claims"]),
        "outsider": make.user("lead", queues=["other"]),
        "admin": make.user("admin"),
    }


@pytest.mark.parametrize(
    "who,status",
    [("reviewer", 403), ("outsider", 404), ("lead", 200), ("scientist", 200), ("admin", 200)],
)
def test_page_and_api_answer_by_role_and_membership(app, team, who, status):
    client = app.test_client()
    login(client, team[who])
    page = client.get("/queues/claims/dashboard")
    assert page.status_code == status
    api = client.get("/api/v1/queues/claims/dashboard", headers=team[who]["headers"])
    assert api.status_code == status
    if status != 200:
        assert api.get_json()["error"] == ("forbidden" if status == 403 else "not_found")
        assert "<svg" not in page.text


def test_the_page_draws_every_panel_with_a_caption_and_the_fragment_swaps(client, team):
    login(client, team["lead"])
    page = client.get("/queues/claims/dashboard?window=24h")
    assert page.status_code == 200 and "HX-Request" in page.headers["Vary"]
    figures = re.findall(r'<figure class="panel[^"]*" id="panel-([a-z]+)"', page.text)
    assert figures == [
        "depth",
        "oldest",
        "throughput",
        "reviewers",
        "sla",
        "precision",
        "models",
        "calibration",
        "drift",
        "agreement",
        "gold",
    ]
    assert page.text.count("<figcaption>") == len(figures)
    assert page.text.count('role="img"') == len(figures)
    assert 'aria-current="true">24 hours' in page.text
    fragment = client.get("/queues/claims/dashboard?window=30d", headers={"HX-Request": "true"})
    assert "<h1" not in fragment.text
    assert 'id="dashboard"' in fragment.text and 'aria-current="true">30 days' in fragment.text
    assert client.get("/queues/claims/dashboard?window=1y").status_code == 422


def test_the_queue_pages_link_the_dashboard_for_leads_only(client, team, app):
    login(client, team["lead"])
    assert "/queues/claims/dashboard" in client.get("/queues").text
    assert "/queues/claims/dashboard" in client.get("/queues/claims/quality").text
    other = app.test_client()
    login(other, team["reviewer"])
    assert "/dashboard" not in other.get("/queues").text


def test_api_answers_the_figures_and_refuses_a_bad_window(client, team):
    h = team["scientist"]["headers"]
    r = client.get("/api/v1/queues/claims/dashboard?window=30d", headers=h)
    body = r.get_json()
    assert r.status_code == 200 and body["window"] == "30d" and body["queue"] == "claims"
    depth = next(p for p in body["panels"] if p["key"] == "depth")
    assert len(depth["data"]["x"]) == 30 and depth["caption"]
    bad = client.get("/api/v1/queues/claims/dashboard?window=%3Cscript%3E", headers=h)
    assert bad.status_code == 422 and bad.get_json()["details"][0]["field"] == "window"
    spec = client.get("/api/openapi.json").get_json()
    assert "/api/v1/queues/{name}/dashboard" in spec["paths"]


def _parse(svg) -> ET.Element:
    root = ET.fromstring(str(svg))
    assert root.get("viewBox", "").startswith("0 0 480 ") and root.get("width") is None
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text and root.find(f"{SVG}desc").text
    return root


def test_each_chart_kind_draws_well_formed_accessible_svg():
    lines = _parse(
        charts.lines(
            "a",
            "Depth <&>",
            {
                "x": ["01:00", "02:00", "03:00"],
                "series": [{"name": "waiting", "values": [1, None, 3]}],
                "band": {"lower": [0.5, None, 2], "upper": [1.5, None, 4]},
                "reference": 2,
                "reference_label": "target",
                "y_label": "items",
            },
        )
    )
    assert (
        len(lines.findall(f".//{SVG}circle")) == 2
        and len(lines.findall(f".//{SVG}rect[@class='band']")) == 2
    )
    assert lines.find(f"{SVG}title").text == "Depth <&>"
    cols = _parse(
        charts.columns(
            "b",
            "SLA",
            {
                "x": ["a", "b"],
                "series": [
                    {"name": "late", "values": [2, 0]},
                    {"name": "waiting", "values": [1, 3]},
                ],
            },
        )
    )
    heights = [float(r.get("height")) for r in cols.findall(f".//{SVG}rect[@class='column']")]
    assert len(heights) == 3 and heights[2] == pytest.approx(3 * heights[1], abs=0.3)
    bars = _parse(
        charts.bars(
            "c",
            "Drift",
            {
                "rows": [{"name": "amount", "value": 0.3}],
                "thresholds": [{"value": 0.1, "label": "x"}],
            },
        )
    )
    assert len(bars.findall(f".//{SVG}rect[@class='bar']")) == 1
    rel = _parse(
        charts.reliability(
            "d",
            "Calibration",
            {"bins": [{"lower": 0.9, "upper": 1.0, "n": 3, "mean_score": 0.95, "observed": 0.5}]},
        )
    )
    dot = rel.find(f".//{SVG}circle[@class='bin']")
    assert float(dot.get("cx")) > float(dot.get("cy"))  # right of centre, half way up
    iv = _parse(
        charts.intervals(
            "e",
            "Gold accuracy",
            {
                "rows": [
                    {"name": "ana", "estimate": 0.5, "lower": 0.25, "upper": 0.75, "n": 12},
                    {"name": "bo", "estimate": None, "n": 0},
                ]
            },
        )
    )
    whisker = iv.find(f".//{SVG}line[@class='whisker']")
    mid = float(iv.find(f".//{SVG}circle[@class='estimate']").get("cx"))
    assert float(whisker.get("x1")) + float(whisker.get("x2")) == pytest.approx(2 * mid, abs=0.2)
    edge = _parse(
        charts.intervals(
            "g",
            "Kappa",
            {"rows": [{"name": "ana & bo", "estimate": -0.2, "lower": -0.5, "upper": 0.1, "n": 9}]},
        )
    )
    assert float(edge.find(f".//{SVG}circle[@class='estimate']").get("cx")) >= 140  # inside
    assert "not measured yet" in str(
        charts.intervals("e", "t", {"rows": [{"name": "bo", "estimate": None}]})
    )
    _parse(charts.render({"key": "f", "title": "t", "chart": "lines", "data": {}, "empty": True}))
