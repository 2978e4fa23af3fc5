"""The dashboard's instruments page (attach, import a file with errors listed by place) and
the clinician rating form (analysts enter and edit; viewers cannot; errors store nothing)."""

import json

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from audit.models import AuditEntry
from instruments.models import Instrument, ItemAnswer, Rating, StudyInstrument
from instruments.services import SHIPPED_DIR
from tests.dashboard.builders import member
from trials.models import Session, Study

pytestmark = pytest.mark.django_db


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def people(attached: Study) -> dict[str, Client]:
    return {role: _client(member(attached, role)) for role in ("owner", "analyst", "viewer")}


def test_the_page_lists_instruments_per_timepoint(people: dict[str, Client]) -> None:
    page = people["viewer"].get("/dashboard/s/golden/instruments/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-timepoint="baseline"' in html and 'data-instrument="madrs"' in html
    assert "attach-form" not in html  # viewers see, owners change
    assert (
        people["viewer"]
        .post("/dashboard/s/golden/instruments/", {"action": "detach", "link": 1})
        .status_code
        == 403
    )
    assert StudyInstrument.objects.count() == 7


def test_an_owner_imports_a_file_and_errors_are_listed(people: dict[str, Client]) -> None:
    data = json.loads((SHIPPED_DIR / "madrs.json").read_text(encoding="utf-8"))
    data["code"] = "madrs_lab"
    data["items"][0]["options"] = [{"value": 0, "label": {"en": "0"}}]
    upload = SimpleUploadedFile("x.json", json.dumps(data).encode(), "application/json")
    page = people["owner"].post(
        "/dashboard/s/golden/instruments/", {"action": "upload", "file": upload}
    )
    assert page.status_code == 400
    html = page.content.decode()
    assert "<code>$.items[0].options</code>: a list of at least 2 options is required" in html
    assert not Instrument.objects.filter(code="madrs_lab").exists()
    del data["items"][0]["options"]
    upload = SimpleUploadedFile("x.json", json.dumps(data).encode(), "application/json")
    page = people["owner"].post(
        "/dashboard/s/golden/instruments/", {"action": "upload", "file": upload}
    )
    assert page.status_code == 302
    assert Instrument.objects.get(code="madrs_lab").kind == "clinician"
    assert AuditEntry.objects.filter(action="instrument.import", target="madrs_lab").exists()


def test_an_owner_attaches_an_instrument(people: dict[str, Client], attached: Study) -> None:
    qids = Instrument.objects.get(code="qids_sr16")
    timepoint = attached.timepoints.get(order=1)
    page = people["owner"].post(
        "/dashboard/s/golden/instruments/",
        {
            "action": "attach",
            "timepoint": timepoint.pk,
            "instrument": qids.pk,
            "position": "before",
        },
    )
    assert page.status_code == 302
    link = StudyInstrument.objects.get(instrument=qids)
    assert (link.timepoint_id, link.position) == (timepoint.pk, "before")


def test_an_analyst_enters_then_edits_a_rating(people: dict[str, Client], attached: Study) -> None:
    session = Session.objects.filter(participant__study=attached).order_by("id").first()
    assert session is not None
    url = f"/dashboard/s/golden/participants/{session.participant_id}/ratings/{session.pk}/madrs/"
    page = people["analyst"].get(f"/dashboard/s/golden/participants/{session.participant_id}/")
    assert url in page.content.decode()
    form = {f"madrs_{n}": 3 for n in range(1, 11)}
    form["madrs_2"] = 9
    page = people["analyst"].post(url, form)
    assert page.status_code == 400
    assert Rating.objects.count() == 0 and ItemAnswer.objects.count() == 0
    form["madrs_2"] = 2
    assert people["analyst"].post(url, {**form, "rated_at": "2025-03-03 10:00"}).status_code == 302
    assert dict(ItemAnswer.objects.values_list("item", "value"))["madrs_2"] == 2
    form["madrs_2"] = 5
    assert people["owner"].post(url, form).status_code == 302
    edit = AuditEntry.objects.get(action="rating.update")
    assert edit.actor_name.startswith("owner")
    assert edit.detail["previous"]["items"]["madrs_2"] == 2
    assert edit.detail["items"]["madrs_2"] == 5
    assert people["viewer"].get(url).status_code == 403
    assert people["viewer"].post(url, {**form, "madrs_2": 0}).status_code == 403
    assert dict(ItemAnswer.objects.values_list("item", "value"))["madrs_2"] == 5


def test_the_page_in_french_says_when_a_session_takes_its_questionnaires(
    people: dict[str, Client],
) -> None:
    page = people["viewer"].get("/dashboard/s/golden/instruments/", HTTP_ACCEPT_LANGUAGE="fr")
    html = page.content.decode()
    assert "Questionnaires et évaluations cliniques" in html
    assert "au moment où elle est créée" in html
