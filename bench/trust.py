"""Do Loupe's statistical promises hold on items the model never saw?

Per data set and seed, the rows are shuffled and split (stratified) into labelled rows and a
stream of fresh items nobody has labelled. The labelled rows become an in-memory snapshot
(`app.learning.snapshot.Snapshot`, human labels one second apart, in the shuffled order) and
`app.learning.fitting.fit` trains on it exactly as a retraining run does (time-ordered split,
calibrated pipeline, MAPIE conformal thresholds on the conformal part, the auto-accept rule by
Learn-Then-Test on the conformal + evaluation parts, then the served model refit on every
label, the drift/novelty guard). The fitted model is wrapped as `scoring.LoadedModel` (as
`load_version` does from the stored version) and each fresh item goes through
`LoadedModel.assess` + `candidates` and `app.routing.placement.place` with the queue's
policy: Loupe's own scoring and routing path, no database.

Four fits per data set and seed: candidate sets at 0.95 with no target precision (the
default rule: a single-answer set and confidence >= 0.90) and with targets 0.90 and 0.95,
then sets at 0.90 with target 0.98; confidence 0.9 and audit rate 5% (`--audit-rate`).

1. Audited precision: every fresh item routed to auto-accept or to its audit is in the audit
   frame (`Placement.in_audit_frame`) with `bands.band_of` of its top score; the items
   `audit_draw` sent to a person are answered with their true label; the frame becomes
   `trust.precision.Cell`s and `stratified_precision` gives the estimate and its one-sided
   0.9 bounds, compared with the true precision of the whole frame. The audit draw depends on
   the queue's name, so each fit is audited `--draws` times under different queue names.
2. Candidate sets: the sets reviewers see (`Conformal.shown_sets`, never empty, plus the
   answers the model never saw) on the fresh items: coverage per answer against the target.
3. Auto-accept share: the threshold the fit chose for the target, the share of fresh items
   auto-accept was planned for and their realised precision.

    .venv/bin/python bench/trust.py                       # demo, digits, breast cancer; 20 seeds
    .venv/bin/python bench/trust.py --seeds 2 --no-docs   # quick look, print only

No database or Redis.
"""

# ruff: noqa: T201  (a command-line report: printing is its job)
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # the shared helpers of bench/ingest.py
sys.path.insert(0, str(ROOT))
# One BLAS thread per process: the fits are small, and threads only fight on a busy machine.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from ingest import machine_info, write_docs  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from statsmodels.stats.proportion import proportion_confint  # noqa: E402

from app.demo.claims import generate_claims  # noqa: E402
from app.learning import artifacts  # noqa: E402
from app.learning.conformal import PER_ANSWER, Conformal  # noqa: E402
from app.learning.fitting import fit  # noqa: E402
from app.learning.novelty import Novelty  # noqa: E402
from app.learning.profile import known_values  # noqa: E402
from app.learning.scoring import LoadedModel, _rule_of  # noqa: E402
from app.learning.snapshot import Row, Snapshot  # noqa: E402
from app.models import Queue  # noqa: E402
from app.queues.bands import band_of  # noqa: E402
from app.queues.service import policy_of  # noqa: E402
from app.routing.placement import place  # noqa: E402
from app.states import RouteDecision  # noqa: E402
from app.trust.precision import Cell, stratified_precision  # noqa: E402

START, END = "<!-- trust:start -->", "<!-- trust:end -->"
CONFIDENCE = 0.9
# (candidate-set coverage, target precision) of the fits per data set and seed; None: no
# target, the default policy's rule (a single-answer set and confidence >= 0.90) decides.
SETTINGS = ((0.95, None), (0.95, 0.90), (0.95, 0.95), (0.90, 0.98))
TARGETS = [t for _, t in SETTINGS]
COVERAGES = sorted({c for c, _ in SETTINGS}, reverse=True)


def demo_data(seed: int):
    """Labelled rows from the generator at a seed of their own (so each seed calibrates on
    independent rows), fresh items from one more seed (the same process)."""
    labelled = generate_claims(2500, seed=1000 + seed)
    fresh = generate_claims(4000, seed=8)
    rows = labelled + [{**r, "external_id": "fresh-" + r["external_id"]} for r in fresh]
    return (
        [r["external_id"] for r in rows],
        [r["payload"] for r in rows],
        [r["label"] for r in rows],
        len(fresh),
    )


