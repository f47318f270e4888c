"""Evidence for a prediction: which feature values pushed towards or against the top answer.

For the default pipeline (DictVectorizer → MaxAbsScaler → LogisticRegression) the
contributions are exact: coefficient × scaled value, per feature, for the top class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.learning.features import features_of


@dataclass(frozen=True)
class Contribution:
    field: str  # the payload field it comes from
    feature: str  # the model's own feature name
    kind: str  # "number", "category" or "word"
    value: object  # the number, the category or the word
    weight: float  # > 0 pushes towards the top answer


def _describe(name: str, payload: dict) -> tuple[str, str, object]:
    if "~" in name:
        field, word = name.split("~", 1)
        return field, "word", word
    if "=" in name:
        field, value = name.split("=", 1)
        return field, "category", value
    top = name.split(".", 1)[0]
    return top, "number", payload.get(top) if "." not in name else name


def contributions(pipeline, payload: dict, label: str, limit: int = 4) -> dict[str, list]:
    """The strongest features for and against `label`, or empty lists for other pipelines."""
    steps = getattr(pipeline, "named_steps", {})
    vec, scale, model = steps.get("features"), steps.get("scale"), steps.get("model")
    if vec is None or model is None or not hasattr(model, "coef_"):
        return {"towards": [], "against": []}
    classes = [str(c) for c in model.classes_]
    if label not in classes:
        return {"towards": [], "against": []}
    x = vec.transform([features_of(payload)])
    if scale is not None:
        x = scale.transform(x)
    x = x.tocsr()
    coef = model.coef_
    if coef.shape[0] == 1:  # binary: one row, positive means classes_[1]
        row = coef[0] if classes.index(label) == 1 else -coef[0]
    else:
        row = coef[classes.index(label)]
    idx = x.indices
    weights = np.asarray(x.data) * row[idx]
    names = vec.feature_names_
    found = []
    for i, w in zip(idx, weights, strict=True):
        if abs(w) < 1e-6:
            continue
        field, kind, value = _describe(names[i], payload)
        found.append(Contribution(field, names[i], kind, value, float(w)))
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
    """The k most similar already-labelled items (cosine similarity in the model's own scaled
    feature space), among the queue's latest training examples; [] for other pipelines."""
    from sqlalchemy import select

    from app.models import Item, TrainingExample

    steps = getattr(pipeline, "named_steps", {})
    vec, scale = steps.get("features"), steps.get("scale")
    if vec is None:
        return []
    key = (queue_id, version_id)
    cached = _similar_cache.get(key)
    if cached is None:
        rows = session.execute(
            select(
                TrainingExample.item_id,
                Item.external_id,
                TrainingExample.target,
                TrainingExample.features,
            )
            .join(Item, Item.id == TrainingExample.item_id)
            .where(TrainingExample.queue_id == queue_id)
            .order_by(TrainingExample.id.desc())
            .limit(_NEIGHBOURS)
        ).all()
        if not rows:
            return []
        matrix = vec.transform([r.features for r in rows])
        if scale is not None:
            matrix = scale.transform(matrix)
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel()) + 1e-12
        cached = (rows, matrix.tocsr(), norms)
        _similar_cache.clear()  # one queue/version at a time is plenty for a page
        _similar_cache[key] = cached
    rows, matrix, norms = cached
    x = vec.transform([features_of(payload)])
    if scale is not None:
        x = scale.transform(x)
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
