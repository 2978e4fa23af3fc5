"""The reminders' e-mail field on the completion screen and the stop link, in a real Chromium.

A French participant finishes baseline of a study that collects e-mail; the field and its
consent sentence sit in the next-visit block; a refusal (no consent, a bad address) stores
nothing; a good address is stored with the browser's zone; the stop link asks first, then
one click deletes it. Screenshots go to docs/screenshots/ (SCREENSHOTS_DIR).
"""

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from reminders.models import Contact
from tests.e2e.conftest import TaskRobot
from tests.factories import make_study
from trials.models import Participant

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SHOTS = Path(os.environ.get("SCREENSHOTS_DIR", "/tmp/shots"))  # noqa: S108


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_participant_leaves_an_address_at_the_end_of_baseline_then_stops(
    browser: Browser, live_server: Any, robot: type[TaskRobot]
) -> None:
    study = make_study(
        slug="rappels",
        title="Suivi kétamine",
        n_events=2,
        n_practice=0,
        arms=("main",),
        n_timepoints=2,
        min_br_view_ms=100,
        collect_email=True,
    )
    context = browser.new_context(
        locale="fr-FR", timezone_id="Europe/Paris", viewport={"width": 1000, "height": 900}
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(f"{live_server.url}/s/{study.slug}/?lang=fr")
    page.locator("#consent").check()
    page.locator("#start").click()
    page.wait_for_url("**/t/*/")
    assert robot(page).run() == "complete"
    participant = Participant.objects.get()

    form = page.locator("#next-visit #reminder-form")
    expect(form).to_be_visible()
    expect(form.locator("#reminder-heading")).to_have_text("Rappels par e-mail (facultatif)")
    expect(form.locator("#reminder-consent-text")).to_contain_text(
        "n'est jamais partagée ni exportée"
    )
    status = form.locator("#reminder-status")

    form.locator("#reminder-email").fill("ana@example.org")
    form.locator("#reminder-submit").click()
    expect(status).to_have_text("Cochez d'abord la case pour accepter les rappels.")
    assert Contact.objects.count() == 0

    form.locator("#reminder-consent").check()
    form.locator("#reminder-email").fill("ana.example.org")
    form.locator("#reminder-submit").click()
    expect(status).to_have_text("Ce n'est pas une adresse e-mail (par exemple nom@exemple.org).")
    assert Contact.objects.count() == 0

    form.locator("#reminder-email").fill("Ana@Example.org")
    shot(page, "reminders-1-completion-field-fr")
    form.locator("#reminder-submit").click()
    expect(page.locator("#reminder-saved")).to_have_text(
        "Merci : nous vous enverrons un rappel à l'ouverture de votre prochaine session, "
        "puis avant sa fermeture."
    )
    contact = Contact.objects.get()
    assert (contact.participant_id, contact.email, contact.time_zone) == (
        participant.pk,
        "Ana@example.org",
        "Europe/Paris",
    )

    # The stop link of the messages: a GET (a mail scanner's) asks, the click stops.
    page.goto(f"{live_server.url}/r/{participant.token}/stop/")
    expect(page.locator("h1")).to_have_text("Arrêter les rappels ?")
    assert Contact.objects.count() == 1
    shot(page, "reminders-2-stop-link-fr")
    page.locator("#stop-reminders").click()
    expect(page.locator("#reminders-stopped")).to_have_text("Vous ne recevrez plus de rappels")
    assert Contact.objects.count() == 0
    assert problems == []
