"""Participant links, the task preview (nothing stored), API tokens, languages."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import translation

from accounts.models import ApiToken
from accounts.services import token_hash
from tests.dashboard.builders import enrol_and_complete
from trials.models import Participant, Response, Session, Study, StudyEventList
from trials.selectors import session_state
from trials.services.enrolment import study_enrol
from trials.ui_strings import task_strings
from trials.views import recruiter_identity

pytestmark = pytest.mark.django_db


def test_links_ready_to_paste(client_as: Callable[[str], Client], study: Study) -> None:
    response = client_as("viewer").get("/dashboard/s/small/links/")
    groups = {g["kind"]: [link["url"] for link in g["links"]] for g in response.context["groups"]}
    base = "http://testserver/s/small/"
    prolific = (
        "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
    )
    assert groups == {
        "generic": [base, f"{base}?arm=patients", f"{base}?arm=controls"],
        "prolific": [
            f"{base}{prolific}",
            f"{base}{prolific}&arm=patients",
            f"{base}{prolific}&arm=controls",
        ],
        "sona": [
            f"{base}?sona_id=%SURVEY_CODE%",
            f"{base}?sona_id=%SURVEY_CODE%&arm=patients",
            f"{base}?sona_id=%SURVEY_CODE%&arm=controls",
        ],
    }
    body = response.content.decode()
    assert body.count('data-copy="link-') == 9
    # Each field is labelled, and each copy button says which link it copies.
    assert '<label class="link-label" for="link-4">' in body


def test_a_filled_prolific_link_enrols_into_its_arm(
    client_as: Callable[[str], Client], study: Study
) -> None:
    response = client_as("viewer").get("/dashboard/s/small/links/")
    url = response.context["groups"][1]["links"][2]["url"]
    filled = (
        url.replace("{{%PROLIFIC_PID%}}", "pid42")
        .replace("{{%STUDY_ID%}}", "st1")
        .replace("{{%SESSION_ID%}}", "se1")
        .replace("http://testserver", "")
    )
    participant_client = Client()
    consent = participant_client.get(filled)
    assert consent.status_code == 200
    # The consent form carries the link's parameters on to the enrolment.
    hidden = consent.context["hidden"]
    assert hidden == {
        "PROLIFIC_PID": "pid42",
        "STUDY_ID": "st1",
        "SESSION_ID": "se1",
        "arm": "controls",
    }
    page = participant_client.post("/s/small/", {**hidden, "consent": "yes"})
    assert page.status_code == 302
    participant = Participant.objects.get(identity__external_id="pid42")
    assert participant.arm.code == "controls"
    assert participant.identity.params == {"STUDY_ID": "st1", "SESSION_ID": "se1"}
    # The unfilled placeholder is not taken for an id.
    assert recruiter_identity({"PROLIFIC_PID": "{{%PROLIFIC_PID%}}"})[0] is None


def test_preview_stores_nothing(client_as: Callable[[str], Client], study: Study) -> None:
    counts = (Participant.objects.count(), Session.objects.count(), Response.objects.count())
    response = client_as("viewer").get("/dashboard/s/small/preview/?lang=fr&list=1")
    assert response.status_code == 200
    # The task page's own settings block: the preview runs task.js itself.
    config = response.context["config"]
    assert {k: config[k] for k in ("token", "api_base", "language")} == {
        "token": "preview",
        "api_base": "/api/v1",
        "language": "fr",
    }
    with translation.override("fr"):
        assert config["strings"] == task_strings()
    preview = response.context["preview"]
    state = preview["state"]
    assert (state["status"], state["language"], state["scale"]) == (
        "created",
        "fr",
        {"min": 3, "max": 77},
    )
    # practice 1 x 2 + block 1 4 x 2 + block 2 4, from list 1 (events B..).
    assert state["progress"] == {"done": 0, "total": 14}
    assert [(s["event"], s["phase"], s["kind"]) for s in state["steps"][:2]] == [
        ("PR1", "e1", "estimate_self"),
        ("PR1", "br", "base_rate"),
    ]
    block1 = [s["event"] for s in state["steps"] if s["block"] == "block1" and s["phase"] == "e1"]
    assert sorted(block1) == ["B01", "B02", "B03", "B04"]
    assert {s["text"] for s in state["steps"] if s["event"] == "B01"} == {"Événement B1"}
    assert all(s["br"] is None for s in state["steps"])
    # What the server answers to E1, in fixed mode: the list's base rate.
    events = StudyEventList.objects.get(study=study, position=1).event_list.events.all()
    assert preview["base_rates"] == {e.code: e.base_rate for e in events}
    assert (preview["base_rate_from"], preview["completion_code"]) == ("e1", "PREVIEW")
    body = response.content.decode()
    assert 'id="task-config"' in body and 'id="preview-state"' in body
    # The stand-in is installed before the task script runs (both deferred, in this order).
    assert body.index("/static/dashboard/preview.js") < body.index("/static/task/task.js")
    assert "Nothing is stored." in body
    assert (
        Participant.objects.count(),
        Session.objects.count(),
        Response.objects.count(),
    ) == counts


def test_preview_state_is_the_state_a_new_session_starts_with(
    client_as: Callable[[str], Client], study: Study
) -> None:
    Study.objects.filter(pk=study.pk).update(
        collect_ebr=True, collect_confidence=True, memory_test=True, ratings=True
    )
    study.refresh_from_db()
    enrolled = study_enrol(study=study, language="en").session
    real = session_state(session=enrolled)
    position = StudyEventList.objects.get(study=study, event_list=enrolled.event_list).position
    response = client_as("viewer").get(f"/dashboard/s/small/preview/?lang=en&list={position}")
    preview = response.context["preview"]["state"]

    assert set(preview) == set(real)
    assert preview["config"] == real["config"]
    assert preview["progress"] == real["progress"] == {"done": 0, "total": 52}

    # The same steps, each as the server describes it; only the random orders differ.
    def described(state: dict[str, Any]) -> list[tuple[Any, ...]]:
        return sorted(tuple(sorted(s.items())) for s in state["steps"])

    assert described(preview) == described(real)


def test_preview_answers_adaptive_base_rates_as_the_server_draws_them(
    client_as: Callable[[str], Client], study: Study
) -> None:
    Study.objects.filter(pk=study.pk).update(
        br_mode=Study.BaseRateMode.ADAPTIVE, adaptive_d_min=6, adaptive_d_max=15
    )
    response = client_as("viewer").get("/dashboard/s/small/preview/?list=0")
    preview = response.context["preview"]
    rates = preview["base_rates"]
    first = StudyEventList.objects.get(study=study, position=0).event_list
    assert rates["PR1"] == first.events.get(code="PR1").base_rate
    main = [code for code in rates if code != "PR1"]
    assert sorted(main) == ["A01", "A02", "A03", "A04"]
    directions = []
    for code in main:
        # One base rate per possible E1 (3..77), each 6..15 away from it and on the scale.
        assert len(rates[code]) == 75
        gaps = [br - e1 for e1, br in zip(range(3, 78), rates[code], strict=True)]
        assert all(6 <= abs(gap) <= 15 for gap in gaps)
        assert all(3 <= br <= 77 for br in rates[code])
        # Planned good news (BR below E1) or bad news wherever the scale leaves room.
        directions.append(gaps[40] < 0)
    assert sorted(directions) == [False, False, True, True]


def test_tokens_create_show_once_and_revoke(
    client_as: Callable[[str], Client], users: dict[str, User]
) -> None:
    client = client_as("analyst")
    response = client.post(
        "/dashboard/tokens/", {"name": "R analysis", "scope": "read", "expires_days": "30"}
    )
    assert response.status_code == 200
    key = response.context["new_key"]
    token = ApiToken.objects.get(user=users["analyst"])
    assert token.key_hash == token_hash(key)
    assert (token.name, token.scope, token.prefix) == ("R analysis", "read", key[:8])
    assert token.expires_at is not None
    assert key in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    # Shown once: the list shows the prefix only.
    listing = client.get("/dashboard/tokens/").content.decode()
    assert key not in listing and f"{token.prefix}…" in listing
    # The token works on the API.
    api = Client().get("/api/v1/studies/", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.status_code == 200
    # Another researcher cannot revoke it.
    assert client_as("viewer").post(f"/dashboard/tokens/{token.pk}/revoke/").status_code == 404
    assert client.post(f"/dashboard/tokens/{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert Client().get("/api/v1/studies/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401


def test_bad_token_input_is_refused(
    client_as: Callable[[str], Client], users: dict[str, User]
) -> None:
    response = client_as("analyst").post(
        "/dashboard/tokens/", {"scope": "admin", "expires_days": "0"}
    )
    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"scope", "expires_days"}
    assert not ApiToken.objects.exists()


def test_french(client_as: Callable[[str], Client], study: Study) -> None:
    enrol_and_complete(study, external_id="x")
    client = client_as("owner")
    response = client.post(
        "/dashboard/language/", {"language": "fr", "next": "/dashboard/s/small/"}
    )
    assert response.status_code == 302
    for url, text in (
        ("/dashboard/", "Vos études"),
        ("/dashboard/s/small/", "Entonnoir par bras et temps de mesure"),
        ("/dashboard/s/small/results/", "Vue d'ensemble"),
    ):
        page = client.get(url)
        assert page.status_code == 200
        body = page.content.decode()
        assert '<html lang="fr">' in body
        assert text.replace("'", "&#x27;") in body or text in body, (url, text)
    # The charts' labels travel in French too.
    labels = client.get("/dashboard/s/small/results/").context["chart_data"]["labels"]
    assert labels["good"] != "good news"


def test_forms_are_labelled(client_as: Callable[[str], Client], study: Study) -> None:
    """Every visible input, select and textarea of the setup pages has a label."""
    import re

    client = client_as("owner")
    for url in (
        "/dashboard/new/",
        "/dashboard/s/small/setup/",
        "/dashboard/s/small/setup/design/",
        "/dashboard/s/small/setup/lists/",
        "/dashboard/s/small/setup/members/",
        "/dashboard/s/small/sessions/",
        "/dashboard/tokens/",
    ):
        body = client.get(url).content.decode()
        ids = re.findall(
            r'<(?:input|select|textarea)(?![^>]*type="(?:hidden|submit)")[^>]*\sid="([^"]+)"', body
        )
        assert ids, url
        for element_id in ids:
            assert f'for="{element_id}"' in body, (url, element_id)
