"""The researchers' dashboard in a real Chromium, against the real server and PostgreSQL.

1. A researcher logs in, creates a study with two arms and two timepoints, imports its
   event lists (one pasted, one uploaded; a bad file first, whose rows are all listed),
   opens it, copies a participant link; a participant completes a session through that
   link in another browser; the overview, left open, counts it as completed and scored
   without a reload.
2. The results page draws every chart (SVG with marks) for demo-like data, fits the
   mixed model, and exports a chart as SVG.
3. A viewer sees group figures and cannot reach trial-level data (pages or API).

Screenshots of every page at 1280 px go to /tmp/shots/dashboard-*.png.
"""

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    FilePayload,
    Page,
    expect,
)

from tests.dashboard.builders import simulate_sessions
from tests.e2e.conftest import QUIZ_RIGHT_JS, TaskRobot
from trials.models import Arm, Session, Study, StudyMembership, Timepoint
from trials.services.demo import demo_study_load

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SHOTS = Path("/tmp/shots")  # noqa: S108 - where the brief wants the screenshots
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 900}}
TABLET: dict[str, Any] = {"viewport": {"width": 820, "height": 1180}, "has_touch": True}

LIST_A = (
    "code,text_en,text_fr,base_rate,source,practice\n"
    "PA,Losing your keys,Perdre ses clés,50,illustrative,1\n"
    "A1,Having a heart attack,Faire une crise cardiaque,30,illustrative,0\n"
    "A2,Breaking a leg,Se casser la jambe,40,illustrative,0\n"
    "A3,Being burgled,Être cambriolé,25,illustrative,0\n"
    "A4,Losing a job,Perdre son emploi,45,illustrative,0\n"
)
LIST_B = (
    LIST_A.replace("PA,", "PB,")
    .replace("A1,", "B1,")
    .replace("A2,", "B2,")
    .replace("A3,", "B3,")
    .replace("A4,", "B4,")
)
BAD_LIST = "code,text_en,base_rate\nX1,Fine,30\nX1,Same code,30\nX3,,abc\n"


def shot(page: Page, name: str) -> None:
    """A whole-page screenshot at the page's width.

    Playwright's full_page screenshot leaves this Chromium's input coordinates off (the
    next click lands nowhere), so the viewport is stretched to the page and put back.
    """
    SHOTS.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    assert viewport is not None
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": max(height, viewport["height"])})
    page.screenshot(path=str(SHOTS / f"dashboard-{name}.png"))
    page.set_viewport_size(viewport)


def watch(page: Page) -> list[str]:
    """Script errors and CSP violations of a page, for asserting there are none.

    A refused form answers 400, which Chromium also logs as a failed resource: those
    are the test's own bad input, not problems.
    """
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def log_in(context: BrowserContext, base_url: str, username: str, password: str) -> Page:
    page = context.new_page()
    page.goto(f"{base_url}/dashboard/")
    page.wait_for_url("**/accounts/login/**")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.locator(".login-card button[type=submit]").click()
    page.wait_for_url(f"{base_url}/dashboard/")
    return page


def submit(page: Page, form: str) -> None:
    page.locator(f"{form} button[type=submit]").first.click()
    page.wait_for_load_state("load")


