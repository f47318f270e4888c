"""Items over the API: push a batch (JSON or NDJSON), read one item."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.exc import OperationalError

from app.api.endpoint import endpoint
from app.api.schemas import IngestOut
from app.errors import TooLarge, UnsupportedMediaType
from app.extensions import db_session, write_session
from app.ingest.schemas import BatchIn
from app.ingest.service import ingest_items, parse_json_batch, parse_ndjson, score_items
from app.models import Queue, User
from app.review.service import get_item, item_json

bp = Blueprint("items", __name__)


@bp.post("/queues/<name>/items")
@endpoint(
    tag="items",
    permission="ingest",
    body=BatchIn,
    view_reads_body=True,
    ok={200: IngestOut},
    errors=(413, 415),
)
def ingest_view(queue: Queue):
    """Push a batch of items: `{"items": [...]}` as JSON, or one item per line as NDJSON."""
    mimetype = request.mimetype
    body = request.get_data()
    if mimetype == "application/json":
        items = parse_json_batch(body)
    elif mimetype in ("application/x-ndjson", "application/jsonl", "application/ndjson"):
        items = parse_ndjson(body)
    else:
        raise UnsupportedMediaType(
            'Send application/json ({"items": [...]}) or application/x-ndjson (one item a line).'
        )
    limit = current_app.config["LOUPE_SETTINGS"].max_batch_items
    if len(items) > limit:
        raise TooLarge(f"A batch holds at most {limit} items; this one has {len(items)}.")
    session = db_session()
    scores = score_items(session=session, queue=queue, items=items)
    for attempt in range(3):
        session = write_session()
        try:
            result = ingest_items(session=session, queue=queue, items=items, scores=scores)
            session.commit()
            return jsonify(result)
        except OperationalError as exc:
            # A deadlock with an overlapping batch: PostgreSQL rolled this one back whole.
            session.rollback()
            if getattr(exc.orig, "sqlstate", None) != "40P01" or attempt == 2:
                raise
    raise AssertionError("unreachable")


@bp.get("/queues/<name>/items/<path:external_id>")
@endpoint(tag="items")
def get_item_view(queue: Queue, user: User, external_id: str):
    """One item with its prediction, route, reviews and final label. Reviewing is blind:
    while the caller may still answer the item (a reviewer, or anyone holding its claim),
    other reviewers' answers are left out; a reviewer sees a gold item as any other
    (app.desk.gold.as_seen_by), leads see its status `gold`."""
    session = db_session()
    item = get_item(session=session, queue=queue, external_id=external_id)
    return jsonify(item_json(session=session, item=item, viewer=user))
