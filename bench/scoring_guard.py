"""What the drift and novelty guard costs at scoring: items/s of the queue's model alone, with
the profile checks (ranges, categories), and with the novelty check too.

Run by hand (not part of the test suite):

    .venv/bin/python bench/scoring_guard.py [--train 3000] [--items 10240] [--chunk 1024]
                                            [--repeat 7] [--no-docs]

Fits the default pipeline on demo claims (in memory, no database), then scores fresh demo
claims in chunks as app/learning/scoring.py does, alternating the three variants `--repeat`
times; prints best and median items/s and writes them between the
`<!-- scoring-guard:start -->` / `<!-- scoring-guard:end -->` markers of docs/BENCHMARKS.md.
"""

# ruff: noqa: T201  (a command-line report: printing is its job)
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "BENCHMARKS.md"
START, END = "<!-- scoring-guard:start -->", "<!-- scoring-guard:end -->"


def _model(n_train: int):
    from app.demo.claims import generate_claims
    from app.learning import artifacts
    from app.learning.conformal import Conformal
    from app.learning.fitting import fit
    from app.learning.novelty import Novelty
    from app.learning.profile import known_values
    from app.learning.scoring import LoadedModel
    from app.learning.snapshot import Row, Snapshot, hash_rows
    from app.models import Queue

    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = [
        Row(i + 1, c["payload"], c["label"], "human", t0 + dt.timedelta(minutes=i))
        for i, c in enumerate(generate_claims(n_train, seed=7))
    ]
    fitted = fit(
        Snapshot(rows=rows, content_hash=hash_rows(rows)),
        queue=Queue(id=1, name="bench", policy={}),
        seed=0,
    )
    card = fitted.card
    return LoadedModel(
        1,
        "bench-v1",
        fitted.model,
        card["columns"],
        Conformal.from_dict(card["conformal"]),
        card["profile"],
        known_values(card["profile"]),
        Novelty(artifacts.load(*fitted.novelty), card["novelty"]["threshold"]),
    )


def _guarded(model, payloads: list[dict]):
    """Scoring as score_payloads does it: the input guard's findings go into the details."""
    proba, unlike = model.assess(payloads)
    return model.candidates(proba, unlike=unlike)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--items", type=int, default=10240)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from app.demo.claims import generate_claims

    model = _model(args.train)
    bare = dataclasses.replace(model, novelty=None)
    fresh = [c["payload"] for c in generate_claims(args.items, seed=5)]
    variants = {
        "model only": lambda c: model.candidates(model.predict_proba(c)),
        "with profile checks": lambda c: _guarded(bare, c),
        "with profile and novelty checks": lambda c: _guarded(model, c),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    load = os.getloadavg()
    for _ in range(args.repeat):
        for name, score in variants.items():
            started = time.perf_counter()
            for s in range(0, len(fresh), args.chunk):
                score(fresh[s : s + args.chunk])
            times[name].append(time.perf_counter() - started)
    lines = [
        "| variant | best items/s | median items/s |",
        "|---|---:|---:|",
    ]
    for name, spent in times.items():
        spent.sort()
        best, median = len(fresh) / spent[0], len(fresh) / spent[len(spent) // 2]
        lines.append(f"| {name} | {best:,.0f} | {median:,.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.no_docs:
        return
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    section = "\n".join(
        [
            START,
            "## Scoring with the drift and novelty guard",
            "",
            f"`bench/scoring_guard.py`: the demo model trained on {args.train:,} labels scores "
            f"{args.items:,} fresh demo claims in chunks of {args.chunk} (as "
            "`score_payloads` does), in memory, best and median of "
            f"{args.repeat} alternating runs. The profile checks are ranges, missing numbers "
            "and unseen categories; the novelty check (IsolationForest, 100 trees) runs on "
            "the rows that could otherwise be auto-accepted.",
            "",
            f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; commit {commit}",
            f"- Machine: {platform.platform()}; {os.cpu_count()} cores; load average before "
            f"the run {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}",
            "",
            table,
            END,
        ]
    )
    text = DOCS.read_text()
    if START in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOCS.write_text(text)


if __name__ == "__main__":
    main()
