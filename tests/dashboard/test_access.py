"""Who reaches which page: login, membership (404 for others), roles (403 below)."""

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from dashboard.models import Withdrawal
from tests.dashboard.builders import enrol_and_complete
from trials.models import Participant, Response, Study

pytestmark = pytest.mark.django_db


def study_urls(slug: str, participant: int = 1) -> dict[str, str]:
    base = f"/dashboard/s/{slug}"
    return {
        "overview": f"{base}/",
        "overview-json": f"{base}/overview.json",
        "quality": f"{base}/quality/",
        "results": f"{base}/results/",
        "model-json": f"{base}/results/model.json",
        "links": f"{base}/links/",
        "preview": f"{base}/preview/",
        "design": f"{base}/setup/design/",
        "lists": f"{base}/setup/lists/",
        "sessions": f"{base}/sessions/",
        "participant": f"{base}/participants/{participant}/",
        "withdraw": f"{base}/participants/{participant}/withdraw/",
        "settings": f"{base}/setup/",
        "members": f"{base}/setup/members/",
    }


VIEWER_PAGES = (
    "overview",
    "overview-json",
    "quality",
    "results",
    "model-json",
    "links",
    "preview",
    "design",
    "lists",
)
ANALYST_PAGES = ("sessions", "participant", "withdraw")
OWNER_PAGES = ("settings", "members")


def test_login_required_everywhere(study: Study) -> None:
    client = Client()
    for url in [
        "/dashboard/",
        "/dashboard/new/",
        "/dashboard/tokens/",
        *study_urls("small").values(),
    ]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url


def test_login_page_logs_in_and_lands_on_the_study_list(
    users: dict[str, User], study: Study
) -> None:
    client = Client()
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'<label for="id_username">' in page.content
    response = client.post(
        "/accounts/login/", {"username": "owner-small", "password": "pw", "next": "/dashboard/"}
    )
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200


def test_another_study_is_404_for_a_non_member(
    client_as: Callable[[str], Client], study: Study
) -> None:
    session = enrol_and_complete(study, external_id="x1")
    outsider = client_as("outsider")
    for name, url in study_urls("small", session.participant_id).items():
        assert outsider.get(url).status_code == 404, name
    # The same as a study that does not exist at all.
    assert outsider.get("/dashboard/s/no-such-study/").status_code == 404
    # Writes too, and nothing changes.
    assert outsider.post(study_urls("small")["settings"], {"title": "x"}).status_code == 404
    assert (
        outsider.post("/dashboard/s/small/setup/status/", {"status": "closed"}).status_code == 404
    )
    study.refresh_from_db()
    assert study.status == "open"


def test_viewer_sees_aggregates_and_cannot_reach_trial_level_pages(
    client_as: Callable[[str], Client], study: Study
) -> None:
    session = enrol_and_complete(study, external_id="x1")
    viewer = client_as("viewer")
    urls = study_urls("small", session.participant_id)
    for name in VIEWER_PAGES:
        assert viewer.get(urls[name]).status_code == 200, name
    for name in (*ANALYST_PAGES, *OWNER_PAGES):
        assert viewer.get(urls[name]).status_code == 403, name
    # A withdrawal posted by a viewer is refused and deletes nothing.
    n_responses = Response.objects.count()
    assert viewer.post(urls["withdraw"], {"confirm": "on"}).status_code == 403
    assert Response.objects.count() == n_responses > 0
    assert not Withdrawal.objects.exists()
    assert Participant.objects.get(pk=session.participant_id).withdrawn_at is None
    # No link to trial-level pages or exports on the pages a viewer sees.
    for name in ("overview", "results", "quality"):
        body = viewer.get(urls[name]).content.decode()
        assert f"/participants/{session.participant_id}/" not in body, name
        assert "/api/v1/studies/small/trials/" not in body, name
        assert "/sessions/" not in body, name
    # The overview's JSON has counts, no per-participant rows.
    data = viewer.get(urls["overview-json"]).json()
    assert "in_progress" not in data and "opening_today" not in data
    assert data["totals"]["completed"] == 1


def test_analyst_reaches_data_but_not_setup(
    client_as: Callable[[str], Client], study: Study
) -> None:
    session = enrol_and_complete(study, external_id="x1")
    analyst = client_as("analyst")
    urls = study_urls("small", session.participant_id)
    for name in (*VIEWER_PAGES, *ANALYST_PAGES):
        assert analyst.get(urls[name]).status_code == 200, name
    for name in OWNER_PAGES:
        assert analyst.get(urls[name]).status_code == 403, name
    assert (
        analyst.post(
            urls["design"], {"action": "add_arm", "arm-code": "x", "arm-name": "X"}
        ).status_code
        == 403
    )
    assert study.arms.count() == 2
    body = analyst.get(urls["overview"]).content.decode()
    assert "/api/v1/studies/small/trials/?format=csv" in body
    assert "/api/v1/studies/small/trials/?format=parquet" in body
    assert "/api/v1/studies/small/codebook/" in body


def test_owner_reaches_every_page(client_as: Callable[[str], Client], study: Study) -> None:
    session = enrol_and_complete(study, external_id="x1")
    owner = client_as("owner")
    for name, url in study_urls("small", session.participant_id).items():
        assert owner.get(url).status_code == 200, name


def test_unknown_participant_is_404(
    client_as: Callable[[str], Client], study: Study, users: dict[str, User]
) -> None:
    other = Study.objects.get(slug="other")
    stranger = enrol_and_complete(other, external_id="y1")
    analyst = client_as("analyst")
    # A participant of another study, through this study's URL.
    assert (
        analyst.get(f"/dashboard/s/small/participants/{stranger.participant_id}/").status_code
        == 404
    )
    assert analyst.get("/dashboard/s/small/participants/999999/").status_code == 404
