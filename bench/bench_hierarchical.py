"""Hierarchical M1 rates against per-session ML, and the group fit's speed.

Run: .venv/bin/python bench/bench_hierarchical.py [--sessions N] [--big N]

Simulated as PROTOCOL.md's "Group level, version 2" describes real groups:
40 trials per session, answer noise sd 8, each session's true LR_good and
LR_bad drawn around its arm x timepoint's mean with sd 0.15 (clipped to
[0, 1]), 4 arm x timepoint groups, base rates drawn by the adaptive design
(PROTOCOL.md: BR = E1 -+ d, d uniform in 6..15, half good and half bad news):
the design whose small estimation errors make per-session rates noisiest.
Prints the RMSE of the per-session ML rates, of the simple normal-normal
empirical-Bayes shrinkage of those rates (the baseline, in the same run) and
of the hierarchical fit (scoring.hierarchical: M0, M1 and M2 with every
parameter's group prior estimated by marginal likelihood), the coverage of
the per-session 95 % posterior intervals, the bias of the group means and
the coverage of their 95 % intervals, M2's recovery on sessions simulated
from M2, and the time of the whole hierarchical fit of a --big study.
Exits 1 when a target is missed: hierarchical RMSE <= 0.8x the ML RMSE, every
group mean within 0.02 of the groups' true mean, the big fit under 60 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scoring.fitting import fit_sessions  # noqa: E402
from scoring.hierarchical import hierarchical_fit, normal_normal_shrinkage  # noqa: E402

GROUP_MEANS = {  # (arm, timepoint): (LR_good, LR_bad)
    ("controls", "baseline"): (0.60, 0.40),
    ("controls", "4h"): (0.62, 0.38),
    ("patients", "baseline"): (0.35, 0.45),
    ("patients", "4h"): (0.50, 0.42),
}
SPREAD = 0.15
NOISE_SD = 8.0
RMSE_RATIO_TARGET = 0.8
BIAS_TARGET = 0.02
SECONDS_TARGET = 60.0


def study(n_sessions: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trials with arm and timepoint, and each session's true rates."""
    rng = np.random.default_rng(seed)
    keys = list(GROUP_MEANS)
    group = np.arange(n_sessions) % len(keys)
    means = np.array([GROUP_MEANS[k] for k in keys])[group]
    truth = np.clip(means + rng.normal(0.0, SPREAD, size=means.shape), 0.0, 1.0)
    trials = adaptive_sessions(truth[:, 0], truth[:, 1], rng)
    arm = np.array([k[0] for k in keys])[group]
    timepoint = np.array([k[1] for k in keys])[group]
    trials["arm"] = arm[trials["session"].to_numpy()]
    trials["timepoint"] = timepoint[trials["session"].to_numpy()]
    frame = pd.DataFrame(
        {"lr_good": truth[:, 0], "lr_bad": truth[:, 1], "arm": arm, "timepoint": timepoint}
    )
    return trials, frame