def test_set_up_a_study_and_watch_a_session_arrive(
    browser: Browser, live_server: Any, robot: type[TaskRobot]
) -> None:
    base = live_server.url
    User.objects.create_user("pi", password="correct horse battery")
    context = browser.new_context(**DESKTOP)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = log_in(context, base, "pi", "correct horse battery")
    problems = watch(page)
    shot(page, "studies-empty")

    # A study with every setting on one form.
    page.get_by_role("link", name="New study").click()
    page.get_by_label("Short name in links").fill("ketamine")
    page.locator("#id_title").fill("Ketamine and good news")
    page.get_by_label("Consent text (English)").fill("You agree to take part.")
    page.get_by_label("Consent text (French)").fill("Vous acceptez de participer.")
    page.get_by_label("Minimum viewing time of a base rate (ms)").fill("300")
    page.get_by_label("Minimum valid trials per valence before a session is flagged").fill("1")
    shot(page, "new-study")
    submit(page, "form.stacked")
    page.wait_for_url("**/dashboard/s/ketamine/setup/design/")
    study = Study.objects.get(slug="ketamine")
    assert study.status == "paused"

    # Two arms; a nameless one is refused with its field named.
    page.locator("#id_arm-code").fill("nameless")
    submit(page, "form:has(input[value=add_arm])")
    expect(page.locator(".form-errors")).to_contain_text("An arm needs a name.")
    for code, name in (("patients", "Patients"), ("controls", "Controls")):
        page.locator("#id_arm-name").fill(name)
        page.locator("#id_arm-code").fill(code)
        submit(page, "form:has(input[value=add_arm])")
    # Two timepoints; a window that closes before it opens is refused.
    page.locator("#id_tp-label").fill("baseline")
    submit(page, "form:has(input[value=add_timepoint])")
    page.locator("#id_tp-label").fill("+24 h")
    page.locator("#id_tp-opens_value").fill("24")
    page.locator("#id_tp-closes_value").fill("12")
    submit(page, "form:has(input[value=add_timepoint])")
    expect(page.locator(".form-errors")).to_contain_text("The window closes before it opens.")
    page.locator("#id_tp-closes_value").fill("48")
    submit(page, "form:has(input[value=add_timepoint])")
    shot(page, "design")
    assert list(Arm.objects.filter(study=study).values_list("code", flat=True)) == [
        "patients",
        "controls",
    ]
    assert list(Timepoint.objects.filter(study=study).values_list("label", flat=True)) == [
        "baseline",
        "+24 h",
    ]

    # Event lists: a bad file lists every error and imports nothing; then two good ones.
    page.get_by_role("link", name="Event lists").click()
    page.locator("#id_imp-name").fill("broken")
    page.locator("#id_imp-text").fill(BAD_LIST)
    submit(page, "form:has(input[value=import])")
    errors = page.locator("#import-row-errors tbody tr")
    expect(errors).to_have_count(3)
    expect(page.locator("#import-row-errors")).to_contain_text("duplicate of row 2")
    expect(page.locator("#import-row-errors")).to_contain_text("'abc' is not a whole number")
    shot(page, "lists-errors")
    page.locator("#id_imp-name").fill("ketamine A")
    page.locator("#id_imp-text").fill(LIST_A)
    submit(page, "form:has(input[value=import])")
    page.locator("#id_imp-name").fill("ketamine B")
    page.locator("#id_imp-file").set_input_files(
        files=[FilePayload(name="b.csv", mimeType="text/csv", buffer=LIST_B.encode())]
    )
    submit(page, "form:has(input[value=import])")
    expect(page.locator("table").first).to_contain_text("ketamine B")
    shot(page, "lists")

    # Open it, preview it, copy the patients' link.
    page.get_by_role("link", name="Settings").click()
    shot(page, "settings")
    page.locator("form:has(input[value=open]) button").click()
    page.wait_for_load_state("load")
    expect(page.locator(".messages")).to_contain_text("The study is open")
    # The preview runs the task itself (static/task/task.js) against a stand-in in the page:
    # once the page is loaded, no request leaves it (the browser may fetch the tab's icon at
    # any moment: that is not the preview talking).
    sent: list[str] = []

    def on_request(request: Any) -> None:
        if request.is_navigation_request() or "/static/" in request.url:
            return
        if not request.url.endswith("/favicon.svg"):
            sent.append(request.url)

    page.on("request", on_request)
    page.get_by_role("link", name="Preview").click()
    study = Study.objects.get(slug="ketamine")
    sessions_before = Session.objects.filter(participant__study=study).count()
    bot = robot(page)
    # One code path: the quiz's right answers move at every attempt, as in the task (the
    # preview's own copy of the quiz kept them in place).
    assert bot.run(stop=lambda kind, step: kind == "quiz") == "quiz"
    shot(page, "preview")
    first = [int(i) for i in page.evaluate(QUIZ_RIGHT_JS)]
    bot._mark()
    bot.press(page.locator(f"label[for='belief-quiz-0-{(first[0] + 1) % 3}']"))
    for qi in (1, 2):
        bot.press(page.locator(f"label[for='belief-quiz-{qi}-{first[qi]}']"))
    bot.press(page.locator(".belief-quiz button[type=submit]"))
    expect(page.locator("#task-stage h1")).to_have_text("Not quite yet")
    assert bot.run(stop=lambda kind, step: kind == "quiz") == "quiz"
    again = [int(i) for i in page.evaluate(QUIZ_RIGHT_JS)]
    assert all(now != before for now, before in zip(again, first, strict=True)), (first, again)
    bot.act("quiz")
    # The task's own estimate screen: a value off the study's scale is refused on screen.
    assert bot.run(stop=lambda kind, step: kind == "estimate") == "estimate"
    assert bot.step() == ("PA", "e1")
    estimate = page.locator("#belief-estimate-input")
    estimate.fill("90")
    estimate.press("Enter")
    expect(page.locator("#task-stage")).to_contain_text("between 3 and 77")
    bot.act("estimate")
    assert bot.run(stop=lambda kind, step: kind == "br") == "br"
    expect(page.locator(".belief-br-value")).to_have_text(re.compile(r"^50\W*%$"))
    assert bot.run() == "complete"
    expect(page.locator("#completion-code")).to_be_visible()
    # practice 1 x 2 + block 1 4 x 2 + block 2 4: every answer listed, none stored.
    expect(page.locator("#preview-log tr")).to_have_count(14)
    expect(page.locator("#preview-log tr").first).to_contain_text("PA")
    assert page.locator("#preview-log tr td:nth-child(2)").all_inner_texts()[:2] == ["e1", "br"]
    assert sent == []
    assert Session.objects.filter(participant__study=study).count() == sessions_before == 0
    page.remove_listener("request", on_request)
    page.get_by_role("link", name="Participant links").click()
    shot(page, "links")
    copy = page.locator("button[data-copy='link-2']")
    expect(copy).to_contain_text("Copy")
    copy.click()
    expect(page.locator("#copy-status")).to_have_text("Copied")
    link = page.evaluate("navigator.clipboard.readText()")
    assert link == f"{base}/s/ketamine/?arm=patients"

    # The overview, left open while a participant does the task elsewhere.
    page.get_by_role("link", name="Overview").click()
    page.evaluate("window.__notReloaded = true")
    patients = Arm.objects.get(study=study, code="patients").pk
    baseline = Timepoint.objects.get(study=study, order=0).pk
    completed = page.locator(f"[data-cell='{patients}-{baseline}:completed']")
    scored = page.locator(f"[data-cell='{patients}-{baseline}:scored']")
    expect(completed).to_have_text("0")
    shot(page, "overview-empty")

    participant = browser.new_context(**DESKTOP)
    task = participant.new_page()
    task.goto(link + "&lang=en")
    task.locator("#consent").check()
    task.locator("#start").click()
    task.wait_for_url("**/t/*/")
    token = task.url.rstrip("/").rsplit("/", 1)[-1]
    assert robot(task).run() == "complete"
    session = Session.objects.get(token=token)
    assert session.status == Session.Status.COMPLETED
    assert session.participant.arm.code == "patients"

    expect(completed).to_have_text("1", timeout=20_000)
    expect(scored).to_have_text("1", timeout=20_000)
    expect(page.locator("#live-status")).to_have_class(re.compile("is-live"))
    assert page.evaluate("window.__notReloaded") is True
    shot(page, "overview")

    # The session's data, as an owner sees it.
    page.get_by_role("link", name="Results").click()
    expect(page.locator("#chart-main[data-rendered=chart] svg.marks")).to_be_visible(timeout=20_000)
    page.get_by_role("link", name="Sessions").click()
    expect(page.locator("#sessions-table tbody tr")).to_have_count(1)
    shot(page, "sessions")
    page.locator("#sessions-table tbody a").first.click()
    expect(page.locator("table[data-trials]")).to_contain_text("good")
    shot(page, "participant")
    page.get_by_role("link", name="Quality").or_(
        page.get_by_role("link", name="Data quality")
    ).click()
    shot(page, "quality")
    page.get_by_role("link", name="Members").click()
    shot(page, "members")
    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("Name (what the token is for)").fill("R notebook")
    submit(page, "form.stacked")
    expect(page.locator("#new-token")).to_be_visible()
    shot(page, "tokens")
    page.get_by_role("link", name="Studies").first.click()
    expect(page.locator("tr[data-study=ketamine] [data-count=completed]")).to_have_text("1")
    shot(page, "studies")

    # Withdrawal, confirmed, says what it deleted.
    page.goto(f"{base}/dashboard/s/ketamine/participants/{session.participant_id}/withdraw/")
    shot(page, "withdraw")
    page.get_by_label(re.compile("I understand")).check()
    page.on("dialog", lambda dialog: dialog.accept())
    submit(page, "form.stacked")
    expect(page.locator(".messages")).to_contain_text("is withdrawn")
    assert problems == []

    # Tablet width: the overview still reads without horizontal scrolling of the page.
    tablet = browser.new_context(**TABLET)
    tablet_page = log_in(tablet, base, "pi", "correct horse battery")
    tablet_page.goto(f"{base}/dashboard/s/ketamine/")
    width = tablet_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 820
    shot(tablet_page, "overview-tablet")
    # Stop the pages' polling before the live server goes away.
    for each in (context, participant, tablet):
        each.close()


