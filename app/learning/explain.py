"""Evidence for a prediction: which feature values pushed towards or against the top answer,
and which labelled items look most like it, both in the model's own feature space."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sqlalchemy import select
from sqlmodel import col

from app.learning.pipeline import base_pipeline
from app.models import Item, TrainingExample


@dataclass(frozen=True)
class Contribution:
    field: str  # the payload field it comes from
    kind: str  # "number", "category" or "word"
    value: object  # the number, the category or the word
    weight: float  # > 0 pushes towards the top answer


def _feature_names(ct, columns: list[dict]) -> list[tuple[str, str, object]]:
    """(field, kind, value) for every output column of the fitted ColumnTransformer; for
    numbers the value is filled in from the payload at explanation time."""
    names: list = []
    for name, part, idx in ct.transformers_:
        if name == "remainder" or part == "drop":
            continue
        if name == "numeric":
            names += [(columns[i]["name"], "number", None) for i in idx]
        elif name == "categorical":
            fields = [columns[i]["name"] for i in idx]
            # Placeholder input names make the encoder's output names unambiguous to parse;
            # rare values share one "infrequent" column per field.
            for feature in part.get_feature_names_out([f"\x00{j}" for j in range(len(fields))]):
                j, value = feature[1:].split("_", 1)
                value = "other" if value == "infrequent_sklearn" else value
                names.append((fields[int(j)], "category", value))
        else:
            field = columns[idx]["name"]
            names += [(field, "word", w) for w in part.get_feature_names_out()]
    return names


_space_cache: dict[int, tuple] = {}


def model_space(loaded):
    """(transform(payloads) -> sparse rows, [(field, kind, value)], linear model) for a
    loaded model, or None when it is not a linear pipeline Loupe can explain."""
    hit = _space_cache.get(id(loaded.model))
    if hit is not None and hit[0] is loaded.model:
        return hit[1]
    pipe = base_pipeline(loaded.model)
    steps = getattr(pipe, "named_steps", {})
    model = steps.get("model")
    if model is None or not hasattr(model, "coef_"):
        return None
    ct = steps["features"]

    def transform(payloads):
        return sparse.csr_matrix(ct.transform(loaded.inputs(payloads)))

    space = (transform, _feature_names(ct, loaded.columns), model)
    if len(_space_cache) > 8:
        _space_cache.clear()
    _space_cache[id(loaded.model)] = (loaded.model, space)
    return space


def contributions(loaded, payload: dict, label: str, limit: int = 4) -> dict[str, list]:
    """The strongest features for and against `label`, or empty lists for other models.

    Exact for the linear model under the calibration: coefficient × transformed value, in
    the model's log-odds, before the calibration's monotone rescaling.
    """
    space = model_space(loaded) if loaded is not None else None
    if space is None:
        return {"towards": [], "against": []}
    transform, names, model = space
    # The outer model's answers: a calibrated model fits its inner pipeline on their indices.
    classes = loaded.classes
    if label not in classes:
        return {"towards": [], "against": []}
    x = transform([payload])
    coef = model.coef_
    if coef.shape[0] == 1:  # binary: one row, positive means classes_[1]
        row = coef[0] if classes.index(label) == 1 else -coef[0]
    else:
        row = coef[classes.index(label)]
    idx = x.indices
    weights = np.asarray(x.data) * row[idx]
    found = []
    for i, w in zip(idx, weights, strict=True):
        if abs(w) < 1e-6 or i >= len(names):
            continue
        field, kind, value = names[i]
        if kind == "number":
            value = payload.get(field) if "." not in field else field
        found.append(Contribution(field, kind, value, float(w)))
    towards = sorted((c for c in found if c.weight > 0), key=lambda c: -c.weight)[:limit]
    against = sorted((c for c in found if c.weight < 0), key=lambda c: c.weight)[:limit]
    return {"towards": towards, "against": against}


_NEIGHBOURS = 2000
_similar_cache: dict[tuple[int, int], tuple] = {}


def similar_items(
    *,
    session,
    queue_id: int,
    version_id: int,
    pipeline,
    payload: dict,
    k: int = 3,
    exclude_item_id: int | None = None,
) -> list[dict]:
    """The k most similar already-labelled items (cosine similarity in the model's own
    feature space), among the queue's latest training examples; [] for other models."""
    space = model_space(pipeline) if pipeline is not None else None
    if space is None:
        return []
    transform = space[0]
    key = (queue_id, version_id)
    cached = _similar_cache.get(key)
    if cached is None:
        rows = session.execute(
            select(
                col(TrainingExample.item_id),
                col(Item.external_id),
                col(TrainingExample.target),
                col(TrainingExample.features),
            )
            .join(Item, col(Item.id) == col(TrainingExample.item_id))
            .where(col(TrainingExample.queue_id) == queue_id)
            .order_by(col(TrainingExample.id).desc())
            .limit(_NEIGHBOURS)
        ).all()
        if not rows:
            return []
        matrix = transform([r.features for r in rows])
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel()) + 1e-12
        cached = (rows, matrix, norms)
        _similar_cache.clear()  # one queue/version at a time is plenty for a page
        _similar_cache[key] = cached
    rows, matrix, norms = cached
    x = transform([payload])
    xn = float(np.sqrt(x.multiply(x).sum())) + 1e-12
    sims = np.asarray((matrix @ x.T).todense()).ravel() / (norms * xn)
    out = []
    for i in np.argsort(-sims):
        if rows[i].item_id == exclude_item_id:
            continue
        out.append(
            {
                "external_id": rows[i].external_id,
                "label": rows[i].target,
                "similarity": round(float(sims[i]), 2),
            }
        )
        if len(out) == k:
            break
    return out
