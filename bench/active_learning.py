"""How many labels the uncertainty order needs to reach the quality random order reaches.

A pool-based simulation of a review team on one queue, per data set and seed:

- the data is shuffled and split (stratified) into a pool (the items waiting, in arrival
  order) and a test set nobody labels;
- the first batch comes in arrival order (no model exists yet, every item is unranked);
- after every batch (`--batch`, default 50 labels: what a small team answers before the
  next retrain) the model is retrained on every label so far with Loupe's own pipeline
  (app.learning.features.choose_columns/table, pipeline.build_pipeline inside
  pipeline.calibrated: temperature scaling on out-of-fold rows) and scored on the test set
  (macro F1);
- "random": the next batch is the next items in arrival order (the arrival order is a random
  shuffle, so this is random sampling); "uncertainty": the model scores the unlabelled pool,
  each item gets app.queues.order.uncertainty_rank(margin_of_probabilities(row), external_id)
  and the batch is the lowest (rank, arrival) items: the claim statement's ORDER BY
  `priority DESC, uncertainty_rank, id` with equal priorities.

For each target N (250, 500, 1,000 labels) the report gives random order's macro F1 at N and
the labels the uncertainty order needed to reach that same seed's F1 (linear interpolation
between batches; "> max" when it never did), as mean, standard deviation and range over
the seeds.

    .venv/bin/python bench/active_learning.py                 # demo + digits, 5 seeds
    .venv/bin/python bench/active_learning.py --seeds 2 --no-docs
"""

# ruff: noqa: T201  (a command-line report: printing is its job)
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# One BLAS thread per process: the fits are small, and threads only fight on a busy machine.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from app.demo.claims import generate_claims  # noqa: E402
from app.learning.features import choose_columns, table  # noqa: E402
from app.learning.pipeline import build_pipeline, calibrated  # noqa: E402
from app.queues.order import (  # noqa: E402
    BUCKET_WIDTH,
    margin_of_probabilities,
    uncertainty_rank,
)

TARGETS = (250, 500, 1000)
DOCS = ROOT / "docs" / "BENCHMARKS.md"
START, END = "<!-- active-learning:start -->", "<!-- active-learning:end -->"


def demo_data(seed: int):
    rows = generate_claims(4000, seed=7)
    return (
        [r["external_id"] for r in rows],
        [r["payload"] for r in rows],
        [r["label"] for r in rows],
        1000,
    )


def digits_data(seed: int):
    bunch = load_digits()
    payloads = [{f"px{j}": float(v) for j, v in enumerate(row)} for row in bunch.data]
    return (
        [f"digit-{i}" for i in range(len(payloads))],
        payloads,
        [str(t) for t in bunch.target],
        447,  # 1,350 in the pool, 447 to test on
    )


DATASETS = {"demo": demo_data, "digits": digits_data}


def _fit(x, y, seed):
    model, _ = calibrated(build_pipeline(COLUMNS[0], seed), list(y), seed)
    return model.fit(x, list(y))


COLUMNS: list = [None]


def _f1(model, x_test, y_test) -> float:
    return f1_score(y_test, model.predict(x_test), average="macro", zero_division=0)


def random_curve(x_pool, y_pool, x_test, y_test, *, seed) -> dict[int, float]:
    """Random order's macro F1 at each target: the first N items in arrival order (the model
    after N labels does not depend on the batches before, so only the targets are fitted)."""
    return {
        n: _f1(_fit(x_pool[:n], y_pool[:n], seed), x_test, y_test)
        for n in TARGETS
        if n <= len(x_pool)
    }


def loupe_order(row, external_id: str) -> int:
    """Loupe's claim order (app.queues.order), exactly as the item's stored rank."""
    return uncertainty_rank(margin_of_probabilities(row), external_id)


def exact_margin(row, external_id: str) -> float:
    """For comparison only: least margin first with no spread."""
    return margin_of_probabilities(row)