def test_results_draw_every_chart_for_demo_data(browser: Browser, live_server: Any) -> None:
    study, _user, password = demo_study_load(password="demo-password-1")
    simulate_sessions(study, n_participants=24, seed=11)
    context = browser.new_context(**DESKTOP, accept_downloads=True)
    page = log_in(context, live_server.url, "demo", password)
    problems = watch(page)
    page.goto(f"{live_server.url}/dashboard/s/demo/results/")
    for chart, mark in (
        ("main", ".mark-rect path"),
        ("bias", ".mark-rect path"),
        ("lr", ".mark-symbol path"),
        ("trajectories", ".mark-line path"),
        ("models", ".mark-rect path"),
    ):
        node = page.locator(f"[data-chart={chart}]")
        expect(node).to_have_attribute("data-rendered", "chart", timeout=20_000)
        assert node.locator(f"svg {mark}").count() > 0, chart
    # Six groups x two valences: twelve bars in the paper's figure.
    assert page.locator("[data-chart=main] svg .mark-rect path").count() == 12
    # The bias figure switches to the bias controlled for EE (score version 2) and back.
    bias = page.locator("[data-chart=bias]")
    page.select_option("#bias-measure", "update_bias_ee")
    expect(bias).to_have_attribute("data-measure", "update_bias_ee")
    expect(bias.locator("svg.marks")).to_contain_text(
        "Update bias controlled for EE", timeout=20_000
    )
    assert bias.locator("svg .mark-rect path").count() > 0
    page.select_option("#bias-measure", "update_bias")
    expect(bias.locator("svg.marks")).to_contain_text("good − bad", timeout=20_000)
    # The mixed model is fitted outside the page, then shown.
    expect(page.locator("#model-status")).to_have_attribute("data-state", "done", timeout=60_000)
    expect(page.locator("#model-rows")).to_contain_text("valence good (vs bad)")
    # The intercept, the 11 contrasts of valence x arm (2) x timepoint (3), and EE.
    assert page.locator("#model-rows tr").count() == 13
    page.wait_for_timeout(300)
    shot(page, "results")
    # Every chart downloads as SVG (and PNG) through vega-embed's menu.
    page.locator("[data-chart=main] summary").click()
    with page.expect_download() as download:
        page.locator("[data-chart=main] .vega-actions a", has_text="Save as SVG").click()
    assert download.value.suggested_filename == "demo-main.svg"
    svg = Path(download.value.path()).read_text()
    assert svg.startswith("<svg") and "good news" in svg
    assert page.locator("[data-chart=main] .vega-actions a", has_text="Save as PNG").count() == 1
    assert problems == []
    context.close()


