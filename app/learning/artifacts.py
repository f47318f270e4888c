"""Saving and loading fitted pipelines with skops: no unpickling, an explicit allow-list."""

from __future__ import annotations

import hashlib
from zipfile import ZIP_DEFLATED

from skops.io import dumps, get_untrusted_types, loads

# The types the default pipelines are made of beyond those skops trusts itself (scikit-learn's
# public estimators); anything else in a file is refused.
ALLOWED_TYPES = {
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._TemperatureScaling",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.pipeline.Pipeline",
    "sklearn.linear_model._logistic.LogisticRegression",
    # The trees of the novelty detector's IsolationForest.
    "sklearn.tree._tree.Tree",
    "numpy.float64",
    "numpy.int64",
    "numpy.dtype",
    "builtins.float",
    "builtins.int",
}


class ArtifactError(Exception):
    """A stored model that is corrupt or holds types we do not load."""


def save(pipeline, *, compressed: bool = False) -> tuple[bytes, str]:
    """The pipeline's bytes and their SHA-256 (deflated when `compressed`: a forest's node
    arrays shrink about five times)."""
    data = dumps(pipeline, compression=ZIP_DEFLATED) if compressed else dumps(pipeline)
    return data, hashlib.sha256(data).hexdigest()


def load(data: bytes, sha256: str):
    """Loads a pipeline after checking its checksum and that every type is allowed."""
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ArtifactError("model file does not match its checksum")
    try:
        found = set(get_untrusted_types(data=data))
        untrusted = sorted(t for t in found if t not in ALLOWED_TYPES)
        if untrusted:
            raise ArtifactError(f"model file holds types that are not allowed: {untrusted}")
        return loads(data, trusted=sorted(found))
    except ArtifactError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. written by another scikit-learn version
        raise ArtifactError(f"model file cannot be loaded: {type(exc).__name__}: {exc}") from exc
