"""Enrolment through the API and through the consent form: who is created, and when not."""

import base64
import hashlib
import re
import threading

import pytest
from django.db import connection
from django.test import Client

from tests.factories import make_study
from tests.trials.conftest import ParticipantApi
from trials.browser import BROWSER_COOKIE
from trials.models import Participant, ParticipantIdentity, Session, Study, StudyEventList
from trials.services.enrolment import study_enrol

BROWSER_KEY = "k" * 40

pytestmark = pytest.mark.usefixtures("postgres")

TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")


def counts() -> tuple[int, int, int]:
    return (
        Participant.objects.count(),
        ParticipantIdentity.objects.count(),
        Session.objects.count(),
    )


@pytest.fixture
def study() -> Study:
    return make_study(n_events=3, n_practice=1)


# --- API ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_enrol_creates_participant_and_first_session(api: ParticipantApi, study: Study) -> None:
    res = api.enrol(study.slug, arm="controls", language="fr")

    assert res.status_code == 201
    body = res.json()
    participant = Participant.objects.get()
    session = Session.objects.get()
    assert body == {
        "session_token": session.token,
        "participant_token": participant.token,
        "task_url": f"http://testserver/t/{session.token}/",
    }
    assert participant.arm.code == "controls"
    assert (participant.sequence, participant.language) == (0, "fr")
    assert participant.consented_at is not None
    assert (session.timepoint.order, session.status, session.step_index) == (0, "created", 0)
    assert session.language == "fr"
    first_list = StudyEventList.objects.get(study=study, position=0).event_list
    assert session.event_list == first_list
    assert not ParticipantIdentity.objects.exists()


@pytest.mark.django_db
def test_api_second_enrol_with_same_external_id_from_the_same_browser_resumes(
    api: ParticipantApi, study: Study
) -> None:
    api.client.cookies[BROWSER_COOKIE] = BROWSER_KEY
    params = {"STUDY_ID": "st-9", "SESSION_ID": "se-4"}
    first = api.enrol(study.slug, external_id="PID-77", params=params)
    again = api.enrol(study.slug, external_id=" PID-77 ", params={"STUDY_ID": "other"})

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert counts() == (1, 1, 1)
    identity = ParticipantIdentity.objects.get()
    assert (identity.source, identity.external_id, identity.params) == ("api", "PID-77", params)
    assert identity.browser_key == hashlib.sha256(BROWSER_KEY.encode()).hexdigest()


@pytest.mark.django_db
def test_api_known_id_without_proof_is_a_new_flagged_participant(
    api: ParticipantApi, study: Study
) -> None:
    first = api.enrol(study.slug, external_id="5")
    again = api.enrol(study.slug, external_id="5")

    # Same status and shape as for an unknown id, and none of the first person's tokens.
    assert (first.status_code, again.status_code) == (201, 201)
    assert set(again.json()) == set(first.json())
    assert again.json()["session_token"] != first.json()["session_token"]
    assert again.json()["participant_token"] != first.json()["participant_token"]
    assert counts() == (2, 2, 2)
    assert list(
        ParticipantIdentity.objects.order_by("id").values_list("external_id", "duplicate")
    ) == [("5", False), ("5", True)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"consent": False},
        {"consent": "no"},
        {"consent": None},
        {"arm": "nobody"},
        {"arm": "not a slug"},
        {"external_id": "x" * 201},
        {"params": {"k": ["list"]}},
        {"params": {f"k{i}": "v" for i in range(21)}},
        {"params": {"bad\u0000key": "v"}},
        {"params": {"k" * 41: "v"}},
    ],
)
def test_api_enrol_refusals_write_nothing(api: ParticipantApi, study: Study, body: dict) -> None:
    res = api.client.post(
        f"/api/v1/studies/{study.slug}/enrol",
        data={"consent": True, **body},
        content_type="application/json",
    )

    assert res.status_code == 400
    error = res.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == set(body)
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_api_enrol_without_consent_field(api: ParticipantApi, study: Study) -> None:
    res = api.client.post(
        f"/api/v1/studies/{study.slug}/enrol", data={}, content_type="application/json"
    )

    assert res.status_code == 400
    assert res.json()["error"]["fields"] == {"consent": ["This field is required."]}
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_api_unknown_arm_names_the_field(api: ParticipantApi, study: Study) -> None:
    res = api.enrol(study.slug, arm="nobody")

    assert res.status_code == 400
    assert res.json() == {
        "error": {
            "code": "invalid",
            "message": "Unknown arm 'nobody'.",
            "fields": {"arm": ["No arm 'nobody' in this study."]},
        }
    }


