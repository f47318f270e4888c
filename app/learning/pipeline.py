"""The default model: a ColumnTransformer over numeric, categorical and text payload fields,
logistic regression on top, probabilities calibrated by cross-validation.

Temperature scaling rather than per-class sigmoids: on the demo data the one-vs-rest sigmoids
made the top-label calibration error worse (0.07) than none at all (0.03); temperature
brought it to about 0.01.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

CALIBRATION_FOLDS = 5


def build_pipeline(columns: list[dict], seed: int) -> Pipeline:
    """One transformer per kind of column; the input is features.table()'s object array."""
    numeric = [i for i, c in enumerate(columns) if c["kind"] == "numeric"]
    categorical = [i for i, c in enumerate(columns) if c["kind"] == "categorical"]
    parts: list[tuple[str, Any, list[int] | int]] = []
    if numeric:
        parts.append(
            (
                "numeric",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            )
        )
    if categorical:
        parts.append(
            (
                "categorical",
                # Rare values share one column, unseen ones none: new merchants don't break it.
                OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=3),
                categorical,
            )
        )
    for i, c in enumerate(columns):
        if c["kind"] == "text":
            parts.append(
                (
                    f"text:{c['name']}",
                    TfidfVectorizer(
                        stop_words="english",
                        min_df=2,
                        max_features=20_000,
                        sublinear_tf=True,
                        token_pattern=r"(?u)\b[^\W\d_][\w]+\b",
                    ),
                    i,  # a scalar index hands the vectorizer a 1-D column of strings
                )
            )
    return Pipeline(
        [
            ("features", ColumnTransformer(parts, sparse_threshold=1.0)),
            (
                "model",
                LogisticRegression(
                    max_iter=2000, C=1.0, class_weight="balanced", random_state=seed
                ),
            ),
        ]
    )


def calibrated(pipeline: Pipeline, train_y: list[str], seed: int):
    """(estimator to fit, description): temperature scaling (one parameter, fit for all answers
    at once, so it keeps the ranking) on out-of-fold predictions of the
    training rows, or the bare pipeline when a class has too few rows for two folds."""
    smallest = min(Counter(train_y).values())
    folds = min(CALIBRATION_FOLDS, smallest)
    if folds < 2:
        return pipeline, {"method": None, "why": "a label has a single training example"}
    model = CalibratedClassifierCV(
        pipeline, method="temperature", cv=StratifiedKFold(n_splits=folds), ensemble=False
    )
    return model, {"method": "temperature", "folds": folds, "on": "out-of-fold training rows"}


MIN_CALIBRATION_ROWS = 20


def calibrated_on_held_out(pipeline: Pipeline, x, y: list[str]):
    """(model, description): the fitted pipeline, temperature-scaled on held-out human rows
    (for pipelines trained partly on auto labels); bare when there are too few of them."""
    if len(y) < MIN_CALIBRATION_ROWS or len(set(y)) < 2:
        return pipeline, {"method": None, "why": f"{len(y)} held-out human labels to calibrate on"}
    model = CalibratedClassifierCV(FrozenEstimator(pipeline), method="temperature")
    model.fit(x, y)
    return model, {"method": "temperature", "folds": None, "on": f"{len(y)} held-out human labels"}


def base_pipeline(model) -> Pipeline | None:
    """The fitted pipeline inside a calibrated model (or the model itself)."""
    if isinstance(model, CalibratedClassifierCV):
        model = model.calibrated_classifiers_[0].estimator
    if isinstance(model, FrozenEstimator):
        model = model.estimator
    return model if isinstance(model, Pipeline) else None


def describe_pipeline(model) -> dict:
    """The steps and their parameters, as plain values for the model card."""
    pipe = base_pipeline(model)
    if pipe is None:
        return {"estimator": type(model).__name__}
    out = {}
    for name, part, _cols in pipe.named_steps["features"].transformers:
        out[f"features.{name}"] = _plain(part)
    out["model"] = _plain(pipe.named_steps["model"])
    return out


def _plain(estimator) -> dict:
    params: dict[str, Any] = {"class": type(estimator).__name__}
    for key, value in estimator.get_params(deep=False).items():
        if isinstance(value, float) and value != value:
            params[key] = "nan"  # JSON has no NaN
        elif isinstance(value, str | int | float | bool) or value is None:
            params[key] = value
        elif isinstance(value, list) and all(isinstance(v, tuple) for v in value):
            params[key] = {n: _plain(v) for n, v in value}
    return params
