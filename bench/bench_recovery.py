"""Parameter and model recovery of the M0 / M1 / M2 fits, on seeded simulations.

Run: .venv/bin/python bench/bench_recovery.py [--sessions 500] [--realistic 10000]

Prints, for the current score version's fits:
- M1 parameter recovery (r and mean error of LR_good, LR_bad);
- the model-recovery confusion matrix by BIC (M0, M1, M2 generated);
- M2's effective learning rate w_v (1 + k EE/100) on the trials of
  `--realistic` sessions simulated from M1 (LR uniform in [0.1, 0.9]): how many
  sessions have a fitted rate above 1 on some trial, and the largest;
- the best model on sessions simulated with learning rates above 1
  (uniform in [1.05, 1.3]): M2 must not win by overshooting;
- M2's k recovery (r between true and fitted k, k uniform in [-0.8, 2]).

Seeded, so two runs of one version print the same figures; the figures of
another version come from running this script at that version's commit.
Exits 1 when a target is missed (M1 recovery r >= 0.9, M2 winning at most a
fifth of the above-1 sessions, no effective rate above 1 in score version 2+).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Run as a script from anywhere: the project root holds the scoring package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scoring.fitting import (  # noqa: E402
    MODELS,
    fit_sessions,
    simulate_sessions,
    simulate_sessions_m0,
)
from scoring.metrics import SCORE_VERSION, derive_trials  # noqa: E402

R_TARGET = 0.9
OVERSHOOT_WIN_TARGET = 0.2


def _effective_rates(trials: pd.DataFrame, fit: pd.DataFrame) -> pd.Series:
    """Largest fitted M2 rate w_v (1 + k EE/100) over each session's valid trials."""
    derived = derive_trials(trials)
    valid = derived.loc[~derived["excluded"]]
    session = valid["session"].to_numpy()
    rows = fit.loc[session]
    good = (valid["valence"] == "good").to_numpy()
    w = np.where(good, rows["m2_w_good"].to_numpy(), rows["m2_w_bad"].to_numpy())
    rate = w * (1.0 + rows["m2_k"].to_numpy() * valid["ee"].to_numpy() / 100.0)
    return pd.Series(rate).groupby(session).max()


def _winners(fit: pd.DataFrame) -> dict[str, int]:
    counts = fit["best_model"].value_counts()
    return {m: int(counts.get(m, 0)) for m in MODELS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--realistic", type=int, default=10_000)
    args = parser.parse_args()
    n = args.sessions
    failures: list[str] = []
    print(f"score version {SCORE_VERSION}; {n} sessions x 40 trials per simulation, noise sd 4")

    rng = np.random.default_rng(20220401)
    truth_good, truth_bad = rng.uniform(0.1, 0.9, n), rng.uniform(0.1, 0.9, n)
    fit = fit_sessions(simulate_sessions(n, lr_good=truth_good, lr_bad=truth_bad, rng=rng))
    print("\nM1 parameter recovery (LR uniform in [0.1, 0.9])")
    for valence, truth in (("good", truth_good), ("bad", truth_bad)):
        estimate = fit[f"m1_lr_{valence}"].to_numpy()
        r = float(np.corrcoef(estimate, truth)[0, 1])
        print(f"  LR_{valence}: r = {r:.4f}, mean error = {np.mean(estimate - truth):+.4f}")
        if r < R_TARGET:
            failures.append(f"M1 LR_{valence} recovery r {r:.3f} < {R_TARGET}")

    rng = np.random.default_rng(17)
    generated = {
        "M0": simulate_sessions_m0(n, lr=rng.uniform(0.1, 0.9, n), rng=rng),
        "M1": simulate_sessions(
            n, lr_good=rng.uniform(0.1, 0.9, n), lr_bad=rng.uniform(0.1, 0.9, n), rng=rng
        ),
        "M2": simulate_sessions(
            n,
            lr_good=rng.uniform(0.1, 0.5, n),
            lr_bad=rng.uniform(0.1, 0.5, n),
            k=rng.uniform(1.0, 4.0, n),
            rng=rng,
        ),
    }
    confusion = pd.DataFrame({t: _winners(fit_sessions(d)) for t, d in generated.items()}).T
    confusion.index.name = "generated"
    print("\nModel recovery by BIC (rows: generating model; columns: chosen)")
    print(confusion.to_string())

    rng = np.random.default_rng(12345)
    m = args.realistic
    realistic = simulate_sessions(
        m, lr_good=rng.uniform(0.1, 0.9, m), lr_bad=rng.uniform(0.1, 0.9, m), rng=rng
    )
    highest = _effective_rates(realistic, fit_sessions(realistic))
    over = int((highest > 1.0 + 1e-9).sum())
    print(f"\nM2 effective rate on {m} M1 sessions (LR uniform in [0.1, 0.9])")
    print(
        f"  sessions with a fitted rate above 1 on some trial: {over}; largest {highest.max():.4f}"
    )
    if SCORE_VERSION >= 2 and over:
        failures.append(f"{over} sessions with an M2 effective rate above 1")

    rng = np.random.default_rng(99)
    above = simulate_sessions(
        n, lr_good=rng.uniform(1.05, 1.3, n), lr_bad=rng.uniform(1.05, 1.3, n), rng=rng
    )
    winners = _winners(fit_sessions(above))
    print("\nBest model on sessions simulated with LR uniform in [1.05, 1.3] (M1 form)")
    print("  " + ", ".join(f"{k} {v}" for k, v in winners.items()))
    if winners["M2"] > OVERSHOOT_WIN_TARGET * n:
        failures.append(f"M2 wins {winners['M2']} of {n} above-1 sessions")

    rng = np.random.default_rng(7)
    true_k = rng.uniform(-0.8, 2.0, n)
    k_trials = simulate_sessions(
        n,
        lr_good=rng.uniform(0.2, 0.4, n),
        lr_bad=rng.uniform(0.2, 0.4, n),
        k=true_k,
        rng=rng,
    )
    fitted_k = fit_sessions(k_trials)["m2_k"].to_numpy()
    r_k = float(np.corrcoef(fitted_k, true_k)[0, 1])
    negative = true_k < 0
    r_neg = float(np.corrcoef(fitted_k[negative], true_k[negative])[0, 1])
    print("\nM2 k recovery (w uniform in [0.2, 0.4], k uniform in [-0.8, 2])")
    print(
        f"  r(true k, fitted k) = {r_k:.4f}; over the {int(negative.sum())} sessions with "
        f"k < 0: r = {r_neg:.4f}, mean error {np.mean(fitted_k[negative] - true_k[negative]):+.4f}"
    )

    for failure in failures:
        print(f"TARGET MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
