"""The sentences a case worker reads on the review page: how sure the model is, what its
list of answers promises, and why a person sees the item. Said the way the statistics mean
it ("about 8 in 10 similar claims were legit", "on average"), without the jargon of the
routing reasons that the API and exports keep."""

from __future__ import annotations

from fractions import Fraction

from app.states import RouteDecision


def _plural(noun: str) -> str:
    return noun if noun.endswith("s") else noun + "s"


def in_ten(score: float) -> str:
    """A calibrated probability as a frequency: 0.79 -> "about 8 in 10"."""
    if score >= 0.95:
        return "more than 9 in 10"
    if score < 0.05:
        return "fewer than 1 in 20"
    return f"about {max(1, min(9, round(score * 10)))} in 10"


UNSEEN = "the model has never seen this answer"


def candidate_figure(
    score: float | None, *, calibrated: bool, noun: str = "item", unseen: bool = False
) -> str:
    """The one figure shown next to a candidate."""
    if unseen:
        return UNSEEN
    if score is None:
        return "suggested by a business rule"
    if calibrated:
        return f"{in_ten(score)} similar {_plural(noun)}"
    # A producer's own score: Loupe has not checked what it is worth, so say whose it is.
    return f"score {round(score * 100)} of 100, from the sending system"


def _as_frequency(coverage: float) -> str:
    """0.95 -> "19 times in 20", 0.9 -> "9 times in 10"."""
    f = Fraction(coverage).limit_denominator(100)
    return f"{f.numerator} times in {f.denominator}"


def answer_note(detail: dict, *, shown: int, noun: str = "item") -> str | None:
    """One sentence on what the list of answers is: a conformal set's promise on average,
    or a business rule's answer."""
    if "set_size" in detail:
        size, often = detail["set_size"], _as_frequency(detail["coverage"])
        unseen = detail.get("unseen") or 0
        if detail.get("best_guess_only") or size == 0:
            note = (
                "The model has no answer it trusts for this one; its best guess is shown. "
                "Check it carefully."
            )
            return note + (_unseen_words(unseen) if unseen else "")
        if unseen:
            return f"On average, lists like this hold the right answer {often}." + _unseen_words(
                unseen
            )
        if size == 1:
            return (
                f"Only one answer is likely enough to list. On average, lists like this hold "
                f"the right answer {often}, so it can still be wrong."
            )
        if size > shown:
            return (
                f"On average, lists like this hold the right answer {often}. This one has "
                f"{size} answers: the {shown} likeliest are shown, type to find the others."
            )
        return (
            f"The right answer is usually one of these {size}: on average, lists like this "
            f"hold it {often}."
        )
    if "fallback" in detail:
        why = _fallback_words(detail.get("fallback"))
        if detail.get("rule"):
            return f"No model answer ({why}): the business rule “{detail['rule']}” suggests this."
        return f"No model answer ({why})."
    return None


def _unseen_words(unseen: int) -> str:
    if unseen == 1:
        return " The model has never seen one of the answers; it is listed too."
    return f" The model has never seen {unseen} of the answers; they are listed too."


def _fallback_words(why: str | None) -> str:
    why = why or ""
    if why.startswith("no trained model"):
        return "no model has been trained for this queue yet"
    if "did not answer within" in why:
        return "the model did not answer in time"
    if why:
        return "the model is not working right now"
    return "no model answered"


AUDIT = (
    "A random check: the model would have accepted this on its own. Your answer shows how "
    "often such answers are right."
)


def _reason_words(part: str) -> str | None:
    """The routing reason (app.routing.decision) in a case worker's words."""
    if part.startswith("random audit"):
        return AUDIT
    if part.startswith("no prediction"):
        return "No model answered this one: a person must give the answer."
    if part.startswith("top score") and "below" in part:
        return "The sending system was not sure enough to accept this without a person."
    if part.startswith("top two candidates"):
        return "The two likeliest answers are too close to call."
    if part.startswith("no answer is likely enough") or "candidate set holds no answer" in part:
        # (The second wording: items routed before empty sets showed the best guess.)
        return "The model has no answer it trusts for this one; its best guess is shown."
    if part.startswith("the model has never seen"):
        return "The model has not learnt every answer yet, so it does not decide alone."
    if "every answer needs before the model auto-accepts" in part:
        return "Some answer has too few labels yet for the model to decide alone."
    if "candidate set holds" in part:
        return "The model could not narrow it down to one answer."
    if part.startswith("calibrated confidence") and "below" in part:
        return "The model's answer is not sure enough to accept without a person."
    if "business rule" in part:
        why = _fallback_words(part.split(":", 1)[0])
        if "suggests an answer" in part:
            rule = part.partition("business rule '")[2].rpartition("' suggests")[0]
            return f"No model answer ({why}); the business rule “{rule}” suggests one."
        return f"No model answer ({why}), and no business rule applies: a person must answer."
    return None


_NOTES = {
    "re-scored": "A newer model has looked at it again since it arrived.",
    "reviewers disagreed": "Reviewers disagreed on it.",
}


def why_you_see_this(route_reason: str | None, decision: str | None) -> str | None:
    """The reason the item came to a person, then any notes added later (a re-score, a
    disagreement), each as a plain sentence."""
    first: str | None
    rerouted = [n for n in (route_reason or "").split("; ") if n.startswith("re-routed by ")]
    if rerouted:
        # A newer model routed it again: why it is here now comes first.
        now = rerouted[-1].split(": ", 1)[-1]
        current = AUDIT if decision == RouteDecision.AUDIT else _reason_words(now)
        return f"{current or now[:1].upper() + now[1:] + '.'} {_NOTES['re-scored']}"
    if decision == RouteDecision.AUDIT:
        first, notes = AUDIT, (route_reason or "").split("; ")[1:]
    elif route_reason:
        head, *notes = route_reason.split("; ")
        first = _reason_words(head)
        if first is None and not any(head.startswith(k) for k in _NOTES):
            first = head[:1].upper() + head[1:] + "."
        elif first is None:
            notes = [head, *notes]
    else:
        return None
    said = [first] if first else []
    for note in notes:
        words = next((w for k, w in _NOTES.items() if note.startswith(k)), None)
        if words and words not in said:
            said.append(words)
    return " ".join(said) or None
