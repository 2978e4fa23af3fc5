"""The command line, run as a user would: python -m scoring in a subprocess."""

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from scoring.__main__ import main
from scoring.metrics import SCORE_COLUMNS

ROOT = Path(__file__).resolve().parents[2]

HEADER = "session,event,participant,arm,timepoint,practice,e1,br,e2,rt_e1_ms\n"
# Session A is test_metrics' hand session without its optional columns: an
# empty E2 (row 7) is a missing value, not an error.
GOOD_CSV = HEADER + (
    "A,p1,pa,ctl,base,true,40,20,30,900\n"
    "A,e1,pa,ctl,base,false,50,30,40,1000\n"
    "A,e2,pa,ctl,base,false,20,40,30,2000\n"
    "A,e3,pa,ctl,base,false,60,50,62,1500\n"
    "A,e4,pa,ctl,base,false,25,25,30,3000\n"
    "A,e5,pa,ctl,base,false,30,60,,800\n"
    "A,e6,pa,ctl,base,false,70,40,46,1200\n"
    "A,e7,pa,ctl,base,false,10,15,14,2500\n"
    "B,b1,pb,trd,base,,50,40,45,NA\n"
    "B,b2,pb,trd,base,,30,50,40,NA\n"
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scoring", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def trials_csv(tmp_path: Path) -> Path:
    path = tmp_path / "trials.csv"
    path.write_text(GOOD_CSV, encoding="utf-8")
    return path


def test_score_writes_one_row_per_session(trials_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    done = run("score", str(trials_csv), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    scores = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert list(scores.columns) == ["session", "score_version", *SCORE_COLUMNS]
    assert list(scores["session"]) == ["A", "B"]
    assert list(scores["score_version"]) == [2, 2]
    a = scores.iloc[0]
    assert (a["n_good"], a["n_bad"], a["n_excluded"]) == (3, 2, 3)
    assert a["update_bias"] == pytest.approx(32 / 3 - 7, rel=1e-12)
    assert a["alpha_good"] == pytest.approx(900 / 1400, rel=1e-12)
    assert a["rt_e1_mean_ms"] == pytest.approx(12000 / 7, rel=1e-12)
    assert math.isnan(a["memory_error"])
    assert a["m2_w_good"] == pytest.approx(3440 / 18400, rel=1e-12)
    assert math.isnan(a["best_model"])  # five valid trials: no model comparison
    assert a["flags"] == "too_few_bad;too_few_for_models;too_few_good"
    assert a["update_bias_ee"] == pytest.approx(32 / 3 - 7 - 305 / 312.5 * 7.5, rel=1e-12)
    b = scores.iloc[1]
    assert (b["update_good"], b["update_bad"]) == (5, 10)
    assert (b["ebr_n_good"], b["ebr_n_bad"]) == (0, 0)
    assert math.isnan(b["rt_e1_mean_ms"])  # NA cells are missing values


def test_score_to_stdout(trials_csv: Path) -> None:
    done = run("score", str(trials_csv))
    assert done.returncode == 0, done.stderr
    scores = pd.read_csv(io.StringIO(done.stdout))
    assert list(scores.columns) == ["session", "score_version", *SCORE_COLUMNS]
    assert len(scores) == 2


def test_summary_text_and_json(trials_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = run("summary", str(trials_csv))
    assert text.returncode == 0, text.stderr
    assert "ctl / base" in text.stdout and "trd / base" in text.stdout
    assert "update ~ C(valence, Treatment('bad')) * C(arm, Treatment('ctl'))" in text.stdout

    # In-process this time: the subprocess above already proved the entry
    # point, and SciPy's import is the slowest part of a run.
    assert main(["summary", str(trials_csv), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    groups = {(g["arm"], g["timepoint"]): g for g in document["group_summary"]}
    assert groups["ctl", "base"]["n_sessions"] == 1
    assert groups["ctl", "base"]["update_good_mean"] == pytest.approx(32 / 3, rel=1e-12)
    assert groups["ctl", "base"]["update_good_sem"] is None
    model = document["mixed_model"]
    assert (model["n_obs"], model["n_groups"]) == (7, 2)
    assert model["reference_levels"] == {"valence": "bad", "arm": "ctl"}


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "bad.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def assert_refused(path: Path | str, *message: str) -> None:
    done = run("score", str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    for part in message:
        assert part in done.stderr, done.stderr


def test_missing_required_column(tmp_path: Path) -> None:
    path = write(tmp_path, "session,event,e1,e2\nA,1,50,40\n")
    assert_refused(path, "missing required column: br")


def test_non_numeric_value(tmp_path: Path) -> None:
    lines = GOOD_CSV.splitlines(keepends=True)
    lines[6] = lines[6].replace(",false,30,60,", ",false,abc,60,")  # spreadsheet row 7
    assert_refused(write(tmp_path, "".join(lines)), "row 7, column e1: 'abc' is not a number")


def test_duplicate_session_event(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_CSV + "B,b1,pb,trd,base,,50,40,44,\n")
    assert_refused(path, "row 12: duplicate (session, event) = ('B', 'b1'), first on row 10")


def test_bad_polarity(tmp_path: Path) -> None:
    path = write(
        tmp_path, "session,event,e1,br,e2,polarity\nA,1,50,30,40,negative\nA,2,20,40,30,good\n"
    )
    assert_refused(path, "row 3, column polarity: 'good' is not negative or positive")


def test_positive_events_and_the_learning_rate_bound(tmp_path: Path) -> None:
    # Good news moved 1.2 of the way: over the default bound 1, within --lr-max 1.5.
    path = write(
        tmp_path,
        "session,event,e1,br,e2,polarity\nA,1,50,40,40,\nA,2,20,40,44,positive\n"
        "A,3,30,20,32,POSITIVE\n",
    )
    default = run("score", str(path))
    assert default.returncode == 0, default.stderr
    row = pd.read_csv(io.StringIO(default.stdout)).iloc[0]
    # Event 2 (positive, BR above E1) is good news with update 24; event 3
    # (positive, BR below E1) bad news moving away by 2.
    assert (row["n_good"], row["n_bad"], row["update_good"], row["update_bad"]) == (2, 1, 17, -2)
    assert row["m1_lr_good"] == 1.0  # slope (100 + 480) / 500 clipped
    raised = run("score", str(path), "--lr-max", "1.5")
    assert pd.read_csv(io.StringIO(raised.stdout)).iloc[0]["m1_lr_good"] == pytest.approx(1.16)
    assert_refused_args = run("score", str(path), "--lr-max", "0")
    assert assert_refused_args.returncode == 2
    assert "--lr-max must be a number above 0" in assert_refused_args.stderr


def test_file_not_found(tmp_path: Path) -> None:
    assert_refused(tmp_path / "nowhere.csv", "file not found", "nowhere.csv")


def test_not_a_csv(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"
    assert_refused(write(tmp_path, png), "not a CSV file")


def test_row_with_missing_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "session,event,e1,br,e2\nA,1,50,30,40\nA,2,50\n")
    assert_refused(path, "row 3: 3 fields where the header has 5")


def test_semicolon_separated_file_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "session;event;e1;br;e2\nA;1;50;30;40\nA;2;20;40;30\n")
    done = run("score", str(path))
    assert done.returncode == 0, done.stderr
    assert pd.read_csv(io.StringIO(done.stdout))["n_good"].tolist() == [1]
