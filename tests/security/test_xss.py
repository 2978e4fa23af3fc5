"""Script in every researcher-editable text is shown as text, never run: in a real Chromium,
on the consent page, the task (event texts, debrief) and the dashboard."""

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import Browser, Page, Response, expect

from tests.dashboard.builders import member
from tests.e2e.conftest import TaskRobot
from trials.models import Event, Participant, Study, StudyEventList

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PAYLOAD = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


def marked(where: str) -> str:
    """The payload with the name of the field it sits in, to see which text is shown where."""
    return f"{PAYLOAD} [{where}]"


@pytest.fixture
def hostile_study(small_study: Callable[..., Study]) -> Study:
    study = small_study(n_events=1, n_practice=1, show_debrief=True, languages=["en", "fr"])
    study.title = marked("title")
    study.consent_text = {"en": marked("consent en"), "fr": marked("consent fr")}
    study.debrief_text = {"en": marked("debrief en"), "fr": marked("debrief fr")}
    study.save()
    lists = StudyEventList.objects.filter(study=study).values_list("event_list_id", flat=True)
    for event in Event.objects.filter(event_list_id__in=list(lists)):
        event.texts = {"en": marked(f"{event.code} en"), "fr": marked(f"{event.code} fr")}
        event.save()
    return study


def assert_inert(page: Page, response: Response | None) -> None:
    """No payload ran, no <img> from the payload exists, and the policy came with the page."""
    assert response is not None and response.status < 400, response
    assert "script-src 'self'" in (response.headers.get("content-security-policy") or "")
    page.wait_for_timeout(100)  # an onerror handler runs once the image fails
    assert page.evaluate("() => typeof window.__xss") == "undefined"
    assert page.locator("img[src=x]").count() == 0


def test_consent_pages_show_the_payload_as_text(
    browser: Browser, live_server: Any, hostile_study: Study
) -> None:
    page = browser.new_context().new_page()
    for lang in ("en", "fr"):
        response = page.goto(f"{live_server.url}/s/{hostile_study.slug}/?lang={lang}")
        assert_inert(page, response)
        expect(page.locator("h1")).to_have_text(marked("title"))
        expect(page.locator(".consent")).to_have_text(marked(f"consent {lang}"))
        assert page.title() == marked("title")


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_task_shows_event_and_debrief_texts_as_text(
    browser: Browser, live_server: Any, hostile_study: Study, lang: str
) -> None:
    page = browser.new_context().new_page()
    response = page.goto(f"{live_server.url}/s/{hostile_study.slug}/?lang={lang}&PROLIFIC_PID=x")
    assert_inert(page, response)
    page.locator("#consent").check()
    with page.expect_navigation():
        page.locator("#start").click()
    token = page.url.rstrip("/").rsplit("/", 1)[-1]
    task = page.goto(f"{live_server.url}/t/{token}/")
    assert_inert(page, task)
    bot = TaskRobot(page)
    shown: dict[str, str] = {}

    def note(kind: str, step: tuple[str, str] | None) -> bool:
        if kind == "estimate" and step is not None and step[0] not in shown:
            shown[step[0]] = page.locator(".belief-event-text").inner_text()
        heading = page.locator("#task-stage h1")
        if (
            kind == "page"
            and heading.count()
            and heading.first.inner_text()
            in (
                "About this study",
                "À propos de cette étude",
            )
        ):
            shown["debrief"] = page.locator("#task-stage .belief-page").inner_text()
        return False

    assert bot.run(stop=note) == "complete"
    assert shown.keys() >= {"PR1", "A01"}
    for code in ("PR1", "A01"):
        assert shown[code] == marked(f"{code} {lang}")
    assert marked(f"debrief {lang}") in shown.get("debrief", ""), shown
    assert page.title() == marked("title")
    assert page.evaluate("() => typeof window.__xss") == "undefined"
    assert page.locator("img[src=x]").count() == 0


def test_dashboard_pages_show_the_payload_as_text(
    browser: Browser, live_server: Any, hostile_study: Study
) -> None:
    member(hostile_study, "owner", username="owner")
    # A participant's own text reaches the dashboard too: the recruiter id of the link.
    enrolled = Client().post(
        f"/s/{hostile_study.slug}/",
        {"consent": "yes", "PROLIFIC_PID": marked("pid"), "STUDY_ID": marked("param")},
    )
    assert enrolled.status_code == 302
    participant = Participant.objects.get(study=hostile_study)
    page = browser.new_context().new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.locator("input[name=username]").fill("owner")
    page.locator("input[name=password]").fill("pw")
    with page.expect_navigation():
        page.locator("form.stacked button[type=submit]").click()
    slug = hostile_study.slug
    for path in (
        "/dashboard/",
        f"/dashboard/s/{slug}/",
        f"/dashboard/s/{slug}/results/",
        f"/dashboard/s/{slug}/quality/",
        f"/dashboard/s/{slug}/sessions/",
        f"/dashboard/s/{slug}/links/",
        f"/dashboard/s/{slug}/preview/",
        f"/dashboard/s/{slug}/setup/",
        f"/dashboard/s/{slug}/setup/lists/",
        f"/dashboard/s/{slug}/participants/{participant.pk}/",
    ):
        response = page.goto(live_server.url + path)
        assert_inert(page, response)
        assert marked("title") in page.locator("body").inner_text(), path
    assert marked("pid") in page.locator("body").inner_text()  # shown, as text
