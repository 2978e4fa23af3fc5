"""The README's "Get your data in R" snippet runs as printed (Rscript), against a live server."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import fill_study, make_researchers, score_fixed
from tests.conftest import need
from tests.factories import make_study

README = Path(__file__).resolve().parents[2] / "README.md"
R_PACKAGES = ("httr2", "readr")

# Appended to the README's text: what the snippet fetched, as JSON on the last line.
REPORT = """
cat(jsonlite::toJSON(list(
  trials = nrow(trials),
  trial_columns = names(trials)[1:3],
  score_arms = unique(scores$arm),
  score_timepoints = unique(scores$timepoint),
  codebook_columns = names(codebook),
  n_sessions = summary$n_sessions
), auto_unbox = TRUE), "\\n")
"""


def _r_snippet() -> str:
    text = README.read_text()
    section = text.split("## Get your data in R", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```r\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def _r_ready() -> bool:
    rscript = shutil.which("Rscript")
    if not rscript:
        return False
    libraries = "; ".join(f"library({name})" for name in (*R_PACKAGES, "jsonlite"))
    probe = subprocess.run([rscript, "-e", libraries], capture_output=True, timeout=120)  # noqa: S603
    return probe.returncode == 0


@pytest.mark.django_db(transaction=True)
def test_r_snippet_runs(live_server: Any, tmp_path: Path) -> None:
    need("R (Rscript with httr2, readr, jsonlite)", _r_ready())
    study = make_study(slug="demo", n_events=6)
    score_fixed(fill_study(study, n_participants=4))
    people = make_researchers(study, make_study(slug="elsewhere"))
    code = _r_snippet()
    assert 'Sys.getenv("BELIEF_WEB_TOKEN")' in code and "http://127.0.0.1:8000" in code
    script = tmp_path / "readme.R"
    script.write_text(code.replace("http://127.0.0.1:8000", live_server.url) + REPORT)
    done = subprocess.run(  # noqa: S603
        ["Rscript", str(script)],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "BELIEF_WEB_TOKEN": people.tokens["owner_read"]},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert report == {
        "trials": 8 * 7,
        "trial_columns": ["study", "participant", "arm"],
        "score_arms": ["patients", "controls"],
        "score_timepoints": "baseline",
        "codebook_columns": ["table", "name", "type", "unit", "meaning"],
        "n_sessions": 8,
    }
    # The snippet's last line prints the mean update bias per arm x timepoint.
    assert "update_bias" in "\n".join(lines[:-1])


@pytest.mark.django_db(transaction=True)
def test_r_snippet_reports_a_refused_token(live_server: Any, tmp_path: Path) -> None:
    need("R (Rscript with httr2, readr, jsonlite)", _r_ready())
    make_study(slug="demo", n_events=6)
    script = tmp_path / "readme.R"
    script.write_text(_r_snippet().replace("http://127.0.0.1:8000", live_server.url))
    done = subprocess.run(  # noqa: S603
        ["Rscript", str(script)],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "BELIEF_WEB_TOKEN": "not-a-token"},
    )
    assert done.returncode != 0
    assert "401" in done.stderr