def _sklearn(bunch, prefix: str, n_fresh: int):
    names = [f"f{j}" for j in range(bunch.data.shape[1])]
    payloads = [{n: float(v) for n, v in zip(names, row, strict=True)} for row in bunch.data]
    labels = [str(bunch.target_names[t]) for t in bunch.target]
    return [f"{prefix}-{i}" for i in range(len(payloads))], payloads, labels, n_fresh


DATASETS = {
    "demo": (demo_data, "Demo claims (`generate_claims`: 3 answers, tabular + text)"),
    "digits": (
        lambda seed: _sklearn(load_digits(), "digit", 797),
        "Digits (`sklearn.datasets.load_digits`: 1,797 8×8 images, 10 answers)",
    ),
    "breast_cancer": (
        lambda seed: _sklearn(load_breast_cancer(), "bc", 219),
        "Breast cancer (`sklearn.datasets.load_breast_cancer`: 569 rows, 30 numbers, 2 answers)",
    ),
}


def loaded(fitted) -> LoadedModel:
    """The fitted model as scoring uses it: what `scoring.load_version` builds from the stored
    version, here from the `Fitted` in memory."""
    card = fitted.card
    forest = artifacts.load(*fitted.novelty) if fitted.novelty else None
    novelty = card.get("novelty") or {}
    return LoadedModel(
        version_id=1,
        version="bench",
        model=fitted.model,
        columns=card["columns"],
        conformal=Conformal.from_dict(card.get("conformal")),
        profile=card.get("profile"),
        known=known_values(card.get("profile")),
        novelty=Novelty(forest, novelty.get("threshold")) if forest is not None else None,
        auto_accept=_rule_of(fitted.metrics),
        labels_per_answer=card.get("labels_per_answer") or {},
    )


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Wilson interval (statsmodels) of k successes in n."""
    if n == 0:
        return float("nan"), float("nan")
    lo, hi = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    return float(lo), float(hi)


def audit(frame, *, queue: str, ids, policy) -> tuple[dict, float]:
    """The stratified estimate from one audit draw of the frame (answers = true labels)."""
    from app.routing.decision import audit_draw

    cells: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for i, score, right in frame:
        c = cells[band_of(score)]
        c[0] += 1
        if audit_draw(queue, ids[i]) < policy.audit_rate:
            c[1] += 1
            c[2] += int(right)
    return stratified_precision(
        [Cell(b, policy.audit_rate, *v) for b, v in cells.items()], policy.confidence
    )


def run_one(name, seed, data, args) -> list[dict]:
    ids, payloads, labels, n_fresh = data
    idx = np.arange(len(payloads))
    if name == "demo":  # the generators already separate labelled rows and fresh items
        lab_idx, fresh_idx = idx[:-n_fresh], idx[-n_fresh:]
        lab_idx = np.random.default_rng(seed).permutation(lab_idx)
    else:
        lab_idx, fresh_idx = train_test_split(
            idx, test_size=n_fresh, random_state=seed, stratify=labels
        )
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        Row(k + 1, payloads[i], labels[i], "human", t0 + timedelta(seconds=k))
        for k, i in enumerate(lab_idx)
    ]
    snap = Snapshot(rows, f"bench-{name}-{seed}")
    answers = sorted(set(labels))
    fresh_payloads = [payloads[i] for i in fresh_idx]
    truth = np.asarray([labels[i] for i in fresh_idx], dtype=object)
    out = []
    for coverage, target in SETTINGS:
        queue = Queue(
            name=f"bench-{name}",
            labels=answers,
            policy={
                "coverage": coverage,
                "confidence": CONFIDENCE,
                "audit_rate": args.audit_rate,
            }
            | ({"target_precision": target} if target is not None else {}),
        )
        policy = policy_of(queue)
        started = time.perf_counter()
        fitted = fit(snap, queue=queue, seed=seed)
        model = loaded(fitted)
        proba, hits = model.assess(fresh_payloads)
        cands = model.candidates(proba, queue_labels=answers, unlike=hits)
        # Coverage: the sets as reviewers see them (never empty) plus the unseen answers.
        shown, empty = model.conformal.shown_sets(proba, model.classes)
        col = {c: j for j, c in enumerate(model.classes)}
        covered = np.asarray(
            [t not in col or bool(shown[r, col[t]]) for r, t in enumerate(truth)], dtype=bool
        )
        # For comparison: the model that chose the thresholds (trained on the oldest 60%
        # only); the served one is refit on every label after that (card["served"]).
        split_proba = fitted.split_model.predict_proba(model.inputs(fresh_payloads))
        split_shown, _ = model.conformal.shown_sets(split_proba, model.classes)
        covered_split = np.asarray(
            [t not in col or bool(split_shown[r, col[t]]) for r, t in enumerate(truth)],
            dtype=bool,
        )
        frame = []  # (fresh index, top score, top answer right)
        auto = 0
        for r, (c, detail) in enumerate(cands):
            p = place(
                policy=policy,
                paused=None,
                queue_name=queue.name,
                external_id=ids[fresh_idx[r]],
                candidates=c,
                detail=detail,
            )
            if p.in_audit_frame:
                frame.append((fresh_idx[r], float(c[0]["score"]), c[0]["label"] == truth[r]))
                auto += p.route.decision == RouteDecision.AUTO_ACCEPT
        right = sum(f[2] for f in frame)
        draws = [
            audit(frame, queue=f"bench-{name}-{seed}-{d}", ids=ids, policy=policy)
            for d in range(args.draws)
        ]
        rule = fitted.metrics.get("auto_accept") or {}
        split_acc = split_right = 0
        if rule.get("threshold") is not None:
            classes = np.asarray(model.classes, dtype=object)
            accepted = split_proba.max(axis=1) >= rule["threshold"]
            split_acc = int(accepted.sum())
            split_right = int((classes[split_proba.argmax(axis=1)] == truth)[accepted].sum())
        out.append(
            {
                "coverage": coverage,
                "target": target,
                "mode": model.conformal.mode,
                "per_answer_cov": {
                    a: (int(covered[truth == a].sum()), int((truth == a).sum())) for a in answers
                },
                "covered": int(covered.sum()),
                "per_answer_split": {a: int(covered_split[truth == a].sum()) for a in answers},
                "covered_split": int(covered_split.sum()),
                "empty": int(empty.sum()),
                "n_fresh": len(truth),
                "n_labelled": len(rows),
                "threshold": rule.get("threshold"),
                "why_none": rule.get("why_none"),
                "rule_n": rule.get("n"),
                "expected_share": rule.get("expected_share"),
                "frame": len(frame),
                "split_accepted": split_acc,
                "split_right": split_right,
                "auto": auto,
                "right": right,
                "draws": draws,
                "seconds": time.perf_counter() - started,
                "served_refit": fitted.card["served"]["refit"],
            }
        )
        r = out[-1]
        prec = right / len(frame) if frame else float("nan")
        target_txt = "none" if target is None else target
        print(
            f"{name} seed {seed} cov {coverage} target {target_txt}: {r['seconds']:.0f}s; mode "
            f"{r['mode']}, coverage {r['covered'] / r['n_fresh']:.3f}; threshold "
            f"{r['threshold']}, share {len(frame) / len(truth):.3f}, precision {prec:.3f}",
            flush=True,
        )
    return out


# ---------------------------------------------------------------------------------------------
# Report


def _pct(x: float) -> str:
    return "–" if x != x else f"{100 * x:.1f}%"


def _ival(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {_pct(k / n)} [{_pct(lo)}, {_pct(hi)}]" if n else "–"


def precision_rows(name, runs):
    """Per target: the audited-precision intervals against the frame's true precision."""
    out = []
    for target in TARGETS:
        fits = [r for seed in runs for r in seed if r["target"] == target]
        total = lower_ok = upper_ok = both = 0
        widths, ns, errs = [], [], []
        no_audit = 0
        lower_fit, upper_fit = [], []  # per fit: the share of its draws whose bound held
        for r in fits:
            if not r["frame"]:
                continue
            true = r["right"] / r["frame"]
            held = [0, 0, 0]
            for d in r["draws"]:
                if d["estimate"] is None:
                    no_audit += 1
                    continue
                total += 1
                lo_ok, hi_ok = d["lower"] <= true + 1e-9, d["upper"] >= true - 1e-9
                lower_ok += lo_ok
                upper_ok += hi_ok
                held[0] += 1
                held[1] += lo_ok
                held[2] += hi_ok
                both += lo_ok and hi_ok
                widths.append(d["upper"] - d["lower"])
                ns.append(d["n"])
                errs.append(d["estimate"] - true)
            if held[0]:
                lower_fit.append(held[1] / held[0])
                upper_fit.append(held[2] / held[0])
        frames = [r["frame"] for r in fits if r["frame"]] or [0]
        true_p = [r["right"] / r["frame"] for r in fits if r["frame"]]
        out.append(
            {
                "name": name,
                "target": target,
                "fits": len(fits),
                "no_rule": sum(1 for r in fits if not r["frame"]),
                "frame": frames,
                "true": true_p,
                "total": total,
                "lower_ok": lower_ok,
                "upper_ok": upper_ok,
                "both": both,
                "width": float(np.mean(widths)) if widths else float("nan"),
                "n": ns,
                "bias": float(np.mean(errs)) if errs else float("nan"),
                "no_audit": no_audit,
                "lower_fit": lower_fit,
                "upper_fit": upper_fit,
            }
        )
    return out


