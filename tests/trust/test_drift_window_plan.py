"""The drift guard's reads of a queue's newest items follow ix_item_queue_newest: they run on
every ingest batch, and at a million items a sort of the queue costs about a second."""

import pytest
from sqlalchemy import text

from app.learning.drift import newest_stmt, window_stmt
from tests.conftest import item


@pytest.mark.parametrize("stmt", [newest_stmt(1), window_stmt(1, 1000)], ids=["newest", "window"])
def test_the_newest_items_are_one_index_probe(client, make, engine, stmt):
    make.queue()
    producer = make.user("scientist", queues=["claims"])
    r = client.post(
        "/api/v1/queues/claims/items",
        json={"items": [item(f"i{n}") for n in range(40)]},
        headers=producer["headers"],
    )
    assert r.status_code in (200, 201), r.json
    sqlite = engine.dialect.name == "sqlite"
    sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.begin() as conn:
        if not sqlite:
            conn.execute(text("ANALYZE item"))
            # A 40-row table fits one page, where a sequential scan is cheapest; forbidding
            # it shows the plan the index makes possible at a million rows.
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            conn.execute(text("SET LOCAL enable_bitmapscan = off"))
        prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
        plan = "\n".join(
            str(row[-1] if sqlite else row[0]) for row in conn.execute(text(prefix + sql))
        )
    assert "ix_item_queue_newest" in plan, plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
