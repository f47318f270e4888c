"""A queue's business rules: the answer suggested when no model can score an item.

Part of routing: an item the model did not answer gets its rule answer here and goes to
review with it (app.routing.decision says why); rule answers are never auto-accepted.
"""

from __future__ import annotations

from app.payload import flatten


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


def rule_fallbacks(rules: list[dict], payloads: list[dict], why: str | None) -> list[tuple]:
    """The scoring rows of items no model answered (see app.learning.scoring.Scores): the
    first matching rule's label as the only candidate, or no candidate at all."""
    rows: list[tuple] = []
    for payload in payloads:
        answer = rule_answer(rules, payload)
        if answer is None:
            rows.append((None, None, {"fallback": why}, "rule"))
        else:
            rule, label = answer
            rows.append(
                (
                    [{"label": label, "score": None}],
                    "rules",
                    {"fallback": why, "rule": rule},
                    "rule",
                )
            )
    return rows
