"""Exports: golden files, SQL derivation = scoring.metrics.derive_trials, COPY and Python
paths byte for byte, Parquet types, formula injection, filters, pages, bad input, queries."""

import io
import json
import math
import os
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rest_framework.test import APIClient

from accounts.services import token_create
from audit.models import AuditEntry
from scoring.columns import EXCLUSION_REASONS, POLARITIES
from scoring.metrics import derive_trials
from scoring.selectors import trials_frame
from tests.api.conftest import Researchers, golden_study
from trials import exports
from trials.api.filters import sessions_filtered
from trials.codebook import codebook
from trials.models import Event, Response, Session, Study, StudyMembership, Trial

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
URL = "/api/v1/studies/golden/"


def _bytes(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _owner(study: Study) -> APIClient:
    from django.contrib.auth.models import User

    user = User.objects.create_user("golden-owner")
    StudyMembership.objects.create(study=study, user=user, role="owner")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(user=user).key}")
    return client


def _check_golden(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_bytes(data)
    assert path.exists(), f"run with UPDATE_GOLDEN=1 to create {path}"
    assert data == path.read_bytes(), name


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_golden_files() -> None:
    """Ids, timestamps and values are fixed: the files are the contract's examples."""
    client = _owner(golden_study())
    for table in ("trials", "scores"):
        csv_body = _bytes(client.get(f"{URL}{table}/?format=csv"))
        _check_golden(f"{table}.csv", csv_body)
        page = client.get(f"{URL}{table}/?page_size=1000")
        assert page.status_code == 200
        text = json.dumps(page.json(), indent=1, sort_keys=False) + "\n"
        _check_golden(f"{table}.json", text.encode())
    codebook = _bytes(client.get(f"{URL}codebook/?format=csv"))
    _check_golden("codebook.csv", codebook)


def _frame(query: exports.Query) -> pd.DataFrame:
    return pd.DataFrame(list(exports.rows(query)), columns=[c.name for c in query.columns])


@pytest.mark.django_db
def test_sql_derivation_equals_derive_trials(golden: Study) -> None:
    # Every case of derive_trials: practice, missing E1, missing BR, missing E2, neutral,
    # good, bad, and an update away from the base rate (negative).
    trials = Trial.objects.filter(session__participant__study=golden, practice=False)
    first, second, third = list(trials.order_by("id")[:3])
    Response.objects.filter(session_id=first.session_id, event_id=first.event_id).delete()
    Trial.objects.filter(pk=second.pk).update(br=None)
    e1 = Response.objects.get(session_id=third.session_id, event_id=third.event_id, phase="e1")
    Response.objects.filter(pk=e1.pk).update(value=third.br + 10)
    Response.objects.filter(
        session_id=third.session_id, event_id=third.event_id, phase="e2"
    ).update(value=third.br + 14)
    merged = _derived_agree(golden)
    assert len(merged) == 8 * 7
    reasons = set(merged["exclusion_reason"].dropna())
    assert reasons == {"practice", "missing_e1", "missing_br", "missing_e2", "neutral"}
    assert (merged["update"].dropna() < 0).any()


def _derived_agree(study: Study) -> pd.DataFrame:
    """The trials export's derived columns next to derive_trials' on the same rows."""
    sessions = sessions_filtered(study_id=study.pk, params={})
    exported = _frame(exports.trials_query(study=study, sessions=sessions))
    reference = derive_trials(trials_frame(session_ids=[s.pk for s in sessions]))
    reference = reference.rename(columns={"event": "event_code"})
    merged = exported.merge(reference, on=["session", "event_code"], suffixes=("", "_ref"))
    assert len(merged) == len(exported) == len(reference)
    for column in ("valence", "exclusion_reason"):
        assert merged[column].fillna("").tolist() == merged[f"{column}_ref"].tolist(), column
    for column in ("ee", "update"):
        ours = merged[column].astype("float").tolist()
        theirs = merged[f"{column}_ref"].astype("float").tolist()
        assert all(
            (math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(ours, theirs, strict=True)
        ), column
    assert merged["excluded"].tolist() == merged["excluded_ref"].tolist()
    return merged


@pytest.mark.django_db
def test_sql_derivation_equals_derive_trials_on_random_answers(golden: Study) -> None:
    # Both derivations stay (issue 15): the export's SQL streams millions of rows through
    # COPY without pandas, and the scoring modules derive from a file with no database.
    # Random base rates, answers, practice flags and polarities (few values, so ties and
    # neutral trials are common), answers deleted as rounds go by: they must agree on all.
    rng = random.Random(15)
    values = (10, 30, 50, 70)
    seen: set[tuple[str, str, bool]] = set()
    for _round in range(4):
        used = Trial.objects.filter(session__participant__study=golden).values("event_id")
        for event in Event.objects.filter(pk__in=used):
            Event.objects.filter(pk=event.pk).update(polarity=rng.choice(POLARITIES))
        for trial in Trial.objects.filter(session__participant__study=golden):
            br = None if rng.random() < 0.1 else rng.choice(values)
            Trial.objects.filter(pk=trial.pk).update(br=br, practice=rng.random() < 0.1)
        for response in Response.objects.filter(
            session__participant__study=golden, phase__in=["e1", "e2"]
        ):
            if rng.random() < 0.08:
                response.delete()
            else:
                Response.objects.filter(pk=response.pk).update(value=rng.choice(values))
        merged = _derived_agree(golden)
        seen |= set(
            zip(
                merged["valence"].fillna("").tolist(),
                merged["exclusion_reason"].fillna("").tolist(),
                merged["polarity"].eq("positive").tolist(),
                strict=True,
            )
        )
    # Every valence with both polarities, and every exclusion reason, came up.
    assert {(v, p) for v, r, p in seen if v in ("good", "bad")} == {
        ("good", False),
        ("good", True),
        ("bad", False),
        ("bad", True),
    }
    assert {r for _v, r, _p in seen} == {"", *EXCLUSION_REASONS}


@pytest.mark.django_db
@pytest.mark.parametrize("table", ["trials", "responses"])
@pytest.mark.parametrize("external_id", [False, True])
def test_copy_and_python_paths_give_the_same_bytes(
    golden: Study, postgres: None, table: str, external_id: bool
) -> None:
    Response.objects.filter(phase="e2").update(onset_at=None)  # nulls in a datetime column
    build = exports.trials_query if table == "trials" else exports.responses_query
    query = build(
        study=golden,
        sessions=sessions_filtered(study_id=golden.pk, params={}),
        external_id=external_id,
    )
    copied = b"".join(exports.csv_copy(query))
    formatted = b"".join(exports.csv_python(query))
    assert copied.count(b"\n") > 50
    assert copied == formatted


@pytest.mark.django_db
def test_parquet_types_and_both_paths_agree(golden: Study, postgres: None) -> None:
    query = exports.trials_query(
        study=golden, sessions=sessions_filtered(study_id=golden.pk, params={})
    )
    schema = exports.arrow_schema(query.columns)
    from_copy = pa.concat_tables(list(exports._copy_tables(query, schema)))
    from_rows = pa.concat_tables(list(exports._python_tables(query, schema)))
    assert from_copy.equals(from_rows)
    table = pq.read_table(io.BytesIO(b"".join(exports.parquet_stream(query))))
    assert table.equals(from_copy)
    assert table.schema.field("e1").type == pa.int64()
    assert table.schema.field("excluded").type == pa.bool_()
    assert table.schema.field("event").type == pa.string()
    assert table.column("event").to_pylist()[1] == '=HYPERLINK("x")'  # not neutralised
    responses = exports.responses_query(
        study=golden, sessions=sessions_filtered(study_id=golden.pk, params={})
    )
    raw = pq.read_table(io.BytesIO(b"".join(exports.parquet_stream(responses))))
    assert raw.schema.field("received_at").type == pa.timestamp("us", tz="UTC")
    assert raw.num_rows == Response.objects.filter(session__participant__study=golden).count()


@pytest.mark.django_db
def test_parquet_is_written_in_bounded_row_groups(golden: Study, monkeypatch: Any) -> None:
    monkeypatch.setattr(exports, "PARQUET_ROW_GROUP", 10)
    query = exports.trials_query(
        study=golden, sessions=sessions_filtered(study_id=golden.pk, params={})
    )
    chunks = list(exports.parquet_stream(query))
    assert len(chunks) >= 6  # one piece per row group, then the footer
    meta = pq.ParquetFile(io.BytesIO(b"".join(chunks))).metadata
    assert meta.num_rows == 56
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) == 10


@pytest.mark.django_db
def test_formula_injection_is_neutralised_in_text_only(researchers: Researchers) -> None:
    trial = Trial.objects.filter(session__participant__study=researchers.study, practice=False)
    trial = trial.order_by("id")[2]
    Response.objects.filter(
        session_id=trial.session_id, event_id=trial.event_id, phase="e1"
    ).update(value=trial.br + 10)
    Response.objects.filter(
        session_id=trial.session_id, event_id=trial.event_id, phase="e2"
    ).update(value=trial.br + 13)
    body = _bytes(researchers.client("owner").get(f"{URL}trials/?format=csv")).decode()
    lines = body.splitlines()
    assert lines[2].split(",")[6] == '"\'=HYPERLINK(""x"")"'
    assert ",'+4h," in body and ",+4h," not in body
    negative = [line for line in lines if ",-3," in line]
    assert len(negative) == 1 and ",'-3," not in body
    scores = _bytes(researchers.client("owner").get(f"{URL}scores/?format=csv")).decode()
    assert ",-" in scores and ",'-" not in scores.replace(",'+4h,", "")


@pytest.mark.django_db
def test_filters_pages_and_bad_input(researchers: Researchers) -> None:
    client = researchers.client("owner")
    full = client.get(f"{URL}trials/?page_size=1000").json()["results"]
    assert len(full) == 56
    walked, url = [], f"{URL}trials/?page_size=7"
    while url:
        page = client.get(url).json()
        walked += page["results"]
        url = page["next"]
    assert walked == full
    patients = client.get(f"{URL}trials/?arm=patients&page_size=1000").json()["results"]
    assert {r["arm"] for r in patients} == {"patients"} and len(patients) == 28
    later = client.get(f"{URL}sessions/?completed_after=2025-03-10").json()["results"]
    assert [s["timepoint"] for s in later] == ["+4h"] * 4
    earlier = client.get(f"{URL}sessions/?completed_before=2025-03-10").json()["results"]
    assert [s["timepoint"] for s in earlier] == ["baseline"] * 4
    csv_body = _bytes(client.get(f"{URL}trials/?format=csv&timepoint=%2B4h")).decode()
    assert csv_body.count("\n") == 1 + 28

    cases = [
        (f"{URL}trials/?colour=red", "colour"),
        (f"{URL}sessions/?completed_after=2025-13-01", "completed_after"),
        (f"{URL}sessions/?started_before=yesterday", "started_before"),
        (f"{URL}sessions/?status=finished", "status"),
        (f"{URL}trials/?format=xlsx", "format"),
        (f"{URL}scores/?format=", "format"),
        (f"{URL}codebook/?format=parquet", "format"),
        (f"{URL}trials/?cursor=not-a-cursor", "cursor"),
        (f"{URL}trials/?cursor=cD1hYmM%3D", "cursor"),  # p=abc
        (f"{URL}sessions/?cursor=cD0xJm89LTE%3D%3D", "cursor"),
        (f"{URL}participants/?include=password", "include"),
        (f"{URL}summary/?model=maybe", "model"),
        ("/api/v1/studies/?arm=x", "arm"),
    ]
    for url, field in cases:
        response = client.get(url)
        assert response.status_code == 400, url
        error = response.json()["error"]
        assert field in error["fields"], (url, error)


def test_codebook_lists_every_export_column() -> None:
    book = codebook()
    design_trials = [
        "study",
        "participant",
        "arm",
        "timepoint",
        "session",
        "list",
        "event",
        "event_code",
        "block1_position",
        "block2_position",
        "e1",
        "ebr1",
        "br",
        "br_mode",
        "e2",
        "ebr2",
        "confidence",
        "memory",
        "vividness",
        "familiarity",
        "experience",
        "arousal",
        "negativity",
        "valence",
        "ee",
        "update",
        "excluded",
        "exclusion_reason",
        "rt_e1_ms",
        "rt_e2_ms",
    ]
    design_scores = [
        "study",
        "participant",
        "arm",
        "timepoint",
        "session",
        "score_version",
        "status",
        "n_good",
        "n_bad",
        "n_excluded",
        "update_good",
        "update_bad",
        "update_bias",
        "ee_good",
        "ee_bad",
        "mean_e1",
        "alpha_good",
        "alpha_bad",
        "norm_update_good",
        "norm_update_bad",
        "learn_r_good",
        "learn_r_bad",
        "memory_error",
        "rt_e1_mean_ms",
        "rt_e2_mean_ms",
        "ebr_update_bias",
        "m0_lr",
        "m0_bic",
        "m1_lr_good",
        "m1_lr_bad",
        "m1_scaling",
        "m1_asymmetry",
        "m1_bic",
        "m2_w_good",
        "m2_w_bad",
        "m2_k",
        "m2_bic",
        "best_model",
        "flags",
        "scored_at",
    ]
    trials = [c["name"] for c in book["trials"]]
    scores = [c["name"] for c in book["scores"]]
    assert trials[: len(design_trials)] == design_trials
    assert scores[: len(design_scores)] == design_scores
    for table in book.values():
        for column in table:
            assert column["type"] in {"text", "integer", "number", "boolean", "datetime"}
            assert column["meaning"]


AUDIT = 5


@pytest.mark.django_db
def test_exports_are_audited(researchers: Researchers) -> None:
    client = researchers.client("owner")
    before = AuditEntry.objects.count()
    _bytes(client.get(f"{URL}trials/?format=csv&arm=patients"))
    first = client.get(f"{URL}responses/?page_size=2").json()
    client.get(first["next"])  # later pages are not audited again
    entries = list(
        AuditEntry.objects.order_by("id")[before:].values_list("action", "target", "detail")
    )
    csv_params = {"format": "csv", "arm": "patients"}
    assert entries == [
        ("export.trials", "csv", {"params": csv_params, "external_id": False}),
        ("export.responses", "json", {"params": {"page_size": "2"}, "external_id": False}),
    ]


@pytest.mark.django_db
def test_query_counts_of_every_list(
    researchers: Researchers, django_assert_num_queries: Any
) -> None:
    client = researchers.client("owner")
    client.get(URL)  # the token's first use writes last_used_at: done before counting
    client.get(f"{URL}summary/")  # the first summary creates the stored group fit's row
    # Each: 1 token + user; then, for study-scoped lists, 1 study with the caller's role.
    expected = {
        # + studies page, arms, timepoints, lists with their event list
        "/api/v1/studies/": 5,
        URL: 5,
        # + participants page (arm joined, sessions counted)
        f"{URL}participants/": 3,
        # + participants page with identities joined
        f"{URL}participants/?include=external_id": 3,
        # + sessions page (participant, arm, timepoint, list joined)
        f"{URL}sessions/?status=completed": 3,
        # + one SELECT (keys, lists, events and pivoted responses joined in SQL), + the audit
        # entry of an export (first page or whole file): savepoint, advisory lock, last
        # hash, insert, release (the savepoint pair is the test's transaction only)
        f"{URL}trials/?page_size=10": 3 + AUDIT,
        f"{URL}responses/?page_size=10": 3 + AUDIT,
        f"{URL}scores/?page_size=3": 3 + AUDIT,
        # + one COPY
        f"{URL}trials/?format=csv": 3 + AUDIT,
        # + scores with arm and timepoint, the scores' fingerprint, the stored group fit,
        # the MADRS totals of the change analysis (no rating: the scores are not read again)
        f"{URL}summary/": 6,
        f"{URL}codebook/": 2,
    }
    for url, count in expected.items():
        with django_assert_num_queries(count):
            response = client.get(url)
            _bytes(response)
        assert response.status_code == 200, url
    # The page size does not change the count.
    with django_assert_num_queries(3 + AUDIT):
        client.get(f"{URL}trials/?page_size=1000")
    assert Session.objects.count() == 12