@pytest.mark.django_db
@pytest.mark.parametrize("state", ["closed", "paused"])
def test_api_enrol_refused_when_study_not_open(api: ParticipantApi, state: str) -> None:
    study = make_study(status=state)

    res = api.enrol(study.slug, external_id="PID-1")

    assert res.status_code == 409
    assert res.json()["error"]["code"] == "study_not_open"
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize("body", [b"[" * 3000, b"\xff\xfe{}", b'{"consent": tru'])
def test_api_enrol_bad_json_is_a_parse_error(
    api: ParticipantApi, study: Study, body: bytes
) -> None:
    res = api.client.post(
        f"/api/v1/studies/{study.slug}/enrol", data=body, content_type="application/json"
    )

    assert res.status_code == 400
    assert res.json()["error"]["code"] == "parse_error"
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_api_enrol_unknown_study_is_404(api: ParticipantApi) -> None:
    res = api.enrol("no-such-study")

    assert res.status_code == 404
    assert res.json() == {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}


@pytest.mark.django_db
def test_least_filled_arm_unless_the_link_names_one(study: Study) -> None:
    arms = [study_enrol(study=study).participant.arm.code for _ in range(3)]
    assert arms == ["patients", "controls", "patients"]

    study_enrol(study=study, arm_code="controls")
    study_enrol(study=study, arm_code="controls")
    # patients 2, controls 3: the next unassigned participant goes to patients.
    assert study_enrol(study=study).participant.arm.code == "patients"
    # Withdrawn participants do not count toward the balance.
    Participant.objects.filter(arm__code="patients").update(withdrawn_at="2026-01-01T00:00Z")
    assert study_enrol(study=study).participant.arm.code == "patients"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("wanted", "language"),
    [("fr", "fr"), ("fr-CA", "fr"), ("EN", "en"), ("de", "en"), (None, "en")],
)
def test_language_is_one_the_study_offers(study: Study, wanted: str | None, language: str) -> None:
    enrolment = study_enrol(study=study, language=wanted)

    assert (enrolment.participant.language, enrolment.session.language) == (language, language)


@pytest.mark.django_db
def test_tokens_carry_at_least_128_bits(study: Study) -> None:
    tokens = set()
    for _ in range(20):
        enrolment = study_enrol(study=study)
        for token in (enrolment.participant.token, enrolment.session.token):
            assert TOKEN.match(token), token
            assert len(base64.urlsafe_b64decode(token)) * 8 == 192
            tokens.add(token)
    assert len(tokens) == 40


# --- consent form ------------------------------------------------------------------------


@pytest.mark.django_db
def test_consent_page_in_english_and_french(client: Client, study: Study) -> None:
    en = client.get(f"/s/{study.slug}/")
    fr = client.get(f"/s/{study.slug}/?lang=fr")

    assert en.status_code == fr.status_code == 200
    assert "Consent text." in en.text
    assert "Texte de consentement." not in en.text
    assert '<a href="?lang=fr" lang="fr" hreflang="fr">Français</a>' in en.text
    assert "Texte de consentement." in fr.text
    assert '<input type="hidden" name="lang" value="fr">' in fr.text
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_consent_page_carries_the_recruiter_parameters(client: Client, study: Study) -> None:
    res = client.get(f"/s/{study.slug}/?PROLIFIC_PID=abc123&STUDY_ID=s1&SESSION_ID=x9")

    assert '<input type="hidden" name="PROLIFIC_PID" value="abc123">' in res.text
    assert '<input type="hidden" name="STUDY_ID" value="s1">' in res.text
    assert '<input type="hidden" name="SESSION_ID" value="x9">' in res.text
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize("consent", [None, "", "no", "on"])
def test_consent_form_without_consent_creates_nothing(
    client: Client, study: Study, consent: str | None
) -> None:
    data = {"PROLIFIC_PID": "abc123"}
    if consent is not None:
        data["consent"] = consent

    res = client.post(f"/s/{study.slug}/", data)

    assert res.status_code == 400
    assert 'id="consent-error"' in res.text
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_consent_form_with_consent_redirects_to_the_task(client: Client, study: Study) -> None:
    res = client.post(f"/s/{study.slug}/", {"consent": "yes", "lang": "fr"})

    session = Session.objects.get()
    assert res.status_code == 302
    assert res["Location"] == f"/t/{session.token}/"
    assert (session.language, session.participant.language) == ("fr", "fr")
    assert counts() == (1, 0, 1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "source", "external_id", "params"),
    [
        (
            {"PROLIFIC_PID": "5f1e", "STUDY_ID": "s1", "SESSION_ID": "x9"},
            "prolific",
            "5f1e",
            {"STUDY_ID": "s1", "SESSION_ID": "x9"},
        ),
        ({"participant": "clinic-042"}, "participant", "clinic-042", {}),
        ({"sona_id": "81234"}, "sona", "81234", {}),
        ({"SURVEY_CODE": "55501"}, "sona", "55501", {}),
    ],
)
def test_recruiter_id_is_stored_once(
    client: Client, study: Study, data: dict, source: str, external_id: str, params: dict
) -> None:
    first = client.post(f"/s/{study.slug}/", {**data, "consent": "yes"})
    again = client.post(f"/s/{study.slug}/", {**data, "consent": "yes"})

    # The second submit comes from the same browser (its key cookie): the same participant.
    session = Session.objects.get()
    assert first["Location"] == f"/t/{session.token}/"
    assert again["Location"] == f"/r/{session.participant.token}/"
    identity = ParticipantIdentity.objects.get()
    assert (identity.source, identity.external_id, identity.params) == (
        source,
        external_id,
        params,
    )
    assert identity.participant == session.participant
    assert counts() == (1, 1, 1)