def uncertainty_curve(
    ids, x_pool, y_pool, x_test, y_test, *, batch, max_labels, seed, goal, key=loupe_order
):
    """Macro F1 on the test set after each batch, {labels: f1}, in uncertainty order (`key`,
    then arrival); stops once it reaches `goal` (nothing after that point is reported)."""
    n = len(ids)
    labelled: list[int] = list(range(min(batch, n)))  # the first batch: arrival order
    curve = {}
    while True:
        model = _fit(x_pool[labelled], y_pool[labelled], seed)
        curve[len(labelled)] = _f1(model, x_test, y_test)
        if curve[len(labelled)] >= goal or len(labelled) >= min(max_labels, n):
            return curve
        taken = set(labelled)
        rest = [i for i in range(n) if i not in taken]
        proba = model.predict_proba(x_pool[rest])
        ranks = sorted((key(row, ids[i]), i) for i, row in zip(rest, proba, strict=True))
        labelled.extend(i for _, i in ranks[:batch])


def labels_to_reach(curve: dict[int, float], goal: float) -> float | None:
    """The first point where the curve reaches goal, interpolated between batches."""
    points = sorted(curve.items())
    prev_n, prev_f = None, None
    for n, f in points:
        if f >= goal:
            if prev_n is None or f == prev_f:
                return float(n)
            return prev_n + (n - prev_n) * (goal - prev_f) / (f - prev_f)
        prev_n, prev_f = n, f
    return None


def run_dataset(name, seeds, batch, max_labels, compare):
    ids_all, payloads, labels, n_test = DATASETS[name](0)
    out = []
    for seed in seeds:
        started = time.perf_counter()
        idx = np.arange(len(payloads))
        pool_idx, test_idx = train_test_split(
            idx, test_size=n_test, random_state=seed, stratify=labels
        )
        # The pool's arrival order is a shuffle of it (train_test_split already shuffled).
        COLUMNS[0] = choose_columns([payloads[i] for i in pool_idx], None)
        x_all = table(payloads, COLUMNS[0])
        y_all = np.array(labels, dtype=object)
        ids = [ids_all[i] for i in pool_idx]
        args = (ids, x_all[pool_idx], y_all[pool_idx], x_all[test_idx], y_all[test_idx])
        rand = random_curve(*args[1:], seed=seed)
        unc = uncertainty_curve(
            *args, batch=batch, max_labels=max_labels, seed=seed, goal=max(rand.values())
        )
        curves = {"random": rand, "uncertainty": unc}
        if compare:
            curves["exact"] = uncertainty_curve(
                *args,
                batch=batch,
                max_labels=max_labels,
                seed=seed,
                goal=max(rand.values()),
                key=exact_margin,
            )
        out.append(curves)
        print(
            f"{name} seed {seed}: {time.perf_counter() - started:.0f}s; random "
            + ", ".join(f"{n}: {f:.3f}" for n, f in rand.items())
            + "; uncertainty "
            + ", ".join(f"{n}: {f:.3f}" for n, f in unc.items()),
            flush=True,
        )
    return {"pool": len(payloads) - n_test, "test": n_test, "runs": out}


def _needed(result, n, order):
    """Labels `order` needed per seed to reach random order's F1 at n (None: not within)."""
    return [
        labels_to_reach(r[order], r["random"][n])
        for r in result["runs"]
        if n in r["random"] and order in r
    ]


def summarise(result):
    rows = []
    for n in TARGETS:
        f1s = [r["random"][n] for r in result["runs"] if n in r["random"]]
        if f1s:
            rows.append(
                {
                    "n": n,
                    "random_f1": (np.mean(f1s), np.std(f1s, ddof=1) if len(f1s) > 1 else 0.0),
                    "uncertainty": _needed(result, n, "uncertainty"),
                    "exact": _needed(result, n, "exact"),
                }
            )
    return rows


def _fmt_needed(needed, n, max_labels):
    """(mean ± sd [with misses], range, ratio) over the seeds that reached the goal."""
    if not needed:
        return "", "", ""
    v = [x for x in needed if x is not None]
    missed = len(needed) - len(v)
    if not v:
        return f"not within {max_labels:,} ({missed}/{len(needed)} seeds)", "", ""
    mean = np.mean(v)
    sd = np.std(v, ddof=1) if len(v) > 1 else 0.0
    rng = f"{min(v):,.0f}–{max(v):,.0f}"
    note = f"; {missed} of {len(needed)} seeds not within {max_labels:,}" if missed else ""
    return f"{mean:,.0f} ± {sd:,.0f}{note}", rng, f"{mean / n:.2f}"


