"""Imports: a good file is stored and scored like any session; a bad one is refused whole
with every error listed and nothing stored; a trials export imports back to equal scores."""

import math
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from scoring.metrics import SCORE_VERSION
from scoring.models import Score
from tests.api.conftest import Researchers
from tests.factories import StudyFactory
from trials.models import (
    Arm,
    Participant,
    ParticipantIdentity,
    Response,
    Session,
    Study,
    StudyEventList,
    Timepoint,
    Trial,
)

URL = "/api/v1/studies/golden/imports/"
# The base rates are the lists' (make_study: 20, 30, 40, 50, 60, 20): a fixed-mode study
# refuses others.
BR = {i: 20 + 10 * ((i - 1) % 5) for i in range(1, 7)}
GOOD = (
    "participant,arm,timepoint,event_code,e1,br,e2,rt_e1_ms,rt_e2_ms\n"
    "LAB-1,patients,baseline,PR1,40,50,,900,\n"
    + "".join(
        f"LAB-1,patients,baseline,A0{i},{30 + 5 * i},{BR[i]},{32 + 4 * i},1000,900\n"
        for i in range(1, 7)
    )
    + "".join(
        f"LAB-2,controls,+4h,B0{i},{60 - 3 * i},{BR[i]},{55 - 2 * i},,\n" for i in range(1, 7)
    )
)


def _counts() -> tuple[int, ...]:
    return (
        Participant.objects.count(),
        ParticipantIdentity.objects.count(),
        Session.objects.count(),
        Trial.objects.count(),
        Response.objects.count(),
        Score.objects.count(),
    )


