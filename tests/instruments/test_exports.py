"""The questionnaires and instrument-scores exports: golden files (CSV, JSON), Parquet
types, COPY = Python bytes, filters, roles, and the codebook."""

import io
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from instruments.exports import instrument_scores_query, questionnaires_query
from tests.api.conftest import Researchers, golden_study, make_researchers
from tests.api.test_exports import _bytes, _owner
from tests.factories import make_study
from tests.instruments.builders import fill_instruments
from trials import exports
from trials.api.filters import sessions_filtered
from trials.codebook import codebook
from trials.models import Study

GOLDEN = Path(__file__).parent / "golden"
URL = "/api/v1/studies/golden/"


def _check_golden(name: str, data: bytes) -> None:
    import os

    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    assert path.exists(), f"run with UPDATE_GOLDEN=1 to create {path}"
    assert data == path.read_bytes(), name


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_golden_files() -> None:
    study = golden_study()
    fill_instruments(study)
    client = _owner(study)
    for table in ("questionnaires", "instrument-scores"):
        _check_golden(f"{table}.csv", _bytes(client.get(f"{URL}{table}/?format=csv")))
        page = client.get(f"{URL}{table}/?page_size=1000")
        assert page.status_code == 200
        text = json.dumps(page.json(), indent=1) + "\n"
        _check_golden(f"{table}.json", text.encode())
    body = client.get(f"{URL}instruments/").json()
    _check_golden(
        "instruments.json", (json.dumps(body, indent=1, ensure_ascii=False) + "\n").encode()
    )


@pytest.fixture
def filled(golden: Study) -> Study:
    fill_instruments(golden)
    return golden


@pytest.mark.django_db
def test_columns_are_designs(filled: Study) -> None:
    client = _owner(filled)
    header = _bytes(client.get(f"{URL}questionnaires/?format=csv")).split(b"\n")[0]
    assert header.decode().split(",") == [
        "study",
        "participant",
        "arm",
        "timepoint",
        "session",
        "instrument",
        "item",
        "value",
        "source",
        "rt_ms",
        "answered_at",
    ]
    header = _bytes(client.get(f"{URL}instrument-scores/?format=csv")).split(b"\n")[0]
    assert header.decode().split(",") == [
        "study",
        "participant",
        "arm",
        "timepoint",
        "instrument",
        "total",
        "n_answered",
        "n_missing",
        "status",
        "subscale_optimism",
        "subscale_pessimism_reversed",
    ]


@pytest.mark.django_db
def test_rows_counts_values_and_filters(filled: Study) -> None:
    client = _owner(filled)
    rows = client.get(f"{URL}questionnaires/?page_size=1000").json()["results"]
    # 8 sessions x (9 PHQ-9 + 10 LOT-R + 10 MADRS) + 4 participants x 3 demographics
    assert len(rows) == 8 * 29 + 4 * 3
    assert {r["source"] for r in rows if r["instrument"] == "madrs"} == {"clinician"}
    assert all(r["rt_ms"] is None for r in rows if r["source"] == "clinician")
    skipped = [r for r in rows if r["value"] is None]
    assert {(r["item"], r["participant"] % 4) for r in skipped} == {("phq9_9", 2)}
    scores = client.get(f"{URL}instrument-scores/?page_size=1000").json()["results"]
    assert len(scores) == 8 * 3  # demographics is not scored
    prorated = [s for s in scores if s["status"] == "prorated"]
    assert {s["instrument"] for s in prorated} == {"phq9"}
    assert all(s["n_missing"] == 1 and s["n_answered"] == 8 for s in prorated)
    filtered = client.get(f"{URL}instrument-scores/?timepoint=%2B4h&arm=patients").json()
    assert {(r["timepoint"], r["arm"]) for r in filtered["results"]} == {("+4h", "patients")}
    assert len(filtered["results"]) == 2 * 3


@pytest.mark.django_db
def test_parquet_types_and_copy_equals_python(filled: Study, postgres: None) -> None:
    client = _owner(filled)
    table = pq.read_table(io.BytesIO(_bytes(client.get(f"{URL}instrument-scores/?format=parquet"))))
    assert str(table.schema.field("total").type) == "double"
    assert str(table.schema.field("subscale_optimism").type) == "double"
    assert table.num_rows == 24
    sessions = sessions_filtered(study_id=filled.pk, params={})
    query = questionnaires_query(study=filled, sessions=sessions, external_id=True)
    assert exports.can_copy(query)
    assert b"".join(exports.csv_copy(query)) == b"".join(exports.csv_python(query))
    # Figures go through Python (12.0, never COPY's 12), as the task's scores do.
    query = instrument_scores_query(study=filled, sessions=sessions, external_id=True)
    assert not exports.can_copy(query)
    answers = pq.read_table(io.BytesIO(_bytes(client.get(f"{URL}questionnaires/?format=parquet"))))
    assert str(answers.schema.field("answered_at").type) == "timestamp[us, tz=UTC]"
    assert answers.num_rows == 8 * 29 + 12


@pytest.mark.django_db
def test_viewers_get_no_rows(filled: Study) -> None:
    other = make_study(slug="other-study", n_events=4)
    staff: Researchers = make_researchers(filled, other)
    for table in ("questionnaires", "instrument-scores"):
        response = staff.client("viewer").get(f"{URL}{table}/")
        assert response.status_code == 403
        assert staff.client("stranger").get(f"{URL}{table}/").status_code == 404
    # The instruments a study gives are not participant data: every member reads them.
    assert staff.client("viewer").get(f"{URL}instruments/").status_code == 200


def test_codebook_has_both_tables() -> None:
    book: dict[str, Any] = codebook()
    assert [c["name"] for c in book["questionnaires"]][:11] == [
        "study",
        "participant",
        "arm",
        "timepoint",
        "session",
        "instrument",
        "item",
        "value",
        "source",
        "rt_ms",
        "answered_at",
    ]
    assert [c["name"] for c in book["instrument-scores"]][:10] == [
        "study",
        "participant",
        "arm",
        "timepoint",
        "instrument",
        "total",
        "n_answered",
        "n_missing",
        "status",
        "subscale_<code>",
    ]
