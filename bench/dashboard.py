"""Server-side time of a queue's dashboard (every panel, each window) at 100,000 items.

    .venv/bin/python bench/dashboard.py                       # SQLite, 100,000 items
    .venv/bin/python bench/dashboard.py --backend postgresql  # BENCH_PG_URL (schema dropped!)

The queue holds `--items` items over the last 30 days: 60% decided by one of 8 reviewers
(a review and a human label), 25% auto-accepted (an audit frame row, 5% of them audited), the
rest waiting. Rows go in with bulk Core inserts; then `dashboard()` runs for 24h, 7d and 30d,
three times each, and the best time per window and the slowest panels are printed. The drift
panel has no model here (its own cost is measured in bench/trust.py).
"""

# ruff: noqa: T201  (a command-line report: printing is its job)
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, text  # noqa: E402

from app.auth.service import create_user  # noqa: E402
from app.dashboard.panels import PANELS  # noqa: E402
from app.dashboard.timeline import WINDOWS  # noqa: E402
from app.db import get_engine, session_scope, upgrade_database  # noqa: E402
from app.models import (  # noqa: E402
    AuditFrame,
    Claim,
    Item,
    Label,
    Review,
    table_of,
    utcnow,
)
from app.queues.service import create_queue  # noqa: E402

PG = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/loupe_bench")


def build(engine, n: int) -> int:
    rng = random.Random(5)
    now = utcnow()
    with session_scope(engine) as s:
        queue = create_queue(session=s, data={"name": "bench", "labels": ["fraud", "legit"]})
        users = [
            create_user(session=s, name=f"r{i}", role="reviewer", password=None).id
            for i in range(8)
        ]
        qid = queue.id
    items, labels, claims, reviews, frames = [], [], [], [], []
    for i in range(1, n + 1):
        created = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
        r = rng.random()
        status = "done" if r < 0.6 else "auto_accepted" if r < 0.85 else "pending"
        items.append(
            {
                "id": i,
                "queue_id": qid,
                "external_id": f"b{i}",
                "payload": {},
                "status": status,
                "priority": 0,
                "created_at": created,
                "uncertainty_rank": 0,
            }
        )
        if status == "pending":
            continue
        score = rng.uniform(0.4, 1.0)
        answer = "fraud" if rng.random() < 0.5 else "legit"
        if status == "done":
            decided = min(created + timedelta(hours=rng.expovariate(1 / 4)), now)
            user = rng.choice(users)
            value = answer if rng.random() < score else ("legit" if answer == "fraud" else "fraud")
            labels.append(
                {
                    "id": i,
                    "item_id": i,
                    "queue_id": qid,
                    "value": value,
                    "source": "human",
                    "reviewers": [user],
                    "decided_at": decided,
                    "model_label": answer,
                    "model_score": score,
                }
            )
            claims.append(
                {
                    "id": i,
                    "token": f"t{i}",
                    "item_id": i,
                    "user_id": user,
                    "state": "decided",
                    "created_at": decided,
                    "expires_at": decided,
                }
            )
            reviews.append(
                {
                    "id": i,
                    "item_id": i,
                    "claim_id": i,
                    "user_id": user,
                    "label": value,
                    "created_at": decided,
                }
            )
        else:
            labels.append(
                {
                    "id": i,
                    "item_id": i,
                    "queue_id": qid,
                    "value": answer,
                    "source": "auto",
                    "reviewers": [],
                    "decided_at": created,
                    "model_label": answer,
                    "model_score": score,
                }
            )
            frames.append(
                {
                    "queue_id": qid,
                    "item_id": i,
                    "model_version": "m1",
                    "answer": answer,
                    "score": score,
                    "band": "0.90-0.95",
                    "sample_rate": 0.05,
                    "to_person": rng.random() < 0.05,
                    "created_at": created,
                }
            )
    with session_scope(engine) as s:
        for model, rows in (
            (Item, items),
            (Label, labels),
            (Claim, claims),
            (Review, reviews),
            (AuditFrame, frames),
        ):
            for k in range(0, len(rows), 10_000):
                s.execute(insert(table_of(model)), rows[k : k + 10_000])
        if engine.dialect.name == "postgresql":
            s.execute(text("ANALYZE"))
    return qid


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--items", type=int, default=100_000)
    args = ap.parse_args()
    if args.backend == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp(prefix='loupe-bench-')}/bench.db"
    else:
        url = PG
    engine = get_engine(url)
    if args.backend == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade_database(url)
    t0 = time.perf_counter()
    qid = build(engine, args.items)
    print(f"{args.backend}: {args.items:,} items built in {time.perf_counter() - t0:.1f} s")
    from app import create_app
    from app.models import Queue
    from app.settings import Settings

    os.environ["DATABASE_URL"] = url
    app = create_app(Settings())
    with app.app_context(), session_scope(engine) as s:
        queue = s.get_one(Queue, qid)
        for key, window in WINDOWS.items():
            best: dict[str, float] = {}
            for _ in range(3):
                now = utcnow()  # one `now` for every panel, as dashboard() does
                for spec in PANELS:
                    t = time.perf_counter()
                    spec.compute(session=s, queue=queue, window=window, now=now)
                    ms = (time.perf_counter() - t) * 1000
                    best[spec.key] = min(best.get(spec.key, ms), ms)
            slow = sorted(best.items(), key=lambda kv: -kv[1])[:3]
            print(
                f"  window {key}: every panel {sum(best.values()):.0f} ms; slowest "
                + ", ".join(f"{k} {v:.0f} ms" for k, v in slow)
            )
    if args.backend == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))


if __name__ == "__main__":
    main()