@pytest.mark.django_db
def test_a_good_file_is_stored_and_scored(
    researchers: Researchers, django_capture_on_commit_callbacks: Any
) -> None:
    client = researchers.client("analyst")
    upload = SimpleUploadedFile("lab.csv", GOOD.encode(), content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["participants"] == 2 and body["sessions"] == 2 and body["trials"] == 13
    # e1, br for 13 trials, e2 for the 12 non-practice ones
    assert body["responses"] == 13 * 2 + 12
    sessions = Session.objects.filter(pk__in=body["session_ids"]).order_by("pk")
    assert [s.imported and s.status == "completed" for s in sessions] == [True, True]
    assert [s.participant.identity.external_id for s in sessions] == ["LAB-1", "LAB-2"]
    assert {s.participant.identity.source for s in sessions} == {"import"}
    assert all(s.participant.imported for s in sessions)
    assert [s.timepoint.label for s in sessions] == ["baseline", "+4h"]
    assert Trial.objects.get(session=sessions[0], event__code="PR1").practice is True
    e1 = Response.objects.get(session=sessions[0], event__code="A01", phase="e1")
    assert (e1.value, e1.rt_ms) == (35, 1000)
    assert Response.objects.get(session=sessions[1], event__code="B01", phase="e1").rt_ms == 0
    scores = Score.objects.filter(session__in=sessions, score_version=SCORE_VERSION)
    assert [s.status for s in scores] == ["done", "done"]
    assert (
        scores.get(session=sessions[0]).values["n_excluded"] == 2
    )  # the practice trial and A04 (neutral)


@pytest.mark.django_db
def test_a_text_csv_body_is_accepted(researchers: Researchers) -> None:
    response = researchers.client("owner").post(URL, GOOD, content_type="text/csv")
    assert response.status_code == 201
    assert response.json()["sessions"] == 2


def _refused(client: Any, text: str | bytes, **extra: Any) -> dict[str, Any]:
    before = _counts()
    response = client.post(URL, text, content_type=extra.pop("content_type", "text/csv"), **extra)
    assert _counts() == before
    return {"status": response.status_code, **response.json()["error"]}


@pytest.mark.django_db
def test_every_error_of_a_bad_file_is_listed_and_nothing_stored(researchers: Researchers) -> None:
    bad = (
        "participant,arm,timepoint,event_code,e1,br,e2,vividness\n"
        "P1,patients,baseline,A01,40,20,35,\n"  # fine
        "P1,patients,baseline,A01,41,20,35,\n"  # duplicate of row 2
        "P2,ghosts,baseline,A02,40,30,35,\n"  # unknown arm
        "P3,patients,week9,A02,40,30,35,\n"  # unknown timepoint
        "P4,patients,baseline,ZZ9,40,30,35,\n"  # unknown event
        "P5,patients,baseline,A03,abc,30,35,\n"  # not a number
        "P6,patients,baseline,A03,90,30,35,\n"  # out of the 3-77 scale
        "P7,patients,baseline,A03,45.5,30,35,7\n"  # not whole; rating out of range
        "P8,controls,baseline,A04,40,30\n"  # too few cells
        "P1,controls,+4h,B01,40,30,35,\n"  # P1 was a patient on row 2
    )
    error = _refused(researchers.client("owner"), bad)
    assert error["status"] == 400
    assert error["code"] == "invalid_file"
    found = [(r["row"], r["column"]) for r in error["rows"]]
    assert found == [
        (3, "event_code"),
        (4, "arm"),
        (5, "timepoint"),
        (6, "event_code"),
        (7, "e1"),
        (8, "e1"),
        (9, "e1"),
        (9, "vividness"),
        (10, "(row)"),
        (11, "arm"),
    ]
    assert all(r["message"] for r in error["rows"])


@pytest.mark.django_db
def test_the_language_column_sets_the_session_language(researchers: Researchers) -> None:
    """As the exports write it: one language per session, one of the study's."""
    header = "participant,arm,timepoint,event_code,e1,br,e2,language\n"
    bad = (
        header + "P1,patients,baseline,A01,40,20,35,fr\n"
        "P1,patients,baseline,A02,40,30,35,en\n"  # P1's baseline is in French on row 2
        "P2,patients,baseline,A01,40,20,35,de\n"  # not a language of the study
    )
    error = _refused(researchers.client("owner"), bad)
    assert error["status"] == 400
    assert [(r["row"], r["column"]) for r in error["rows"]] == [(3, "language"), (4, "language")]
    good = header + "P1,patients,baseline,A01,40,20,35,fr\nP2,patients,baseline,A01,40,20,35,\n"
    response = researchers.client("owner").post(URL, good, content_type="text/csv")
    assert response.status_code == 201, response.content
    imported = Session.objects.filter(pk__in=response.json()["session_ids"]).order_by("pk")
    assert [(s.language, s.participant.language) for s in imported] == [
        ("fr", "fr"),
        ("en", "en"),
    ]


@pytest.mark.django_db
def test_bad_headers_and_non_csv_files_are_refused(researchers: Researchers) -> None:
    client = researchers.client("owner")
    header = _refused(
        client, "participant,arm,event_code,e1,br,e2,colour\nP,patients,A01,4,3,4,red\n"
    )
    assert header["status"] == 400
    assert [(r["row"], r["column"]) for r in header["rows"]] == [(1, "timepoint"), (1, "colour")]
    for body in (b"", b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "é".encode("latin-1") * 10, b"hello"):
        assert _refused(client, body)["status"] == 400
    assert _refused(client, b'{"a": 1}', content_type="application/json")["status"] == 415
    again = GOOD.encode()
    assert client.post(URL, again, content_type="text/csv").status_code == 201
    twice = _refused(client, again)
    assert twice["status"] == 400
    assert {r["column"] for r in twice["rows"]} == {"timepoint"}


@pytest.mark.django_db
def test_files_over_the_limit_are_refused_413(researchers: Researchers, monkeypatch: Any) -> None:
    client = researchers.client("owner")
    declared = _refused(client, GOOD, CONTENT_LENGTH=str(200 * 1024 * 1024))
    assert (declared["status"], declared["code"]) == (413, "too_large")
    from trials.api import researcher
    from trials.services import imports

    monkeypatch.setattr(imports, "IMPORT_MAX_BYTES", 100)
    monkeypatch.setattr(researcher, "IMPORT_MAX_BYTES", 100)
    assert _refused(client, GOOD)["status"] == 413
    upload = SimpleUploadedFile("lab.csv", GOOD.encode(), content_type="text/csv")
    before = _counts()
    response = client.post(URL, {"file": upload}, format="multipart")
    assert response.status_code == 413 and _counts() == before


def _twin(study: Study, slug: str) -> Study:
    """A study with the same arms, timepoints and event lists."""
    twin = StudyFactory(slug=slug)
    for arm in study.arms.all():
        Arm.objects.create(study=twin, code=arm.code, name=arm.name)
    for tp in study.timepoints.all():
        Timepoint.objects.create(study=twin, order=tp.order, label=tp.label)
    for link in StudyEventList.objects.filter(study=study):
        StudyEventList.objects.create(
            study=twin, event_list=link.event_list, position=link.position
        )
    return twin


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12)
    return bool(a == b)


