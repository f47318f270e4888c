"""Labels out over the API: every final label with its provenance, streamed."""

from __future__ import annotations

from flask import Blueprint, Response, request, stream_with_context

from app.api.endpoint import endpoint
from app.api.schemas import LabelsQuery
from app.db import new_session
from app.errors import ValidationFailed
from app.exports.service import FORMATS, parse_since, stream_labels
from app.extensions import db_engine
from app.models import Queue, id_of

bp = Blueprint("labels", __name__)


@bp.get("/queues/<name>/labels")
@endpoint(tag="labels", permission="export", query=LabelsQuery)
def labels_view(queue: Queue):
    """Stream every final label with its provenance as JSONL, CSV or Parquet."""
    fmt = request.args.get("format", "jsonl")
    if fmt not in FORMATS:
        raise ValidationFailed(
            f"format must be one of {', '.join(FORMATS)}.",
            [{"field": "format", "message": "unknown format"}],
        )
    since = parse_since(request.args.get("since"))
    engine = db_engine()
    queue_id = id_of(queue)

    def body():
        # Its own session: the request's one is closed before streaming starts.
        with new_session(engine) as s:
            yield from stream_labels(session=s, queue_id=queue_id, fmt=fmt, since=since)

    filename = f"{queue.name}-labels.{fmt}"
    return Response(
        stream_with_context(body()),
        mimetype=FORMATS[fmt].split(";")[0],
        content_type=FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
