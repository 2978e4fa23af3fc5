"""Browser fixtures: Debian's Chromium, driven by Playwright, against pytest-django's live_server.

Playwright never downloads a browser here: it launches the system Chromium
(`chromium_path`, which skips loudly when it is missing, or fails under
REQUIRE_SERVICES=1).
"""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.factories import make_study
from trials.models import Study

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# The option of each quiz question whose text is the right answer (task.js shuffles the
# options at every attempt, so the robot reads them as a participant would).
QUIZ_RIGHT_JS = """() => {
  const S = JSON.parse(document.getElementById('task-config').textContent).strings;
  return [1, 2, 3].map((n, qi) => Array.from(
    document.querySelectorAll(`label[for^='belief-quiz-${qi}-']`)
  ).findIndex((label) => label.textContent.trim() === S[`quiz_${n}_right`]));
}"""


@pytest.fixture
def browser(
    chromium_path: str, postgres: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Browser]:
    # Playwright's sync API keeps an asyncio loop alive in this thread, and Django refuses
    # ORM calls from a thread with a running loop. The test's own reads are plain
    # synchronous code, so the guard is lifted for this test only.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def small_study(transactional_db: None) -> Callable[..., Study]:
    """make(**flags): a small study with a short base-rate screen, slug 'demo' by default."""

    def make(**fields: Any) -> Study:
        fields.setdefault("slug", "demo")
        fields.setdefault("min_br_view_ms", 100)
        n_events = fields.pop("n_events", 3)
        n_practice = fields.pop("n_practice", 2)
        return make_study(
            n_events=n_events, n_practice=n_practice, arms=("main",), n_timepoints=1, **fields
        )

    return make


def _seed(code: str) -> int:
    return sum(ord(c) * (i + 1) for i, c in enumerate(code))


def item_choice(item: str, n_options: int) -> int:
    """The option (by position) the robot picks for a questionnaire item."""
    return _seed(item) % n_options


def item_number(item: str, low: int, high: int) -> int:
    """The number the robot types for a numeric questionnaire item."""
    return low + _seed(item) % min(high - low + 1, 40)


def value_for(event: str, phase: str) -> int:
    """The answer the robot participant gives to a step: fixed, varied, always in range."""
    seed = _seed(event)
    base = 10 + seed % 50  # 10..59, inside the default 3..77 scale
    if phase == "e1":
        return base
    if phase == "e2":
        return base + 5 if seed % 2 else base - 4
    if phase in ("ebr1", "ebr2"):
        return base + (2 if phase == "ebr1" else 3)
    if phase == "memory":
        return 20 + seed % 40
    return 1 + (seed + len(phase)) % 6  # ratings and confidence


# What is on screen, among the screens not yet acted on (see TaskRobot._mark).
SCREEN_JS = """() => {
  if (document.getElementById('completion-code')) return 'complete';
  const fresh = document.querySelectorAll('#task-stage .jspsych-content > :not([data-robot-seen])');
  const has = (sel) => Array.from(fresh).some((n) => n.matches(sel) || n.querySelector(sel));
  if (has('.belief-quiz')) return 'quiz';
  if (has('.belief-item')) return 'item';
  if (has('#belief-estimate-input')) return 'estimate';
  if (has('.belief-scale')) return 'rating';
  if (has('.belief-br')) return 'br';
  if (has('.belief-page')) return 'page';
  return null;
}"""


class TaskRobot:
    """Answers the task screen by screen the way a participant would, and logs each step."""

    def __init__(self, page: Page, *, touch: bool = False) -> None:
        self.page = page
        self.touch = touch
        self.typed: dict[tuple[str, str], int] = {}
        self.seen_steps: list[tuple[str, str]] = []
        self.pages_seen: list[str] = []

    def press(self, locator: Any) -> None:
        if self.touch:
            locator.tap()
        else:
            locator.click()

    def screen(self, timeout: float = 15_000) -> str:
        handle = self.page.wait_for_function(SCREEN_JS, timeout=timeout)
        return str(handle.json_value())

    def step(self) -> tuple[str, str] | None:
        raw = self.page.locator("#task-stage").get_attribute("data-step")
        if not raw:
            return None
        event, phase = raw.split(" ")
        return event, phase

    def _mark(self) -> None:
        self.page.evaluate(
            "() => document.querySelectorAll('#task-stage .jspsych-content > *')"
            ".forEach((n) => n.setAttribute('data-robot-seen', '1'))"
        )

    def act(self, kind: str) -> None:
        """Answer the screen on show; the step's value is value_for(event, phase)."""
        page = self.page
        step = self.step()
        if kind in ("estimate", "rating", "br", "item"):
            assert step is not None, f"a {kind} screen without data-step"
            if not self.seen_steps or self.seen_steps[-1] != step:
                self.seen_steps.append(step)
        self._mark()
        if kind == "page":
            self.pages_seen.append(page.locator("#task-stage h1").first.inner_text())
            self.press(page.locator(".belief-page .belief-btn-primary"))
        elif kind == "quiz":
            right = page.evaluate(QUIZ_RIGHT_JS)
            assert -1 not in right, right
            for qi, oi in enumerate(right):
                self.press(page.locator(f"label[for='belief-quiz-{qi}-{oi}']"))
            self.press(page.locator(".belief-quiz button[type=submit]"))
        elif kind == "estimate":
            assert step is not None
            value = value_for(*step)
            field = page.locator("#belief-estimate-input")
            field.fill(str(value))
            field.press("Enter")
            self.typed[step] = value
        elif kind == "rating":
            assert step is not None
            value = value_for(*step)
            self.press(page.locator(f".belief-scale-btn[data-value='{value}']"))
            self.press(page.locator(".belief-rating .belief-btn-primary"))
            self.typed[step] = value
        elif kind == "item":
            assert step is not None
            item = step[0]
            field = page.locator("#belief-item-input")
            if field.count():
                low, high = (
                    int(field.get_attribute("data-min") or 0),
                    int(field.get_attribute("data-max") or 0),
                )
                value = item_number(item, low, high)
                field.fill(str(value))
                field.press("Enter")
            else:
                options = page.locator(".belief-item input[type=radio]")
                choice = options.nth(item_choice(item, options.count()))
                value = int(choice.get_attribute("data-value") or "")
                self.press(page.locator(f"label[for='{choice.get_attribute('id')}']"))
                self.press(page.locator(".belief-item .belief-btn-primary"))
            self.typed[step] = value
        elif kind == "br":
            button = page.locator(".belief-base-rate .belief-btn-primary")
            button.wait_for()
            page.wait_for_function(
                "() => !document.querySelector('.belief-base-rate .belief-btn-primary').disabled"
            )
            self.press(button)

    def run(self, stop: Callable[[str, tuple[str, str] | None], bool] | None = None) -> str:
        """Answer screens until the completion page, or until stop(kind, step) is true."""
        for _ in range(1000):
            kind = self.screen()
            if kind == "complete" or (stop is not None and stop(kind, self.step())):
                return kind
            self.act(kind)
        raise AssertionError("the task never ended")


@pytest.fixture
def robot() -> type[TaskRobot]:
    return TaskRobot