def exact_coverage(n: int, p: float, method: str) -> tuple[float, float]:
    """(lower, upper) one-sided coverage of statsmodels' `method` bounds at CONFIDENCE for a
    plain random sample of n at true precision p, computed exactly over the binomial: what
    the stratified interval (Clopper-Pearson, "beta", at the effective sample size) is built
    on; Wilson's for comparison."""
    from scipy.stats import binom

    lo = up = 0.0
    for k in range(n + 1):
        a, b = proportion_confint(k, n, alpha=2 * (1 - CONFIDENCE), method=method)
        w = float(binom.pmf(k, n, p))
        lo += w * (a <= p)
        up += w * (b >= p)
    return lo, up


def _rule(target) -> str:
    return f"{target:.0%}" if target is not None else "none: set of one, score ≥ 0.90"


def _exact(r) -> str:
    n, p = round(float(np.mean(r["n"]))), float(np.mean(r["true"]))
    lo, up = exact_coverage(n, p, "beta")
    wlo, wup = exact_coverage(n, p, "wilson")
    return f"{_pct(lo)}, {_pct(up)} (Wilson: {_pct(wlo)}, {_pct(wup)})"


def precision_table(rows) -> str:
    lines = [
        "| data set | target (rule) | fits × draws | frame items per fit | true precision "
        "of the frame | audits (n) per draw | lower bound ≤ truth | upper bound ≥ truth "
        "| both (90% two-sided: 80%) | mean width | mean error of the estimate "
        "| exact coverage at mean n and precision, Clopper-Pearson: lower, upper |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if not r["total"]:
            why = (
                "no rule reaches the target: nothing auto-accepted"
                if not any(r["frame"])
                else "no audit drawn"
            )
            lines.append(
                f"| {r['name']} | {_rule(r['target'])} | {r['fits']} fits | {why} | | | | | | | | |"
            )
            continue
        tp = r["true"]
        lines.append(
            f"| {r['name']} | {_rule(r['target'])} | {r['fits'] - r['no_rule']} × "
            f"{(r['total'] + r['no_audit']) // max(r['fits'] - r['no_rule'], 1)}"
            + (f" ({r['no_rule']} fits: no rule)" if r["no_rule"] else "")
            + (f" ({r['no_audit']} draws without an audit)" if r["no_audit"] else "")
            + f" | {min(r['frame']):,}–{max(r['frame']):,} "
            f"| {_pct(min(tp))}–{_pct(max(tp))} | {np.mean(r['n']):.1f} "
            f"({min(r['n'])}–{max(r['n'])}) | {_ival(r['lower_ok'], r['total'])} "
            f"| {_ival(r['upper_ok'], r['total'])} | {_ival(r['both'], r['total'])} "
            f"| {r['width']:.3f} | {r['bias']:+.4f} "
            f"| {_exact(r)} |"
        )
    return "\n".join(lines)


def coverage_rows(name, runs):
    out = []
    for coverage in COVERAGES:
        # One fit per seed: fits of one seed with the same coverage have the same sets.
        fits = [next(r for r in seed if r["coverage"] == coverage) for seed in runs]
        per = defaultdict(lambda: [0, 0, 0])
        for r in fits:
            for a, (k, n) in r["per_answer_cov"].items():
                per[a][0] += k
                per[a][1] += n
                per[a][2] += r["per_answer_split"][a]
        per_fit = {
            a: [r["per_answer_cov"][a][0] / r["per_answer_cov"][a][1] for r in fits] for a in per
        }
        seeds_below = {
            a: sum(
                1 for r in fits if r["per_answer_cov"][a][0] < coverage * r["per_answer_cov"][a][1]
            )
            for a in per
        }
        out.append(
            {
                "name": name,
                "coverage": coverage,
                "fits": len(fits),
                "modes": Counter(r["mode"] for r in fits),
                "overall": (sum(r["covered"] for r in fits), sum(r["n_fresh"] for r in fits)),
                "overall_split": sum(r["covered_split"] for r in fits),
                "per": dict(per),
                "below": seeds_below,
                "per_fit": per_fit,
                "fit_modes": [r["mode"] for r in fits],
                "overall_fit": [r["covered"] / r["n_fresh"] for r in fits],
                "empty": sum(r["empty"] for r in fits),
            }
        )
    return out


def _mean_sd(values) -> str:
    if len(values) < 2:
        return _pct(values[0]) if values else "–"
    return f"{_pct(np.mean(values))} ± {100 * np.std(values, ddof=1):.1f}"


def _seed_upper(values) -> float:
    """Upper end of a 95% normal interval of the mean of per-fit figures: each fit
    calibrates on its own labels, so this spread includes the calibration draw's."""
    if len(values) < 3:
        return float("inf")
    return float(np.mean(values) + 1.96 * np.std(values, ddof=1) / np.sqrt(len(values)))


def coverage_table(rows) -> str:
    lines = [
        "| data set | target | mode (fits) | all answers | answer | coverage [95% Wilson] "
        "| per-fit mean ± sd | fits below target | split model's sets (not served) |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        modes = ", ".join(f"{m} ({n})" for m, n in r["modes"].items())
        k_all, n_all = r["overall"]
        lines.append(
            f"| {r['name']} | {r['coverage']:.0%} | {modes} | {_ival(k_all, n_all)} | (all) "
            f"| | | | {_pct(r['overall_split'] / n_all)} |"
        )
        for a, (k, n, ks) in sorted(r["per"].items(), key=lambda kv: kv[1][0] / max(kv[1][1], 1)):
            lines.append(
                f"| | | | | {a} | {_ival(k, n)} | {_mean_sd(r['per_fit'][a])} "
                f"| {r['below'][a]}/{r['fits']} "
                f"| {_pct(ks / n) if n else '–'} |"
            )
    return "\n".join(lines)


def share_rows(name, runs):
    out = []
    for target in TARGETS:
        if target is None:
            continue
        fits = [r for seed in runs for r in seed if r["target"] == target]
        chosen = [r for r in fits if r["threshold"] is not None]
        frame = sum(r["frame"] for r in chosen)
        right = sum(r["right"] for r in chosen)
        held = sum(1 for r in chosen if r["frame"] and r["right"] / r["frame"] >= target)
        out.append(
            {
                "name": name,
                "target": target,
                "fits": len(fits),
                "chosen": len(chosen),
                "none": [r["why_none"] for r in fits if r["threshold"] is None],
                "rule_n": [r["rule_n"] for r in fits],
                "thresholds": [r["threshold"] for r in chosen],
                "expected": [r["expected_share"] for r in chosen],
                "share": [r["frame"] / r["n_fresh"] for r in chosen],
                "auto": [r["auto"] / r["n_fresh"] for r in chosen],
                "frame": frame,
                "right": right,
                "held": held,
                "with_items": sum(1 for r in chosen if r["frame"]),
                "per_fit": [r["right"] / r["frame"] for r in chosen if r["frame"]],
                "split": (
                    sum(r["split_right"] for r in chosen),
                    sum(r["split_accepted"] for r in chosen),
                    sum(r["n_fresh"] for r in chosen),
                ),
            }
        )
    return out


def share_table(rows) -> str:
    lines = [
        "| data set | target | fits with a rule | threshold (range) | expected share "
        "(held out) | share of fresh items auto-accepted or audited | realised precision, "
        "pooled [95% Wilson] | per-fit precision (range) | fits at or above target "
        "| split model, same threshold (not served): share, precision |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if not r["chosen"]:
            lines.append(
                f"| {r['name']} | {r['target']:.0%} | 0/{r['fits']} | no rule reaches the "
                "target | | 0% (everything to people) | | | | |"
            )
            continue
        t, s = r["thresholds"], r["share"]
        pf = r["per_fit"]
        lines.append(
            f"| {r['name']} | {r['target']:.0%} | {r['chosen']}/{r['fits']} "
            f"| {np.mean(t):.3f} ({min(t):.3f}–{max(t):.3f}) | {_pct(np.mean(r['expected']))} "
            f"| {_pct(np.mean(s))} ({_pct(min(s))}–{_pct(max(s))}) "
            f"| {_ival(r['right'], r['frame'])} "
            f"| {_pct(min(pf)) if pf else '–'}–{_pct(max(pf)) if pf else '–'} "
            f"| {r['held']}/{r['with_items']} "
            f"| {_pct(r['split'][1] / r['split'][2])}, {_ival(r['split'][0], r['split'][1])} |"
        )
    return "\n".join(lines)


def _bound_finding(r, side: str) -> str | None:
    """A sentence when one side's bound held in fewer draws than promised: judged on the
    per-fit shares (draws of one fit share its frame), pooled only to say so when too few
    fits had auto-accepted items to judge."""
    hits, per_fit = r[f"{side}_ok"], r[f"{side}_fit"]
    what = "at or below" if side == "lower" else "at or above"
    said = (
        f"{r['name']}, rule {_rule(r['target'])}: the audited {side} bound was {what} the "
        f"true precision in {hits}/{r['total']} draws = {_pct(hits / r['total'])} (promised "
        f"{CONFIDENCE:.0%})"
    )
    if len(per_fit) >= 3 and _seed_upper(per_fit) < CONFIDENCE:
        return (
            f"{said}; per fit {_mean_sd(per_fit)} over {len(per_fit)} fits, the 95% interval "
            "of that mean below the promise."
        )
    if len(per_fit) < 3 and wilson(hits, r["total"])[1] < CONFIDENCE:
        return f"{said}; only {len(per_fit)} fits had auto-accepted items: not conclusive."
    return None


def findings(prec, cov, share) -> tuple[list[str], list[str]]:
    """(promises that did not hold in this run, shortfalls nothing promised against)."""
    out, notes = [], []
    for r in prec:
        if r["total"]:
            out += filter(None, (_bound_finding(r, "lower"), _bound_finding(r, "upper")))
    for r in cov:
        per_answer = [m == PER_ANSWER for m in r["fit_modes"]]
        overall = [r["overall_fit"][i] for i, m in enumerate(per_answer) if not m]
        if overall and _seed_upper(overall) < r["coverage"]:
            out.append(
                f"{r['name']}, {r['coverage']:.0%} sets (overall mode): all answers were "
                f"covered {_mean_sd(overall)} per fit over {len(overall)} fits, the 95% "
                "interval of that mean below the target."
            )
        for a, (k, n, _) in r["per"].items():
            promised = [v for v, m in zip(r["per_fit"][a], per_answer, strict=True) if m]
            loose = [v for v, m in zip(r["per_fit"][a], per_answer, strict=True) if not m]
            if promised and _seed_upper(promised) < r["coverage"]:
                out.append(
                    f"{r['name']}, {r['coverage']:.0%} sets (per-answer mode): answer {a!r} "
                    f"was covered {_mean_sd(promised)} per fit over {len(promised)} fits "
                    f"(pooled {k}/{n}), the 95% interval of that mean below the target."
                )
            if loose and _seed_upper(loose) < r["coverage"]:
                notes.append(
                    f"{r['name']}, {r['coverage']:.0%} sets: answer {a!r} was covered "
                    f"{_mean_sd(loose)} per fit over the {len(loose)} fits in overall mode, "
                    "below the target; overall mode promises the average over answers only "
                    "(too few held-out labels of some answer for a per-answer threshold), "
                    "as the model card's guarantee states."
                )
    for r in share:
        if r["frame"] and wilson(r["right"], r["frame"])[1] < r["target"]:
            out.append(
                f"{r['name']}, target {r['target']:.0%}: the auto-accepted fresh items were "
                f"right {r['right']}/{r['frame']} = {_pct(r['right'] / r['frame'])} of the "
                f"time, the 95% interval below the target."
            )
        if r["with_items"] and wilson(r["held"], r["with_items"])[1] < CONFIDENCE:
            out.append(
                f"{r['name']}, target {r['target']:.0%}: realised precision on the fresh "
                f"items reached the target in {r['held']}/{r['with_items']} fits (the rule "
                f"promises it with {CONFIDENCE:.0%} confidence; fresh-item noise counts too)."
            )
    return out, notes


def section(results, info, args, seconds) -> tuple[str, list[str]]:
    prec = [row for name, runs in results.items() for row in precision_rows(name, runs)]
    cov = [row for name, runs in results.items() for row in coverage_rows(name, runs)]
    share = [row for name, runs in results.items() for row in share_rows(name, runs)]
    found, notes = findings(prec, cov, share)
    sizes = {
        name: (runs[0][0]["n_labelled"], runs[0][0]["n_fresh"]) for name, runs in results.items()
    }
    command = " ".join([".venv/bin/python bench/trust.py", args.command]).strip()
    out = [
        START,
        "## Trust: audited precision, candidate sets, auto-accept by target",
        "",
        "`bench/trust.py`: whether Loupe's statistical promises hold on items the model did "
        "not train on. Per data set and seed the rows are split (stratified, seeded) into "
        "labelled rows and fresh items; the labelled rows become an in-memory snapshot (human "
        "labels one second apart) and `app.learning.fitting.fit` trains on it as a retraining "
        "run does (oldest 60% train, next 20% conformal, newest 20% evaluation; the "
        "auto-accept rule by Learn-Then-Test on the conformal + evaluation rows; the served "
        "model refit on every label; the drift/novelty guard). The fitted model is wrapped "
        "as `scoring.LoadedModel` (what `load_version` builds from a stored version) and each "
        "fresh item goes through `assess`, `candidates` and `app.routing.placement.place` "
        "with the queue's policy, auto-accept never paused. Four fits per data set and seed: "
        "candidate sets at 95% with no target precision (the default rule: a single-answer "
        "set and calibrated confidence ≥ 0.90) and with targets 90% and 95%, then sets at "
        "90% with target 98%; confidence "
        f"{CONFIDENCE:.0%}, audit rate {args.audit_rate:.0%}. Labelled / fresh rows: "
        + "; ".join(f"{n} {a:,} / {b:,}" for n, (a, b) in sizes.items())
        + " (demo: labelled rows `generate_claims(2500, seed=1000 + seed)`, fresh "
        "`generate_claims(4000, seed=8)`; sklearn sets: a stratified split per seed). "
        "Seeds are independent draws of the labelled rows (demo) or of the split (sklearn "
        "sets), so per-fit figures vary with the calibration draw as the promises allow.",
        "",
        "**Audited precision**: the audit frame is every fresh item auto-accept was planned "
        "for (auto-accepted or sent to its random audit), banded by `bands.band_of`; "
        "the items `decision.audit_draw` sends to a person are answered with their true "
        "label and `trust.precision.stratified_precision` gives the estimate with one-sided "
        f"{CONFIDENCE:.0%} bounds, compared with the true precision of the whole frame. The "
        f"draw depends on the queue's name, so each fit is audited {args.draws} times under "
        "different names: the count of draws whose bound held is over "
        "fits × draws, and its 95% Wilson interval treats the draws as independent (draws of "
        "one fit share its frame, so it is somewhat too narrow). **Candidate sets**: the "
        "sets reviewers see (`Conformal.shown_sets`: an empty set shows the best guess; "
        "answers the model never saw are always in) hold the true answer, per answer, pooled "
        "over the seeds' fresh items. **Auto-accept share**: the threshold the fit chose "
        "for the target, the share of fresh items auto-accept was planned for "
        "(`in_audit_frame`: the audited ones included) and their precision.",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {info['commit']}",
        f"- Machine: {info['platform']}; {info['cpu']}; {info['cores']} cores; "
        f"{info['memory']} RAM; load average {info['load']} before the run, "
        f"{info['load_after']} after it (shared with other work)",
        f"- Python {info['python']}; one BLAS thread",
        f"- Command: `{command}`; {args.seeds} seeds; the whole run took {seconds / 60:.1f} min",
        "",
        "### Audited precision against the true precision",
        "",
        precision_table(prec),
        "",
        "### Candidate-set coverage per answer, fresh items",
        "",
        coverage_table(cov),
        "",
        "### Auto-accept share at the target precision",
        "",
        share_table(share),
        "",
        "**Reading the figures.** " + reading(prec, cov, share, found, notes, args),
        END,
    ]
    return "\n".join(out), found


def _held_out(share, name: str) -> str:
    ns = sorted({n for r in share if r["name"] == name for n in r["rule_n"] if n is not None})
    if not ns:
        return "unknown"
    return f"{ns[0]:,}" if len(ns) == 1 else f"{ns[0]:,}–{ns[-1]:,}"


def reading(prec, cov, share, found, notes, args) -> str:
    """The paragraph under the tables, from this run's figures."""
    audited = [r for r in prec if r["total"]]
    lows = [r["lower_ok"] / r["total"] for r in audited]
    ups = [r["upper_ok"] / r["total"] for r in audited]
    widths = [r["width"] for r in audited]
    text = [
        "What is promised: each one-sided audited bound holds in at least "
        f"{CONFIDENCE:.0%} of audit draws; each answer's candidate set holds it at least the "
        "target share of the time, on average over calibration draws (so single fits fall "
        "below by chance; the per-fit mean and its spread are the test, the pooled Wilson "
        "interval only counts fresh-item noise); a threshold chosen for a target holds "
        f"precision ≥ target with {CONFIDENCE:.0%} confidence over the labels it was chosen "
        "on, so about one fit in ten may miss, and precision on a few hundred fresh items "
        "is itself noisy.",
    ]
    if audited:
        text.append(
            f"The audited lower bound held in {100 * min(lows):.0f}–{100 * max(lows):.0f}% "
            f"of draws and the upper bound in {100 * min(ups):.0f}–{100 * max(ups):.0f}% "
            "(the lower bound is conservative when precision is near 1: most draws see no "
            "error at all); at a "
            f"{args.audit_rate:.0%} audit rate a few hundred to a thousand auto-accepted "
            f"items give intervals {min(widths):.2f}–{max(widths):.2f} wide: that is what "
            "the audit rate buys on a queue this size. The interval is Clopper-Pearson's at "
            "the effective sample size: for a plain sample its one-sided coverage is at "
            f"least {CONFIDENCE:.0%} at every n and precision, as the last column shows "
            "exactly for that many audits at that precision, next to Wilson's (which "
            "Loupe used before 2026-12-01: it swings with n and p, below 90% at some)."
        )
    none = [r for r in share if r["chosen"] < r["fits"]]
    if none:
        text.append(
            "Where no threshold reaches a target the fit accepts nothing and routing sends "
            "every item to a person, as promised: "
            + "; ".join(
                f"{r['name']} at {r['target']:.0%} in {r['fits'] - r['chosen']} of {r['fits']} fits"
                for r in none
            )
            + "."
        )
        for r in prec:
            if (
                r["target"] is None
                and r["true"]
                and any(x["name"] == r["name"] and not x["chosen"] for x in none)
            ):
                text.append(
                    f"For comparison on {r['name']}, the items the default rule (no target) "
                    f"auto-accepts were right {_pct(min(r['true']))}–{_pct(max(r['true']))} "
                    "of the time per fit; Learn-Then-Test certifies a target only with room "
                    f"to spare on the held-out labels it has ({_held_out(share, r['name'])})."
                )
    text.append(
        "The thresholds are chosen with the split model (trained on the oldest 60%) and "
        "applied to the served model refit on every label; the last columns show the split "
        "model on the same items for comparison."
    )
    if notes:
        text.append("Shortfalls nothing promised against: " + " ".join(notes))
    if found:
        text.append("**Where a promise did not hold in this run:** " + " ".join(found))
    else:
        text.append(
            "In this run no promise failed by these tests: no bound's hit rate, no answer's "
            "mean coverage over fits and no pooled realised precision was below its promise "
            "beyond its own 95% interval."
        )
    return " ".join(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--draws", type=int, default=50, help="audit draws per fit")
    ap.add_argument("--audit-rate", type=float, default=0.05)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--no-docs", action="store_true", help="print only; leave docs/ alone")
    args = ap.parse_args()
    args.command = " ".join(sys.argv[1:])
    info = machine_info()  # before the run, so the load average is the machine's, not ours
    started = time.perf_counter()
    results = {}
    for name in args.datasets:
        results[name] = [
            run_one(name, seed, DATASETS[name][0](seed), args) for seed in range(args.seeds)
        ]
    info["load_after"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    text, found = section(results, info, args, time.perf_counter() - started)
    print("\n" + text)
    if not args.no_docs:
        write_docs(text, START, END)
        print("\nwrote docs/BENCHMARKS.md")
    if found:
        print("\nPROMISES NOT HELD:\n- " + "\n- ".join(found))


if __name__ == "__main__":
    main()