@pytest.mark.django_db
def test_form_and_api_share_the_identity(client: Client, api: ParticipantApi, study: Study) -> None:
    client.post(f"/s/{study.slug}/", {"PROLIFIC_PID": "5f1e", "consent": "yes"})

    res = api.enrol(study.slug, external_id="5f1e")  # same test client: same browser key

    assert res.status_code == 201
    assert res.json()["session_token"] == Session.objects.get().token
    assert counts() == (1, 1, 1)


@pytest.mark.django_db
@pytest.mark.parametrize("placeholder", ["{{%PROLIFIC_PID%}}", "%PROLIFIC_PID%", "  "])
def test_unfilled_recruiter_placeholder_is_not_an_id(
    client: Client, study: Study, placeholder: str
) -> None:
    client.post(f"/s/{study.slug}/", {"PROLIFIC_PID": placeholder, "consent": "yes"})
    client.post(f"/s/{study.slug}/", {"PROLIFIC_PID": placeholder, "consent": "yes"})

    assert counts() == (2, 0, 2)


HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@pytest.mark.django_db
def test_link_to_task_through_the_form_as_a_browser_does(study: Study) -> None:
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(
        f"/s/{study.slug}/?PROLIFIC_PID=5f1e&STUDY_ID=s1&SESSION_ID=x9&arm=controls&lang=fr"
    )
    form = dict(HIDDEN.findall(page.text))
    assert set(form) == {
        "csrfmiddlewaretoken",
        "PROLIFIC_PID",
        "STUDY_ID",
        "SESSION_ID",
        "arm",
        "lang",
    }
    without_token = {k: v for k, v in form.items() if k != "csrfmiddlewaretoken"}
    assert browser.post(f"/s/{study.slug}/", {**without_token, "consent": "yes"}).status_code == 403
    assert counts() == (0, 0, 0)

    res = browser.post(f"/s/{study.slug}/", {**form, "consent": "yes"})

    session = Session.objects.get()
    assert res["Location"] == f"/t/{session.token}/"
    identity = ParticipantIdentity.objects.get()
    assert (identity.source, identity.external_id, identity.params) == (
        "prolific",
        "5f1e",
        {"STUDY_ID": "s1", "SESSION_ID": "x9"},
    )
    assert (session.participant.arm.code, session.language) == ("controls", "fr")


@pytest.mark.django_db
def test_arm_from_the_link(client: Client, study: Study) -> None:
    for _ in range(2):
        client.post(f"/s/{study.slug}/?arm=controls", {"arm": "controls", "consent": "yes"})

    assert list(Participant.objects.values_list("arm__code", flat=True)) == [
        "controls",
        "controls",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("arm", ["nobody", "bad\u0000arm", "x" * 300])
def test_form_unknown_arm_is_400_and_writes_nothing(client: Client, study: Study, arm: str) -> None:
    res = client.post(f"/s/{study.slug}/", {"arm": arm, "consent": "yes", "PROLIFIC_PID": "p1"})

    assert res.status_code == 400
    assert 'role="alert"' in res.text
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_form_survives_nul_characters_in_parameters(client: Client, study: Study) -> None:
    res = client.post(
        f"/s/{study.slug}/",
        {"PROLIFIC_PID": "ab\u0000c", "STUDY_ID": "s\u00001", "consent": "yes"},
    )

    assert res.status_code == 302
    identity = ParticipantIdentity.objects.get()
    assert (identity.external_id, identity.params) == ("abc", {"STUDY_ID": "s1"})


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_closed_study_form_refuses_and_writes_nothing(client: Client, method: str) -> None:
    study = make_study(status="closed")

    res = getattr(client, method)(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": "p"})

    assert res.status_code == 403
    assert "not accepting participants" in res.text
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_unknown_study_form_is_404(client: Client) -> None:
    assert client.get("/s/nothing-here/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_of_one_browser_with_one_id_make_one_participant(study: Study) -> None:
    tokens: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def visit() -> None:
        try:
            barrier.wait()
            tokens.append(
                study_enrol(
                    study=study, external_id="same-id", browser_key=BROWSER_KEY
                ).session.token
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=visit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(set(tokens)) == 1
    assert counts() == (1, 1, 1)
