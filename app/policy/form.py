"""The policy page's form, written from the Policy model itself: each field's input follows
its type (number with its bounds, a choice from a Literal, on/off, JSON text for lists and
nested models), so a field added to Policy appears on the page with no other change.

The form's text goes to the same validation as the API's PATCH (app.queues.service.
validate_policy_changes) almost as typed: numbers stay text for pydantic to read, so a word
in a number field gets pydantic's message, not one of the page's own.
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt

from app.errors import ValidationFailed
from app.ingest.schemas import unstorable_values
from app.queues.service import Policy

# Plain words for the fields, shown under each input; a field without any shows its name only.
HELP = {
    "auto_accept_threshold": "The model's answer is accepted without a person when its "
    "score is at least this (0 to 1).",
    "min_margin": "…and when it is at least this far ahead of the next answer.",
    "audit_rate": "Share of the items auto-accept would take that a person checks anyway.",
    "reviews_required": "How many people answer each item that comes to people.",
    "lease_seconds": "How long a reviewer holds an item before it goes back to the queue.",
    "retrain_after": "Retrain after this many new human labels (0: only when asked).",
    "retrain_every_hours": "Also retrain on a schedule when there are new labels (0: never).",
    "coverage": "Candidate lists hold the right answer this often.",
    "target_precision": "Auto-accept so that precision is at least this (empty: the "
    "threshold decides).",
    "confidence": "How sure the target precision and the precision alarm must be.",
    "metric": "What a new model must beat the active one on to be promoted.",
    "train_on_auto": "Also train on the model's own auto-accepted answers.",
    "features": 'Payload fields the model reads, as JSON: [{"name": "amount"}, …] '
    "(empty: every usable field).",
    "rules": "Business rules suggesting an answer when no model can, as JSON: "
    '[{"name", "field", "op", "value", "label"}, …].',
    "pause_on_alarm": "An alarm stops auto-accept until a lead resumes it.",
    "alarm_min_audits": "Audited answers needed before the precision alarm may fire.",
    "order": "After priority: oldest first (arrival) or least sure model answers first "
    "(uncertainty).",
    "sla_hours": "Each item should be decided within this many hours of its arrival; "
    "items past 75% of it come first (empty: no service level).",
}


# Labels where the field's name does not read well on its own.
LABELS = {"sla_hours": "Service level (hours)", "min_margin": "Minimum margin"}


def _number(x: float) -> str:
    return f"{int(x):,}" if x == int(x) else f"{x:g}"


@dataclass
class PolicyField:
    """One input of the form."""

    name: str
    kind: Literal["number", "integer", "choice", "switch", "json", "text"]
    value: str  # as shown in the input
    optional: bool = False
    choices: list[str] = field(default_factory=list)
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the bound itself is not allowed (Gt / Lt)
    high_open: bool = False
    help: str = ""
    error: str | None = None

    @property
    def bounds(self) -> str:
        """The bounds in words: "A number, at least 0 and at most 1."."""
        parts = []
        if self.low is not None:
            parts.append(f"{'more than' if self.low_open else 'at least'} {_number(self.low)}")
        if self.high is not None:
            parts.append(f"{'less than' if self.high_open else 'at most'} {_number(self.high)}")
        if not parts:
            return ""
        noun = "A whole number" if self.kind == "integer" else "A number"
        return f"{noun}, {' and '.join(parts)}."

    @property
    def label(self) -> str:
        return LABELS.get(self.name) or self.name.replace("_", " ").capitalize()


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) < len(get_args(annotation)) and len(args) == 1:
            return args[0], True
    return annotation, False


def _kind(annotation: Any) -> tuple[str, list[str]]:
    if get_origin(annotation) is Literal:
        return "choice", [str(a) for a in get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, Enum):  # before str: StrEnum
        return "choice", [str(m.value) for m in annotation]
    if isinstance(annotation, type) and issubclass(annotation, bool):
        return "switch", []
    if isinstance(annotation, type) and issubclass(annotation, int):
        return "integer", []
    if isinstance(annotation, type) and issubclass(annotation, float):
        return "number", []
    if isinstance(annotation, type) and issubclass(annotation, str):
        return "text", []
    return "json", []


def _shown(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "json":
        return json.dumps(value, ensure_ascii=False, indent=1)
    if kind == "switch":
        return "true" if value else "false"
    return str(value.value if hasattr(value, "value") else value)


def policy_fields(
    policy: Policy, *, submitted: dict[str, str] | None = None, errors: dict[str, str] | None = None
) -> list[PolicyField]:
    """The form's inputs for `policy`, every field of the Policy model in its order; with
    `submitted` (the form as sent) the inputs show what was typed, and `errors` by field."""
    out = []
    dumped = policy.model_dump(mode="json")
    for name, info in type(policy).model_fields.items():
        annotation, optional = _unwrap_optional(info.annotation)
        kind, choices = _kind(annotation)
        low = high = None
        low_open = high_open = False
        for rule in info.metadata:
            if isinstance(rule, Ge):
                low = float(rule.ge)  # type: ignore[arg-type]
            elif isinstance(rule, Le):
                high = float(rule.le)  # type: ignore[arg-type]
            elif isinstance(rule, Gt):
                low, low_open = float(rule.gt), True  # type: ignore[arg-type]
            elif isinstance(rule, Lt):
                high, high_open = float(rule.lt), True  # type: ignore[arg-type]
        value = _shown(kind, dumped.get(name))
        if submitted is not None and name in submitted:
            value = submitted[name]
        out.append(
            PolicyField(
                name=name,
                kind=kind,  # type: ignore[arg-type]
                value=value,
                optional=optional,
                choices=choices,
                low=low,
                high=high,
                low_open=low_open,
                high_open=high_open,
                help=info.description or HELP.get(name, ""),
                error=(errors or {}).get(name),
            )
        )
    return out


def read_form(form) -> tuple[dict[str, str], dict[str, Any]]:
    """(what was typed per field, the policy changes to validate) from the posted form.

    Fields absent from the form keep their values. An empty optional field is None; JSON
    text is parsed here (its shape is checked by the validation). Raises ValidationFailed
    naming the field when JSON text does not parse.
    """
    typed: dict[str, str] = {}
    changes: dict[str, Any] = {}
    bad = []
    for name, info in Policy.model_fields.items():
        if name not in form:
            continue
        annotation, optional = _unwrap_optional(info.annotation)
        kind, _ = _kind(annotation)
        values = form.getlist(name)
        # A switch posts a hidden "false" and, when ticked, "true" after it.
        raw = "true" if kind == "switch" and "true" in values else values[-1]
        typed[name] = raw
        text = raw.strip()
        if text == "" and optional:
            changes[name] = None
        elif kind == "json":
            try:
                changes[name] = json.loads(text) if text else None
            except json.JSONDecodeError as exc:
                bad.append({"field": f"policy.{name}", "message": f"not valid JSON ({exc.msg})"})
        else:
            changes[name] = text
    # What the API's body check refuses (NaN in JSON text, ...), refused the same way.
    bad += [
        {"field": f"policy.{path}", "message": message}
        for path, message in unstorable_values(changes)
    ]
    if bad:
        raise ValidationFailed("The policy is not valid.", bad)
    return typed, changes


def errors_by_field(details: list[dict]) -> dict[str, str]:
    """ValidationFailed details ("policy.rules.0.label": …) as one message per form field."""
    out: dict[str, str] = {}
    for d in details:
        path = str(d.get("field", "")).removeprefix("policy.").split(".")
        name = path[0] if path and path[0] in Policy.model_fields else ""
        where = ".".join(path[1:])
        message = f"{where}: {d['message']}" if where else str(d.get("message", "invalid"))
        out[name] = f"{out[name]}; {message}" if name in out else message
    return out