def adaptive_sessions(
    lr_good: np.ndarray, lr_bad: np.ndarray, rng: np.random.Generator, n_trials: int = 40
) -> pd.DataFrame:
    """Trials of the adaptive design: E2 = round(E1 + LR (BR - E1) + noise) on the 3-77 scale."""
    n = lr_good.size
    e1 = rng.integers(18, 63, size=(n, n_trials))  # BR = E1 -+ 15 stays on the scale
    sign = np.tile(np.repeat([-1, 1], n_trials // 2), (n, 1))
    sign = rng.permuted(sign, axis=1)
    br = e1 + sign * rng.integers(6, 16, size=(n, n_trials))
    rate = np.where(sign < 0, lr_good[:, None], lr_bad[:, None])
    e2 = np.clip(np.rint(e1 + rate * (br - e1) + rng.normal(0, NOISE_SD, (n, n_trials))), 3, 77)
    return pd.DataFrame(
        {
            "session": np.repeat(np.arange(n), n_trials),
            "event": np.tile(np.arange(1, n_trials + 1), n),
            "e1": e1.ravel(),
            "br": br.ravel(),
            "e2": e2.ravel(),
        }
    )


def m2_recovery(n_sessions: int, seed: int) -> bool:
    """Sessions simulated from M2 (k around 1, sd 0.5): hierarchical against ML k and w."""
    from scoring.fitting import simulate_sessions

    rng = np.random.default_rng(seed)
    k = rng.normal(1.0, 0.5, n_sessions)
    w_good = np.clip(rng.normal(0.4, 0.1, n_sessions), 0.05, 0.55)
    w_bad = np.clip(rng.normal(0.3, 0.1, n_sessions), 0.05, 0.55)
    trials = simulate_sessions(
        n_sessions, 40, lr_good=w_good, lr_bad=w_bad, k=k, sigma=NOISE_SD, rng=rng
    )
    ml = fit_sessions(trials)
    hb = hierarchical_fit(trials).sessions
    print(f"M2 recovery, {n_sessions} sessions simulated from M2 (k ~ N(1, 0.5)): RMSE ML / hier.")
    worse = False
    for name, truth in (("k", k), ("w_good", w_good), ("w_bad", w_bad)):
        ml_rmse = rmse(ml[f"m2_{name}"].to_numpy(), truth)
        hb_rmse = rmse(hb[f"hb_m2_{name}"].to_numpy(), truth)
        print(f"  {name:7} {ml_rmse:8.4f} {hb_rmse:8.4f}  ratio {hb_rmse / ml_rmse:.3f}")
        worse |= hb_rmse > ml_rmse
    return worse


def rmse(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((estimate - truth) ** 2)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--big", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    trials, truth = study(args.sessions, args.seed)
    ml = fit_sessions(trials)
    hb = hierarchical_fit(trials)
    x = (trials["br"] - trials["e1"]).to_numpy(dtype=float)
    good = x < 0
    session = trials["session"].to_numpy()
    valid = x != 0
    failed = False
    print(f"{args.sessions} sessions of 40 trials, noise sd {NOISE_SD}, spread {SPREAD}")
    header = ("ML RMSE", 9), ("EB normal", 10), ("hierarch.", 10), ("ratio", 7), ("EB ratio", 9)
    print(f"{'rate':8} " + " ".join(f"{name:>{width}}" for name, width in header))
    for valence, mask in (("good", good), ("bad", ~good)):
        sxx = np.bincount(
            session[mask & valid], weights=x[mask & valid] ** 2, minlength=args.sessions
        )
        ml_rate = ml[f"m1_lr_{valence}"].to_numpy()
        se = ml["m1_sigma"].to_numpy() / np.sqrt(sxx)
        groups = truth["arm"] + "/" + truth["timepoint"]
        baseline = normal_normal_shrinkage(ml_rate, se, groups)
        hier = hb.sessions[f"hb_m1_lr_{valence}"].to_numpy()
        true_rate = truth[f"lr_{valence}"].to_numpy()
        ml_rmse, eb_rmse, hb_rmse = (rmse(e, true_rate) for e in (ml_rate, baseline, hier))
        ratio = hb_rmse / ml_rmse
        print(
            f"lr_{valence:5} {ml_rmse:9.4f} {eb_rmse:10.4f} {hb_rmse:10.4f} "
            f"{ratio:7.3f} {eb_rmse / ml_rmse:9.3f}"
        )
        failed |= ratio > RMSE_RATIO_TARGET

        sd = hb.sessions[f"hb_m1_lr_{valence}_sd"].to_numpy()
        inside = float(np.mean(np.abs(hier - true_rate) <= 1.959964 * sd))
        print(f"          95 % posterior intervals cover {inside:.3f} of the true rates")

    print("group means (hierarchical M1) against the groups' true mean")
    table = hb.groups[(hb.groups["model"] == "M1") & hb.groups["parameter"].str.startswith("lr_")]
    worst = 0.0
    for row in table.itertuples():
        in_group = (truth["arm"] == row.arm) & (truth["timepoint"] == row.timepoint)
        valence = row.parameter.removeprefix("lr_")
        true_mean = float(truth.loc[in_group, f"lr_{valence}"].mean())
        bias = row.mean - true_mean
        worst = max(worst, abs(bias))
        print(
            f"  {row.arm:9} {row.timepoint:9} {row.parameter:8} "
            f"mean {row.mean:.4f} ± {row.se:.4f} (true {true_mean:.4f}, bias {bias:+.4f}) "
            f"sd {row.sd:.3f}"
        )
    failed |= worst > BIAS_TARGET
    failed |= m2_recovery(args.sessions, args.seed + 2)

    # The group means' 95 % intervals against the sample's true means.
    covered = 0
    for row in table.itertuples():
        in_group = (truth["arm"] == row.arm) & (truth["timepoint"] == row.timepoint)
        true_mean = float(truth.loc[in_group, f"lr_{row.parameter.removeprefix('lr_')}"].mean())
        covered += int(row.ci_low <= true_mean <= row.ci_high)
    print(f"  group-mean 95 % intervals covering the true mean: {covered} of {len(table)}")

    big, _ = study(args.big, args.seed + 1)
    start = time.perf_counter()
    hierarchical_fit(big)
    seconds = time.perf_counter() - start
    print(f"hierarchical fit of {args.big} sessions ({len(big)} trials): {seconds:.2f} s")
    failed |= seconds > SECONDS_TARGET
    print(
        f"targets: ratio <= {RMSE_RATIO_TARGET}, |bias| <= {BIAS_TARGET} (worst {worst:.4f}), "
        f"< {SECONDS_TARGET:.0f} s: {'MISSED' if failed else 'met'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
