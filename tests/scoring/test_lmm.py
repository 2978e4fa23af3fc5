"""The mixed model against R's lmerTest on the same data (REML, Satterthwaite df).

R is the independent reference (tests only, never the product): estimates and
standard errors to 1e-4, df to 1e-2, p-values to 1e-4 (PROTOCOL.md, "Group
level, version 2"). Skipped loudly without Rscript, required under
REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scoring.group import _model_frame, mixed_model
from scoring.metrics import derive_trials
from tests.conftest import need

R_SCRIPT = Path(__file__).parent / "r" / "lmertest_fit.R"
_FACTOR = re.compile(r"C\((\w+), Treatment\('[^']*'\)\)\[T\.([^\]]*)\]")


def study_trials(
    *, participants: int = 30, seed: int = 5, slope_sd: float = 0.0, missing: float = 0.2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Unbalanced trials of 2 arms x 3 timepoints, and each participant's age."""
    rng = np.random.default_rng(seed)
    rows = []
    ages = {}
    for p in range(participants):
        arm = ("ctl", "trd")[p % 2]
        age = float(rng.integers(19, 70))
        ages[f"p{p:02d}"] = age
        intercept = rng.normal(0, 2.0)
        slope = rng.normal(0, slope_sd)
        for timepoint in ("base", "4h", "7d"):
            if timepoint != "base" and rng.random() < missing:
                continue  # a missed visit
            n_events = int(rng.integers(15, 31))
            for event in range(n_events):
                good = rng.random() < 0.5
                ee = float(rng.integers(1, 40))
                effect = (1.5 + (1.0 if arm == "ctl" else -0.5)) * good
                update = (
                    1 + intercept + (effect + slope) * good + 0.35 * ee + 0.02 * age
                ) + rng.normal(0, 4)
                e1 = 45.0
                br = e1 - ee if good else e1 + ee
                e2 = e1 - update if good else e1 + update
                session = f"p{p:02d}-{timepoint}"
                rows.append((f"p{p:02d}", arm, timepoint, session, event, e1, br, e2))
    trials = pd.DataFrame(
        rows, columns=["participant", "arm", "timepoint", "session", "event", "e1", "br", "e2"]
    )
    covariates = pd.DataFrame({"age": pd.Series(ages)})
    return trials, covariates


def r_name(term: str) -> str:
    """Our term's name as R's model.matrix spells it."""
    if term == "Intercept":
        return "(Intercept)"
    return _FACTOR.sub(lambda m: m.group(1) + m.group(2), term)


def lmertest(data: pd.DataFrame, formula: str, levels: dict[str, list[str]], tmp: Path) -> dict:
    need("Rscript with lmerTest", shutil.which("Rscript") is not None)
    csv = tmp / "data.csv"
    data.to_csv(csv, index=False)
    spec = tmp / "spec.json"
    spec.write_text(json.dumps({"data": str(csv), "formula": formula, "levels": levels}))
    done = subprocess.run(
        ["Rscript", str(R_SCRIPT), str(spec)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result: dict = json.loads(done.stdout)
    return result


def assert_equal_to_r(ours: pd.DataFrame, reference: dict) -> None:
    theirs = pd.DataFrame(reference["coefficients"]).set_index("term")
    mine = ours.assign(term=[r_name(t) for t in ours["term"]]).set_index("term")
    assert sorted(mine.index) == sorted(theirs.index)
    mine = mine.loc[theirs.index]
    for column, tolerance in (
        ("estimate", 1e-4),
        ("std_error", 1e-4),
        ("df", 1e-2),
        ("t_value", 1e-3),
        ("p_value", 1e-4),
        ("ci_low", 1e-4),
        ("ci_high", 1e-4),
    ):
        gap = (mine[column] - theirs[column]).abs()
        assert gap.max() <= tolerance, (column, gap.sort_values().tail(3).to_dict())


def r_frame(trials: pd.DataFrame, covariates: pd.DataFrame | None = None) -> pd.DataFrame:
    data, _factors, _names = _model_frame(derive_trials(trials), covariates)
    return data


LEVELS = {"arm": ["ctl", "trd"], "timepoint": ["base", "4h", "7d"]}
ORDERS = {"arm_order": LEVELS["arm"], "timepoint_order": LEVELS["timepoint"]}


def test_random_intercept_model_equals_lmertest(tmp_path: Path) -> None:
    trials, _ = study_trials()
    ours = mixed_model(trials, **ORDERS)
    assert ours.reason == "" and ours.converged, ours.warnings
    reference = lmertest(
        r_frame(trials),
        "update ~ valence * arm * timepoint + ee + (1 | participant)",
        LEVELS,
        tmp_path,
    )
    assert_equal_to_r(ours.coefficients, reference)
    assert ours.residual_sd == pytest.approx(reference["sigma"], abs=1e-5)
    assert ours.reml_criterion == pytest.approx(reference["reml"], abs=1e-4)
    # Within-participant terms have df near the trial count, arm's near the
    # participant count: the fixture exercises both ends of Satterthwaite.
    df = ours.coefficients.set_index("term")["df"]
    assert df["C(arm, Treatment('ctl'))[T.trd]"] < 60 < 1000 < df["ee"]


def test_covariate_and_other_reference_levels_equal_lmertest(tmp_path: Path) -> None:
    trials, covariates = study_trials(seed=8, participants=24)
    levels = {"arm": ["trd", "ctl"], "timepoint": ["4h", "base", "7d"]}
    ours = mixed_model(
        trials, arm_order=levels["arm"], timepoint_order=levels["timepoint"], covariates=covariates
    )
    assert ours.reason == "" and ours.converged, ours.warnings
    assert ours.reference_levels == {"valence": "bad", "arm": "trd", "timepoint": "4h"}
    assert "+ ee + age + (1 | participant)" in ours.formula
    reference = lmertest(
        r_frame(trials, covariates),
        "update ~ valence * arm * timepoint + ee + age + (1 | participant)",
        levels,
        tmp_path,
    )
    assert_equal_to_r(ours.coefficients, reference)


def test_random_valence_slope_equals_lmertest(tmp_path: Path) -> None:
    trials, _ = study_trials(seed=21, participants=36, slope_sd=2.0, missing=0.0)
    ours = mixed_model(trials, random_slope=True, **ORDERS)
    assert ours.reason == "" and ours.converged, ours.warnings
    assert ours.formula.endswith("+ ee + (1 + valence | participant)")
    reference = lmertest(
        r_frame(trials),
        "update ~ valence * arm * timepoint + ee + (1 + valence | participant)",
        LEVELS,
        tmp_path,
    )
    assert_equal_to_r(ours.coefficients, reference)
    assert ours.residual_sd == pytest.approx(reference["sigma"], abs=1e-5)
    assert ours.random_effects["participant_valence_var"] > 1.0
