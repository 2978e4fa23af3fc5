"""Study setup without code: each write works, and bad input is refused with the field
named and nothing saved."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import AuditEntry
from tests.dashboard.builders import enrol_and_complete
from trials.models import (
    Arm,
    Event,
    EventList,
    Study,
    StudyEventList,
    StudyMembership,
    Timepoint,
)

pytestmark = pytest.mark.django_db

GOOD_CSV = (
    "code,text_en,text_fr,base_rate,source,practice\n"
    "P1,Losing your keys,Perdre ses clés,60,illustrative,1\n"
    "E1,Having a heart attack,Faire une crise cardiaque,30,illustrative,0\n"
    "E2,Breaking a leg,Se casser la jambe,40,illustrative,0\n"
)


def study_post(**overrides: Any) -> dict[str, Any]:
    """A complete, valid study form."""
    data: dict[str, Any] = {
        "slug": "ketamine",
        "title": "Ketamine and belief updating",
        "description": "",
        "languages": ["en", "fr"],
        "consent_text_en": "Consent.",
        "consent_text_fr": "Consentement.",
        "debrief_text_en": "",
        "debrief_text_fr": "",
        "scale_min": 3,
        "scale_max": 77,
        "br_mode": "fixed",
        "adaptive_d_min": 6,
        "adaptive_d_max": 15,
        "min_br_view_ms": 2000,
        "min_valid_per_valence": 5,
        "completion_code": "",
        "redirect_url": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def form_errors(response: Any, form: str = "form") -> dict[str, list[str]]:
    return {k: list(v) for k, v in response.context[form].errors.items()}


# ---------------------------------------------------------------- studies


def test_create_a_study_with_every_setting(client_as: Callable[[str], Client]) -> None:
    client = client_as("viewer")  # any researcher may create a study and owns it
    response = client.post(
        "/dashboard/new/",
        study_post(
            collect_ebr="on",
            collect_confidence="on",
            memory_test="on",
            ratings="on",
            show_debrief="on",
            br_mode="adaptive",
            scale_min=5,
            scale_max=95,
            completion_code="C0DE-1",
            redirect_url="https://app.prolific.com/submissions/complete?cc={completion_code}",
            debrief_text_fr="Merci.",
        ),
    )
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/s/ketamine/setup/design/"
    study = Study.objects.get(slug="ketamine")
    assert study.status == Study.Status.PAUSED
    assert (study.scale_min, study.scale_max, study.br_mode) == (5, 95, "adaptive")
    assert (study.collect_ebr, study.collect_confidence, study.memory_test, study.ratings) == (
        True,
        True,
        True,
        True,
    )
    assert study.show_debrief is True
    assert study.consent_text == {"en": "Consent.", "fr": "Consentement."}
    assert study.debrief_text == {"fr": "Merci."}
    assert study.completion_code == "C0DE-1"
    assert study.redirect_url.endswith("?cc={completion_code}")
    membership = StudyMembership.objects.get(study=study)
    assert (membership.user.username, membership.role) == ("viewer-small", "owner")
    assert AuditEntry.objects.filter(action="study.create", study="ketamine").count() == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"slug": "small"}, "slug"),  # taken
        ({"slug": "not a slug"}, "slug"),
        ({"title": ""}, "title"),
        ({"scale_min": 50, "scale_max": 40}, "scale_max"),
        ({"scale_max": 101}, "scale_max"),
        ({"adaptive_d_min": 10, "adaptive_d_max": 5}, "adaptive_d_max"),
        ({"br_mode": "adaptive", "scale_min": 40, "scale_max": 50}, "adaptive_d_min"),
        ({"consent_text_fr": ""}, "consent_text_fr"),
        ({"languages": None}, "languages"),
        ({"redirect_url": "not a url with spaces"}, "redirect_url"),
        ({"completion_code": "no spaces!"}, "completion_code"),
        ({"lr_max": 3}, "lr_max"),
        ({"lr_max": 0}, "lr_max"),
    ],
)
def test_bad_study_settings_are_refused_with_the_field_named(
    client_as: Callable[[str], Client], overrides: dict[str, Any], field: str
) -> None:
    before = Study.objects.count()
    response = client_as("owner").post("/dashboard/new/", study_post(**overrides))
    assert response.status_code == 400
    assert field in form_errors(response)
    assert Study.objects.count() == before
    assert not StudyMembership.objects.filter(study__slug="ketamine").exists()
    assert b"Nothing was saved" in response.content


def settings_post(study: Study, **overrides: Any) -> dict[str, Any]:
    data = study_post(**{"title": study.title, **overrides})
    data.pop("slug")
    return data


def test_edit_settings(client_as: Callable[[str], Client], study: Study) -> None:
    response = client_as("owner").post(
        "/dashboard/s/small/setup/", settings_post(study, title="Renamed", scale_min=10)
    )
    assert response.status_code == 302
    study.refresh_from_db()
    assert (study.title, study.scale_min) == ("Renamed", 10)
    assert (study.lr_max, study.resume_by_external_id) == (1.0, False)


def test_the_learning_rate_bound_and_resume_by_id_are_study_settings(
    client_as: Callable[[str], Client], study: Study
) -> None:
    response = client_as("owner").post(
        "/dashboard/s/small/setup/",
        settings_post(study, lr_max="1.5", resume_by_external_id="on"),
    )
    assert response.status_code == 302
    study.refresh_from_db()
    assert (study.lr_max, study.resume_by_external_id) == (1.5, True)


def test_a_scale_that_excludes_the_lists_base_rates_is_refused(
    client_as: Callable[[str], Client], study: Study
) -> None:
    # The lists' base rates run from 20 to 50 (events 20, 30, 40, 50; practice 50).
    response = client_as("owner").post(
        "/dashboard/s/small/setup/", settings_post(study, scale_min=25, scale_max=45, title="X")
    )
    assert response.status_code == 400
    errors = form_errors(response)
    assert "below the scale's 25%" in errors["scale_min"][0]
    assert "above the scale's 45%" in errors["scale_max"][0]
    study.refresh_from_db()
    assert (study.title, study.scale_min, study.scale_max) == ("Small study", 3, 77)


def test_settings_that_shape_sessions_are_locked_once_sessions_exist(
    client_as: Callable[[str], Client], study: Study
) -> None:
    enrol_and_complete(study, external_id="p1")
    owner = client_as("owner")
    page = owner.get("/dashboard/s/small/setup/")
    assert page.context["form"].fields["scale_min"].disabled
    assert page.context["form"].fields["collect_ebr"].disabled
    # A forged post changes nothing locked: disabled fields keep their stored value.
    response = owner.post(
        "/dashboard/s/small/setup/",
        settings_post(study, title="New", scale_min=10, collect_ebr="on"),
    )
    assert response.status_code == 302
    study.refresh_from_db()
    assert (study.title, study.scale_min, study.collect_ebr) == ("New", 3, False)


def test_the_service_refuses_locked_changes_too(study: Study) -> None:
    from trials.services.errors import InvalidInput
    from trials.services.study_setup import study_update

    enrol_and_complete(study, external_id="p1")
    values = {k: getattr(study, k) for k in ("title", "description", "languages")}
    values.update(
        consent_text=study.consent_text,
        debrief_text=study.debrief_text,
        scale_min=3,
        scale_max=77,
        br_mode="adaptive",
        adaptive_d_min=6,
        adaptive_d_max=15,
        collect_ebr=False,
        collect_confidence=False,
        memory_test=False,
        ratings=False,
        show_debrief=False,
        min_br_view_ms=100,
        min_valid_per_valence=5,
        completion_code="",
        redirect_url="",
    )
    with pytest.raises(InvalidInput) as refused:
        study_update(study=study, actor=None, values=values)
    assert list(refused.value.fields) == ["br_mode"]
    study.refresh_from_db()
    assert study.br_mode == "fixed"


# ---------------------------------------------------------------- status


def test_open_pause_close(client_as: Callable[[str], Client], study: Study) -> None:
    owner = client_as("owner")
    for status in ("paused", "closed", "open"):
        response = owner.post("/dashboard/s/small/setup/status/", {"status": status})
        assert response.status_code == 302
        study.refresh_from_db()
        assert study.status == status
    assert AuditEntry.objects.filter(action="study.status").count() == 3


def test_a_study_missing_its_lists_cannot_open(
    client_as: Callable[[str], Client], study: Study
) -> None:
    Study.objects.filter(pk=study.pk).update(status="paused")
    StudyEventList.objects.filter(study=study, position=1).delete()
    response = client_as("owner").post(
        "/dashboard/s/small/setup/status/", {"status": "open"}, follow=True
    )
    messages = [str(m) for m in response.context["messages"]]
    assert messages == ["Each timepoint needs its own list: 2 timepoints, 1 lists attached."]
    study.refresh_from_db()
    assert study.status == "paused"


def test_only_owners_change_the_status(client_as: Callable[[str], Client], study: Study) -> None:
    assert (
        client_as("analyst")
        .post("/dashboard/s/small/setup/status/", {"status": "closed"})
        .status_code
        == 403
    )
    study.refresh_from_db()
    assert study.status == "open"


# ---------------------------------------------------------------- arms and timepoints


def test_add_edit_and_remove_an_arm(client_as: Callable[[str], Client], study: Study) -> None:
    owner = client_as("owner")
    response = owner.post(
        "/dashboard/s/small/setup/design/",
        {"action": "add_arm", "arm-code": "ketamine", "arm-name": "Ketamine"},
    )
    assert response.status_code == 302
    arm = Arm.objects.get(study=study, code="ketamine")
    assert arm.name == "Ketamine"
    response = owner.post(
        f"/dashboard/s/small/setup/arms/{arm.pk}/", {"code": "ket", "name": "Ketamine 0.5 mg/kg"}
    )
    assert response.status_code == 302
    arm.refresh_from_db()
    assert (arm.code, arm.name) == ("ket", "Ketamine 0.5 mg/kg")
    assert owner.post(f"/dashboard/s/small/setup/arms/{arm.pk}/delete/").status_code == 302
    assert not Arm.objects.filter(pk=arm.pk).exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"arm-code": "x", "arm-name": ""}, "name"),
        ({"arm-code": "x", "arm-name": "   "}, "name"),
        ({"arm-code": "patients", "arm-name": "Again"}, "code"),
        ({"arm-code": "bad code", "arm-name": "X"}, "code"),
    ],
)
def test_bad_arms_are_refused(
    client_as: Callable[[str], Client], study: Study, data: dict[str, str], field: str
) -> None:
    response = client_as("owner").post(
        "/dashboard/s/small/setup/design/", {"action": "add_arm", **data}
    )
    assert response.status_code == 400
    assert field in form_errors(response, "arm_form")
    assert Arm.objects.filter(study=study).count() == 2


def test_an_arm_with_participants_keeps_its_code_and_stays(
    client_as: Callable[[str], Client], study: Study
) -> None:
    session = enrol_and_complete(study, external_id="p1", arm="patients")
    arm = session.participant.arm
    owner = client_as("owner")
    response = owner.post(f"/dashboard/s/small/setup/arms/{arm.pk}/", {"code": "pts", "name": "P"})
    assert response.status_code == 400
    assert "code" in form_errors(response)
    owner.post(f"/dashboard/s/small/setup/arms/{arm.pk}/delete/")
    arm.refresh_from_db()
    assert arm.code == "patients"


def test_add_a_timepoint_with_its_window(client_as: Callable[[str], Client], study: Study) -> None:
    response = client_as("owner").post(
        "/dashboard/s/small/setup/design/",
        {
            "action": "add_timepoint",
            "tp-label": "+7 days",
            "tp-opens_value": "7",
            "tp-opens_unit": "days",
            "tp-closes_value": "240",
            "tp-closes_unit": "hours",
        },
    )
    assert response.status_code == 302
    timepoint = Timepoint.objects.get(study=study, label="+7 days")
    assert timepoint.order == 2
    assert (timepoint.opens_after, timepoint.closes_after) == (
        timedelta(days=7),
        timedelta(days=10),
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (
            {
                "tp-opens_value": "7",
                "tp-opens_unit": "days",
                "tp-closes_value": "3",
                "tp-closes_unit": "days",
            },
            "closes_value",
        ),
        (
            {
                "tp-opens_value": "12",
                "tp-opens_unit": "hours",
                "tp-closes_value": "720",
                "tp-closes_unit": "minutes",
            },
            "closes_value",
        ),
        ({"tp-label": "", "tp-opens_value": "1", "tp-opens_unit": "days"}, "label"),
        ({"tp-opens_value": "-1", "tp-opens_unit": "days"}, "opens_value"),
    ],
)
def test_bad_windows_are_refused(
    client_as: Callable[[str], Client], study: Study, data: dict[str, str], field: str
) -> None:
    post = {"action": "add_timepoint", "tp-label": "later", "tp-closes_unit": "hours", **data}
    response = client_as("owner").post("/dashboard/s/small/setup/design/", post)
    assert response.status_code == 400
    assert field in form_errors(response, "timepoint_form")
    assert Timepoint.objects.filter(study=study).count() == 2


def test_editing_a_window_so_that_it_closes_before_it_opens_is_refused(
    client_as: Callable[[str], Client], study: Study
) -> None:
    timepoint = Timepoint.objects.get(study=study, order=1)
    response = client_as("owner").post(
        f"/dashboard/s/small/setup/timepoints/{timepoint.pk}/",
        {
            "label": "T1",
            "opens_value": "2",
            "opens_unit": "days",
            "closes_value": "1",
            "closes_unit": "days",
        },
    )
    assert response.status_code == 400
    assert form_errors(response) == {"closes_value": ["The window closes before it opens."]}
    timepoint.refresh_from_db()
    assert (timepoint.opens_after, timepoint.closes_after) == (
        timedelta(hours=4),
        timedelta(hours=12),
    )


# ---------------------------------------------------------------- event lists


def test_import_a_list_from_csv_and_attach_it(
    client_as: Callable[[str], Client], study: Study
) -> None:
    StudyEventList.objects.filter(study=study).delete()
    response = client_as("owner").post(
        "/dashboard/s/small/setup/lists/",
        {"action": "import", "imp-name": "my list", "imp-text": GOOD_CSV},
    )
    assert response.status_code == 302
    event_list = EventList.objects.get(name="my list")
    assert list(
        Event.objects.filter(event_list=event_list).values_list("code", "base_rate", "practice")
    ) == [
        ("P1", 60, True),
        ("E1", 30, False),
        ("E2", 40, False),
    ]
    assert list(
        StudyEventList.objects.filter(study=study).values_list("event_list__name", "position")
    ) == [("my list", 0)]


def test_an_uploaded_csv_file_works_too(client_as: Callable[[str], Client], study: Study) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    StudyEventList.objects.filter(study=study).delete()
    upload = SimpleUploadedFile("list.csv", ("\ufeff" + GOOD_CSV).encode(), "text/csv")
    response = client_as("owner").post(
        "/dashboard/s/small/setup/lists/",
        {"action": "import", "imp-name": "uploaded", "imp-file": upload},
    )
    assert response.status_code == 302
    assert EventList.objects.get(name="uploaded").events.count() == 3


def test_a_csv_with_bad_rows_lists_every_error_and_saves_nothing(
    client_as: Callable[[str], Client], study: Study
) -> None:
    bad = (
        "code,text_en,base_rate,practice\n"
        "E1,Fine,30,0\n"
        "E1,Duplicate code,30,0\n"
        ",No code,30,0\n"
        "E4,,30,0\n"
        "E5,Not a number,abc,0\n"
        "E6,Not a percentage,130,maybe\n"
    )
    lists_before = EventList.objects.count()
    response = client_as("owner").post(
        "/dashboard/s/small/setup/lists/", {"action": "import", "imp-name": "bad", "imp-text": bad}
    )
    assert response.status_code == 400
    rows = [(e.row, e.column, e.message) for e in response.context["row_errors"]]
    assert rows == [
        (3, "code", "duplicate of row 2"),
        (4, "code", "empty"),
        (5, "text_en", "empty"),
        (6, "base_rate", "'abc' is not a whole number"),
        (7, "base_rate", "130 is not a percentage"),
        (7, "practice", "'maybe' is not 0 or 1"),
    ]
    body = response.content.decode()
    assert "duplicate of row 2" in body and "&#x27;maybe&#x27; is not 0 or 1" in body
    assert "file" in form_errors(response, "import_form")
    assert EventList.objects.count() == lists_before
    assert not EventList.objects.filter(name="bad").exists()


def test_a_list_whose_base_rates_fall_outside_the_scale_is_not_imported(
    client_as: Callable[[str], Client], study: Study
) -> None:
    Study.objects.filter(pk=study.pk).update(scale_min=35)
    response = client_as("owner").post(
        "/dashboard/s/small/setup/lists/",
        {"action": "import", "imp-name": "too low", "imp-text": GOOD_CSV},
    )
    assert response.status_code == 400
    errors = form_errors(response, "import_form")
    assert errors["file"] == ["List 'too low' has a base rate of 30%, below the scale's 35%."]
    # The import and the attachment are one transaction: the list is not left behind.
    assert not EventList.objects.filter(name="too low").exists()
    assert StudyEventList.objects.filter(study=study).count() == 2


def test_lists_cannot_change_once_sessions_exist(
    client_as: Callable[[str], Client], study: Study
) -> None:
    enrol_and_complete(study, external_id="p1")
    owner = client_as("owner")
    response = owner.post(
        "/dashboard/s/small/setup/lists/",
        {"action": "import", "imp-name": "late", "imp-text": GOOD_CSV},
    )
    assert response.status_code == 400
    assert "Sessions have started" in form_errors(response, "import_form")["file"][0]
    assert not EventList.objects.filter(name="late").exists()
    first = StudyEventList.objects.get(study=study, position=0)
    owner.post(
        "/dashboard/s/small/setup/lists/", {"action": "detach", "event_list": first.event_list_id}
    )
    assert StudyEventList.objects.filter(study=study).count() == 2


def test_attach_and_detach_renumber_the_latin_square(
    client_as: Callable[[str], Client], study: Study
) -> None:
    owner = client_as("owner")
    spare = EventList.objects.create(name="spare", owner_study=study)  # a list of its own
    Event.objects.create(event_list=spare, code="S1", texts={"en": "x"}, base_rate=30)
    assert (
        owner.post(
            "/dashboard/s/small/setup/lists/", {"action": "attach", "att-event_list": spare.pk}
        ).status_code
        == 302
    )
    first = StudyEventList.objects.get(study=study, position=0).event_list_id
    assert (
        owner.post(
            "/dashboard/s/small/setup/lists/", {"action": "detach", "event_list": first}
        ).status_code
        == 302
    )
    positions = list(
        StudyEventList.objects.filter(study=study)
        .order_by("position")
        .values_list("position", "event_list__name")
    )
    assert [p for p, _ in positions] == [0, 1]
    assert positions[-1][1] == "spare"


# ---------------------------------------------------------------- members


def test_owner_manages_members(
    client_as: Callable[[str], Client], study: Study, users: dict[str, User]
) -> None:
    owner = client_as("owner")
    response = owner.post(
        "/dashboard/s/small/setup/members/",
        {"action": "add", "add-username": "outsider", "add-role": "analyst"},
    )
    assert response.status_code == 302
    membership = StudyMembership.objects.get(study=study, user__username="outsider")
    assert membership.role == "analyst"
    owner.post(
        "/dashboard/s/small/setup/members/",
        {"action": "role", "membership": membership.pk, "role": "viewer"},
    )
    membership.refresh_from_db()
    assert membership.role == "viewer"
    owner.post(
        "/dashboard/s/small/setup/members/", {"action": "remove", "membership": membership.pk}
    )
    assert not StudyMembership.objects.filter(pk=membership.pk).exists()
    # Now the outsider gets a 404 again.
    outsider = Client()
    outsider.force_login(users["outsider"])
    assert outsider.get("/dashboard/s/small/").status_code == 404


def test_unknown_username_is_refused(client_as: Callable[[str], Client], study: Study) -> None:
    response = client_as("owner").post(
        "/dashboard/s/small/setup/members/",
        {"action": "add", "add-username": "nobody", "add-role": "viewer"},
    )
    assert response.status_code == 400
    assert form_errors(response) == {"username": ["No account has this username."]}
    assert StudyMembership.objects.filter(study=study).count() == 3


def test_the_last_owner_stays(client_as: Callable[[str], Client], study: Study) -> None:
    owner = client_as("owner")
    mine = StudyMembership.objects.get(study=study, role="owner")
    owner.post(
        "/dashboard/s/small/setup/members/",
        {"action": "role", "membership": mine.pk, "role": "viewer"},
    )
    owner.post("/dashboard/s/small/setup/members/", {"action": "remove", "membership": mine.pk})
    mine.refresh_from_db()
    assert mine.role == "owner"


def test_title_and_description_per_language(
    client_as: Callable[[str], Client], study: Study
) -> None:
    """Saved per language like the consent text; blank ones fall back to the study's own."""
    owner = client_as("owner")
    page = owner.get("/dashboard/s/small/setup/").content.decode()
    assert 'name="title_fr"' in page and 'name="description_fr"' in page
    response = owner.post(
        "/dashboard/s/small/setup/",
        settings_post(
            study,
            title_fr="Petite étude",
            title_en="",
            description_fr="Pour les chercheurs.",
            description_en="",
        ),
    )
    assert response.status_code == 302
    study.refresh_from_db()
    assert (study.title, study.title_texts) == ("Small study", {"fr": "Petite étude"})
    assert study.description_texts == {"fr": "Pour les chercheurs."}
    assert (study.title_in("fr"), study.title_in("en")) == ("Petite étude", "Small study")
    form = owner.get("/dashboard/s/small/setup/").context["form"]
    assert (form.initial["title_fr"], form.initial["title_en"]) == ("Petite étude", "")
    # Too long a title in one language: refused with the field named, nothing saved.
    response = owner.post(
        "/dashboard/s/small/setup/", settings_post(study, title_fr="x" * 201, title="Renamed")
    )
    assert response.status_code == 400
    assert list(form_errors(response)) == ["title_fr"]
    study.refresh_from_db()
    assert (study.title, study.title_texts) == ("Small study", {"fr": "Petite étude"})
    # The API keeps `title` and `description` as they were, and adds the per-language texts.
    api = owner.get("/api/v1/studies/small/").json()
    assert (api["title"], api["title_texts"]) == ("Small study", {"fr": "Petite étude"})
    assert (api["description"], api["description_texts"]) == (
        "",
        {"fr": "Pour les chercheurs."},
    )
