"""A queue's business rules: the answer suggested when no model can score an item."""

from __future__ import annotations

from app.learning.features import flatten


def _number(value):
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def matches(rule: dict, payload: dict) -> bool:
    """Whether the payload meets the rule's condition; a missing field meets only 'absent'."""
    flat = flatten(payload)
    op, want = rule["op"], rule.get("value")
    if op == "absent":
        return flat.get(rule["field"]) in (None, "")
    value = flat.get(rule["field"])
    if value is None:
        return False
    if op == "present":
        return value != ""
    if op in (">", ">=", "<", "<="):
        got = _number(value)
        if got is None:
            return False
        return {">": got > want, ">=": got >= want, "<": got < want, "<=": got <= want}[op]
    if op == "contains":
        return isinstance(value, str) and str(want).casefold() in value.casefold()
    if op == "in":
        return isinstance(want, list) and (value in want or str(value) in [str(w) for w in want])
    equal = value == want or (
        _number(value) is not None and _number(want) is not None and _number(value) == _number(want)
    )
    return equal if op == "==" else not equal


def rule_answer(rules: list[dict], payload: dict) -> tuple[str, str] | None:
    """(rule name, label) of the first rule the payload meets, or None."""
    for rule in rules:
        if matches(rule, payload):
            return rule["name"], rule["label"]
    return None
