"""The command line's group level (DESIGN.md, "Command line"): summary and score --hierarchical."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from scoring.__main__ import main
from scoring.analysis import DOCUMENT_KEYS
from scoring.group import COEFFICIENT_COLUMNS
from scoring.hierarchical import HB_COLUMNS, hierarchical_fit
from scoring.io import read_trials_csv
from tests.scoring.test_cli import run
from tests.scoring.test_group_v2 import small_study


@pytest.fixture
def study_csv(tmp_path: Path) -> Path:
    path = tmp_path / "study.csv"
    small_study().to_csv(path, index=False)
    return path


def test_summary_json_has_every_part_with_the_given_reference_levels(
    study_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["summary", str(study_csv), "--json", "--arm-order", "trd,ctl"]
    assert main([*argv, "--timepoint-order", "base,4h"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(DOCUMENT_KEYS) <= set(document)
    assert document["reference_levels"] == {"valence": "bad", "arm": "trd", "timepoint": "base"}
    assert document["mixed_model"]["reference_levels"] == document["reference_levels"]
    assert list(document["mixed_model"]["coefficients"][0]) == list(COEFFICIENT_COLUMNS)
    terms = [c["term"] for c in document["mixed_model"]["coefficients"]]
    assert "C(arm, Treatment('trd'))[T.ctl]" in terms
    assert [(g["arm"], g["timepoint"]) for g in document["model_selection"]] == [
        ("trd", "base"),
        ("trd", "4h"),
        ("ctl", "base"),
        ("ctl", "4h"),
    ]
    assert {(r["measure"], tuple(r["timepoints"])) for r in document["test_retest"]} >= {
        ("update_bias", ("base", "4h"))
    }


def test_summary_without_orders_sorts_and_says_so(study_csv: Path) -> None:
    done = run("summary", str(study_csv))
    assert done.returncode == 0, done.stderr
    assert (
        "Reference levels (sorted; set them with --arm-order and --timepoint-order): "
        "valence = bad, arm = ctl, timepoint = 4h"
    ) in done.stdout
    assert "Satterthwaite" in done.stdout
    assert "Random-effects model selection" in done.stdout
    assert "Test-retest ICC(2,1)" in done.stdout


def test_summary_refuses_an_order_that_misses_a_level(
    study_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summary", str(study_csv), "--arm-order", "ctl"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "arm level(s) 'trd' are not in the arm order ['ctl']" in captured.err


def test_summary_with_covariates_and_a_random_slope(
    study_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    covariates = tmp_path / "covariates.csv"
    covariates.write_text(
        "participant,age\n" + "".join(f"p{i},{20 + 3 * i}\n" for i in range(8)), encoding="utf-8"
    )
    argv = ["summary", str(study_csv), "--json", "--covariates", str(covariates)]
    assert main([*argv, "--random-slope"]) == 0
    model = json.loads(capsys.readouterr().out)["mixed_model"]
    assert model["formula"].endswith("+ ee + age + (1 + valence | participant)")
    assert "age" in [c["term"] for c in model["coefficients"]]

    covariates.write_text("participant,age\np0,old\n", encoding="utf-8")
    assert main(argv) == 2
    assert "column 'age' is not numeric" in capsys.readouterr().err


def test_score_hierarchical_adds_the_hb_columns(study_csv: Path) -> None:
    done = run("score", str(study_csv), "--hierarchical")
    assert done.returncode == 0, done.stderr
    scores = pd.read_csv(io.StringIO(done.stdout)).set_index("session")
    assert list(scores.columns[-len(HB_COLUMNS) :]) == list(HB_COLUMNS)
    expected = hierarchical_fit(read_trials_csv(study_csv)).sessions
    for column in HB_COLUMNS:
        assert scores[column].to_numpy() == pytest.approx(
            expected.loc[scores.index, column].to_numpy(), abs=1e-12
        )
    plain = run("score", str(study_csv))
    assert "hb_m0_lr" not in plain.stdout