def report(results, args, seconds) -> str:
    import sklearn

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "app"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    lines = [
        "## Uncertainty order (active learning)",
        "",
        "`bench/active_learning.py`: a pool-based simulation of one queue's review team. Per "
        "data set and seed the rows are split (stratified) into a pool of waiting items, in "
        "a random arrival order, and a test set nobody labels. The first "
        f"{args.batch} labels come in arrival order (no model yet: every item unranked); "
        f"after every {args.batch} labels the model is retrained on all labels so far with "
        "Loupe's own pipeline (`choose_columns`/`table`, `build_pipeline` inside "
        "`calibrated`: logistic regression, temperature scaling on out-of-fold rows) and "
        "its macro F1 is measured on the test set. *Random* takes the next items in "
        "arrival order; *uncertainty* takes the items with the lowest "
        "`uncertainty_rank(margin_of_probabilities(row), external_id)` "
        f"(app.queues.order: margin buckets of {BUCKET_WIDTH}, a stable hash of the "
        "external id inside a bucket), then arrival: the claim statement's "
        "`ORDER BY priority DESC, uncertainty_rank, id` with equal priorities. "
        "*Labels needed* = labels the uncertainty order needed to reach the same seed's "
        "random-order macro F1 at N (linear interpolation between batches), mean ± standard "
        "deviation and range over the seeds that reached it (those that did not within the "
        "limit are counted beside it); *ratio* = mean labels needed ÷ N. The "
        "uncertainty run stops once it reaches random order's F1 at the largest N (or at "
        f"{args.max_labels:,} labels). Random order's model after N labels is fitted at each "
        "N only (it does not depend on the batches before). For comparison, *exact margin, no "
        "spread* takes the lowest margins in arrival order (what the claim would do without "
        "the buckets and the hash).",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {platform.platform()}; {os.cpu_count()} cores; load average {load} "
        "after the run (shared with other work)",
        f"- Python {platform.python_version()}; scikit-learn {sklearn.__version__}; "
        f"numpy {np.__version__}",
        f"- Code: {commit}{' (with uncommitted changes under app/)' if dirty else ''}",
        f"- Command: `.venv/bin/python bench/active_learning.py --seeds {args.seeds} "
        f"--batch {args.batch}`; the whole run took {seconds / 60:.1f} min",
        "",
    ]
    titles = {
        "demo": "Demo claims (`generate_claims(4000, seed=7)`: 3 answers, tabular + text)",
        "digits": "Digits (`sklearn.datasets.load_digits`: 1,797 8×8 images, 10 answers)",
    }
    for name, result in results.items():
        lines += [
            f"### {titles[name]}",
            "",
            f"Pool {result['pool']:,} items, test {result['test']:,}; {len(result['runs'])} seeds.",
            "",
            "| N labels | random order's macro F1 at N | labels uncertainty order needed "
            "| range | ratio | exact margin, no spread: needed | range |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in summarise(result):
            needed, rng, ratio = _fmt_needed(row["uncertainty"], row["n"], args.max_labels)
            exact, exact_rng, _ = _fmt_needed(row["exact"], row["n"], args.max_labels)
            rf = row["random_f1"]
            lines.append(
                f"| {row['n']:,} | {rf[0]:.3f} ± {rf[1]:.3f} | {needed} | {rng} | {ratio} "
                f"| {exact} | {exact_rng} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_docs(section: str) -> None:
    text = DOCS.read_text()
    block = f"{START}\n{section}{END}"
    if START in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOCS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--max-labels", type=int, default=1000)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument(
        "--no-exact", action="store_true", help="skip the exact-margin comparison (no spread)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    results = {
        name: run_dataset(name, range(args.seeds), args.batch, args.max_labels, not args.no_exact)
        for name in args.datasets
    }
    section = report(results, args, time.perf_counter() - started)
    print(section)
    if not args.no_docs:
        write_docs(section)
        print("wrote docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
