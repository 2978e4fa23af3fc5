"""Scoring speed: score_all on 10,000 simulated sessions against the naive fit.

Run: .venv/bin/python bench/bench_scoring.py [--sessions N] [--naive N]

The naive fit (one scipy.optimize.minimize per session per model) is timed on
a random subset and extrapolated per session: fitting all 10,000 sessions
that way would take minutes. Exits 1 when a target is missed: the vectorised
fit at least 20x faster per session, and never more than 1e-6 worse in
log-likelihood than the naive fit on the subset.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

# One BLAS thread, set before NumPy loads: scipy's L-BFGS-B calls BLAS on
# 4-vectors, and OpenBLAS threads fighting for 2 busy cores made each step of
# the naive fit ~10x slower, which would flatter the ratio. The vectorised fit
# hardly uses BLAS.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
# Run as a script from anywhere: the project root holds the scoring package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from scoring.fitting import MODELS, fit_sessions, fit_sessions_naive, simulate_sessions  # noqa: E402
from scoring.pipeline import score_all  # noqa: E402

SPEED_TARGET = 20.0
LOGLIK_TOLERANCE = 1e-6


def _seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--naive", type=int, default=300, help="sessions fitted naively")
    args = parser.parse_args()

    rng = np.random.default_rng(12345)
    n = args.sessions
    trials = simulate_sessions(
        n,
        args.trials,
        lr_good=rng.uniform(0.1, 0.9, n),
        lr_bad=rng.uniform(0.1, 0.9, n),
        rng=rng,
    )
    print(f"python {platform.python_version()}, {n} sessions x {args.trials} trials")
    print(f"({len(trials):,} trial rows)")

    score_all(trials.loc[trials["session"] < 50])  # warm-up: imports, caches
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    scores = score_all(trials)
    score_seconds = time.perf_counter() - start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fit_seconds = min(_seconds(lambda: fit_sessions(trials)) for _ in range(2))

    tracemalloc.start()
    score_all(trials)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    subset = np.sort(rng.choice(n, size=min(args.naive, n), replace=False))
    naive_trials = trials.loc[trials["session"].isin(subset)]
    start = time.perf_counter()
    naive = fit_sessions_naive(naive_trials)
    naive_seconds = time.perf_counter() - start

    per_session_fit = fit_seconds / n
    per_session_naive = naive_seconds / len(subset)
    speedup_fit = per_session_naive / per_session_fit
    speedup_all = per_session_naive / (score_seconds / n)
    gaps = {
        m: float((naive[f"{m.lower()}_loglik"] - scores.loc[subset, f"{m.lower()}_loglik"]).max())
        for m in MODELS
    }
    worst = max(gaps.values())

    print()
    print(
        f"score_all (metrics + M0/M1/M2): {score_seconds:.2f} s, "
        f"{n / score_seconds:,.0f} sessions/s"
    )
    print(
        f"  fit_sessions alone (best of 2): {fit_seconds:.2f} s, {n / fit_seconds:,.0f} sessions/s"
    )
    print(f"  peak traced memory (tracemalloc): {peak / 2**20:.0f} MiB")
    print(f"  max RSS growth (getrusage): {(rss_after - rss_before) / 1024:.0f} MiB")
    print(
        f"fit_sessions_naive on {len(subset)} random sessions: {naive_seconds:.2f} s, "
        f"{per_session_naive * 1e3:.2f} ms/session "
        f"(extrapolated to {n}: {per_session_naive * n:.0f} s)"
    )
    print(
        f"speed ratio, per session: {speedup_fit:,.0f}x (fit only), {speedup_all:,.0f}x (score_all)"
    )
    print(
        "max log-likelihood gain of naive over vectorised, on the subset: "
        + ", ".join(f"{m} {g:+.2e}" for m, g in gaps.items())
    )
    best = scores["best_model"].value_counts().reindex(list(MODELS), fill_value=0)
    print(
        "best model by BIC (data simulated from M1): "
        + ", ".join(f"{m} {c}" for m, c in best.items())
    )

    failed = []
    if speedup_fit < SPEED_TARGET:
        failed.append(f"speed ratio {speedup_fit:.1f} < {SPEED_TARGET}")
    if worst > LOGLIK_TOLERANCE:
        failed.append(f"naive log-likelihood better by {worst:.2e} > {LOGLIK_TOLERANCE}")
    print("targets: " + ("met" if not failed else "MISSED: " + "; ".join(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