@pytest.mark.django_db
def test_round_trip_export_then_import_gives_identical_scores(
    researchers: Researchers, django_capture_on_commit_callbacks: Any
) -> None:
    from trials.models import StudyMembership

    twin = _twin(researchers.study, "twin")
    # The golden sessions' base rates vary per trial around each E1 (as an adaptive study's
    # do), not the lists' fixed values: a fixed-mode twin would refuse them (issue 14.11).
    Study.objects.filter(pk=twin.pk).update(br_mode=Study.BaseRateMode.ADAPTIVE)
    StudyMembership.objects.create(study=twin, user=researchers.users["owner"], role="owner")
    client = researchers.client("owner")
    exported = b"".join(client.get("/api/v1/studies/golden/trials/?format=csv").streaming_content)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/studies/twin/imports/", exported, content_type="text/csv")
    assert response.status_code == 201, response.content
    assert response.json()["sessions"] == 8
    originals = Score.objects.filter(session__participant__study=researchers.study)
    assert originals.count() == 8
    for original in originals.select_related("session__timepoint"):
        copy = Score.objects.get(
            session__participant__study=twin,
            session__participant__identity__external_id=str(original.session.participant_id),
            session__timepoint__label=original.session.timepoint.label,
        )
        assert copy.status == original.status == "done"
        assert copy.session.language == original.session.language
        assert copy.flags == original.flags
        assert set(copy.values) == set(original.values)
        for name, value in original.values.items():
            assert _same(value, copy.values[name]), name


@pytest.mark.django_db
def test_rescore_queues_every_completed_session(
    researchers: Researchers, django_capture_on_commit_callbacks: Any
) -> None:
    from audit.models import AuditEntry
    from tests.api.conftest import SCORED_AT

    Session.objects.filter(
        pk=Session.objects.filter(participant__study=researchers.study).first().pk
    ).update(status="in_progress", completed_at=None)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = researchers.client("analyst").post("/api/v1/studies/golden/rescore")
    assert response.status_code == 202
    body = response.json()
    assert {k: v for k, v in body.items() if k != "requested_at"} == {
        "sessions": 7,
        "score_version": SCORE_VERSION,
        "batches": 1,
        "running": False,
    }
    assert len(callbacks) == 2  # the rescore's publish; the audit head's write
    rescored = Score.objects.filter(session__participant__study=researchers.study)
    assert rescored.exclude(scored_at=SCORED_AT).count() == 7
    entry = AuditEntry.objects.get(action="study.rescore")
    assert (entry.study, entry.actor_name, entry.detail["sessions"]) == ("golden", "analyst", 7)


@pytest.mark.django_db
def test_fixed_mode_refuses_base_rates_other_than_the_lists(researchers: Researchers) -> None:
    before = _counts()
    bad = GOOD.replace("LAB-1,patients,baseline,A03,45,40,", "LAB-1,patients,baseline,A03,45,41,")
    assert bad != GOOD
    error = _refused(researchers.client("owner"), bad)
    assert error["status"] == 400
    assert [(r["row"], r["column"], r["message"]) for r in error["rows"]] == [
        (
            5,
            "br",
            "41 is not the base rate of 'A03' in this study's list (40; the study's base "
            "rates are fixed).",
        )
    ]
    assert _counts() == before


@pytest.mark.django_db
def test_an_import_never_adds_to_an_online_participant(researchers: Researchers) -> None:
    from trials.services.enrolment import study_enrol

    online = study_enrol(study=researchers.study, external_id="LAB-2", source="prolific")
    before = _counts()
    sessions_before = list(Session.objects.filter(participant=online.participant).values())
    error = _refused(researchers.client("owner"), GOOD)
    assert error["status"] == 400
    assert [(r["row"], r["column"], r["message"]) for r in error["rows"]] == [
        (
            9,
            "participant",
            "'LAB-2' is the id of a participant who enrolled online: an import never adds "
            "to an online participant.",
        )
    ]
    assert _counts() == before
    assert list(Session.objects.filter(participant=online.participant).values()) == sessions_before