def test_a_viewer_cannot_reach_trial_level_data(browser: Browser, live_server: Any) -> None:
    study, _user, _password = demo_study_load(password="demo-password-1")
    simulate_sessions(study, n_participants=4, seed=3, n_timepoints=1)
    viewer = User.objects.create_user("guest", password="guest-password-1")
    StudyMembership.objects.create(study=study, user=viewer, role="viewer")
    session = Session.objects.filter(participant__study=study).first()
    assert session is not None
    context = browser.new_context(**DESKTOP)
    page = log_in(context, live_server.url, "guest", "guest-password-1")
    base = live_server.url
    page.goto(f"{base}/dashboard/s/demo/results/")
    expect(page.locator("[data-chart=main]")).to_have_attribute(
        "data-rendered", "chart", timeout=20_000
    )
    assert page.locator("[data-chart=lr]").count() == 0
    assert page.locator("a[href*='/api/v1/studies/demo/trials/']").count() == 0
    assert page.get_by_role("link", name="Sessions").count() == 0
    shot(page, "results-viewer")
    # The language menu (submitted by common.js on change) switches to French.
    page.locator("#language-select").select_option("fr")
    page.wait_for_url("**/dashboard/s/demo/results/")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator("[data-chart=main]")).to_have_attribute(
        "data-rendered", "chart", timeout=20_000
    )
    expect(page.locator("[data-chart=main] svg.marks")).to_contain_text("bonne")
    shot(page, "results-viewer-fr")
    for url in (
        "/dashboard/s/demo/sessions/",
        f"/dashboard/s/demo/participants/{session.participant_id}/",
        f"/dashboard/s/demo/participants/{session.participant_id}/withdraw/",
    ):
        response = page.goto(base + url)
        assert response is not None and response.status == 403, url
    for api in ("trials/?format=csv", "scores/", "sessions/", "participants/", "responses/"):
        api_response = page.request.get(f"{base}/api/v1/studies/demo/{api}")
        assert api_response.status == 403, api
    context.close()
