"""Health, readiness, metrics and the OpenAPI document."""

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import item


def test_health_and_readiness(app, client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json["status"] == "ready"
    app.extensions["loupe.redis"] = Redis(
        port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    r = client.get("/readyz")
    assert r.status_code == 503 and "redis" in r.json["message"]


def test_metrics_show_queue_depth(client, make):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    client.post(
        "/api/v1/queues/claims/items",
        headers=producer["headers"],
        json={"items": [item("m-1", "fraud", 0.5), item("m-2", "fraud", 0.99)]},
    )
    text = client.get("/metrics").data.decode()
    assert 'loupe_items{queue="claims",status="pending"} 1.0' in text
    assert 'loupe_items{queue="claims",status="auto_accepted"} 1.0' in text


def test_openapi_lists_the_contract(client):
    spec = client.get("/api/openapi.json").json
    assert spec["openapi"].startswith("3.")
    for path in [
        "/api/v1/queues",
        "/api/v1/queues/{name}/items",
        "/api/v1/queues/{name}/claims",
        "/api/v1/claims/{token}/decision",
        "/api/v1/queues/{name}/labels",
        "/api/v1/queues/{name}/models/retrain",
    ]:
        assert path in spec["paths"], path
    assert "BatchIn" in str(spec["paths"]["/api/v1/queues/{name}/items"]["post"]["requestBody"])


def test_unknown_api_routes_answer_json(client):
    r = client.get("/api/v1/nope")
    assert r.status_code == 404 and r.json["error"] == "not_found"
    r = client.put("/api/v1/queues")
    assert r.status_code == 405 and set(r.json) == {"error", "message", "details"}
