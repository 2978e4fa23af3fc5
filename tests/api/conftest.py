"""Researcher API fixtures: a fixed small study (deterministic data and timestamps),
researchers in every role, and their tokens."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.services import token_create
from scoring.models import Score
from scoring.services import sessions_score
from tests.factories import make_study
from trials.models import (
    Event,
    Participant,
    ParticipantIdentity,
    Response,
    Session,
    Study,
    StudyEventList,
    StudyMembership,
    Timepoint,
    Trial,
)

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
SCORED_AT = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    # The failed-authentication counter lives in the cache: start every test at zero.
    cache.clear()
    yield
    cache.clear()


def fill_study(study: Study, *, n_participants: int = 4, external: bool = True) -> list[Session]:
    """Completed sessions with every kind of trial (good, bad, neutral, missing E2)."""
    arms = list(study.arms.order_by("id"))
    timepoints = list(study.timepoints.order_by("order"))
    links = list(StudyEventList.objects.filter(study=study).order_by("position"))
    sessions: list[Session] = []
    for p in range(n_participants):
        participant = Participant.objects.create(
            study=study, arm=arms[p % len(arms)], sequence=p % len(links), language="en"
        )
        Participant.objects.filter(pk=participant.pk).update(created_at=T0, consented_at=T0)
        if external:
            ParticipantIdentity.objects.create(
                participant=participant, study=study, source="prolific", external_id=f"PID-{p:03d}"
            )
        for t, timepoint in enumerate(timepoints):
            sessions.append(_session(study, participant, timepoint, links, p, t))
    return sessions


def _session(
    study: Study,
    participant: Participant,
    timepoint: Timepoint,
    links: list[StudyEventList],
    p: int,
    t: int,
) -> Session:
    event_list = links[(participant.sequence + t) % len(links)].event_list
    events = list(Event.objects.filter(event_list=event_list).order_by("position", "id"))
    practice = [e for e in events if e.practice]
    main = [e for e in events if not e.practice]
    order1 = main[p % 2 :] + main[: p % 2]
    order2 = list(reversed(main))
    start = T0 + timedelta(days=7 * t, hours=p)
    session = Session.objects.create(
        participant=participant,
        timepoint=timepoint,
        event_list=event_list,
        language="en",
        plan={
            "practice": [[e.pk, e.code] for e in practice],
            "order1": [[e.pk, e.code] for e in order1],
            "order2": [[e.pk, e.code] for e in order2],
        },
        status=Session.Status.COMPLETED,
        started_at=start,
        last_activity_at=start + timedelta(minutes=20),
        completed_at=start + timedelta(minutes=20),
    )
    Session.objects.filter(pk=session.pk).update(created_at=start)
    tick = iter(range(10_000))
    for position, event in enumerate(practice + order1, start=1):
        is_practice = event.practice
        i = main.index(event) if not is_practice else -1
        e1 = 20 + (7 * p + 11 * (i + 1) + 5 * t) % 45
        shift = -9 - i if (p + i + t) % 2 else 8 + i
        br = e1 if i == 1 else max(3, min(77, e1 + shift))  # event 2 is a neutral trial
        e2: int | None = e1 + (br - e1) * (3 + (p + i) % 4) // 6
        if i == 2 and p == 1:
            e2 = None  # a trial without its E2
        Trial.objects.create(
            session=session,
            event=event,
            practice=is_practice,
            block1_position=position - (0 if is_practice else len(practice)),
            block2_position=None if is_practice else order2.index(event) + 1,
            br=br,
            br_mode="fixed",
        )
        answers: list[tuple[str, int, int]] = [("e1", e1, 1500 + 37 * i), ("br", br, 2100)]
        if e2 is not None and not is_practice:
            answers.append(("e2", e2, 1300 + 41 * i))
        for phase, value, rt in answers:
            at = start + timedelta(seconds=next(tick) * 7)
            Response.objects.create(
                session=session,
                event=event,
                phase=phase,
                value=value,
                rt_ms=rt,
                onset_at=at - timedelta(milliseconds=rt),
                received_at=at,
                client_id=uuid.UUID(int=session.pk * 100_000 + next(tick)),
            )
    return session


def score_fixed(sessions: list[Session]) -> None:
    """Score the sessions and pin scored_at (golden files)."""
    sessions_score(session_ids=[s.pk for s in sessions])
    Score.objects.filter(session__in=sessions).update(scored_at=SCORED_AT)


def golden_study(slug: str = "golden") -> Study:
    """The fixed small study of the golden files: 2 arms, 2 timepoints, 6 events."""
    study = make_study(slug=slug, n_events=6, n_practice=1, title="Golden")
    # Text cells that a spreadsheet would run as formulas, and one needing CSV quotes.
    first = StudyEventList.objects.filter(study=study).order_by("position").first()
    assert first is not None
    events = list(Event.objects.filter(event_list=first.event_list, practice=False))
    Event.objects.filter(pk=events[0].pk).update(texts={"en": '=HYPERLINK("x")', "fr": "x"})
    Event.objects.filter(pk=events[1].pk).update(texts={"en": 'Risk, "quoted"', "fr": "y"})
    Timepoint.objects.filter(study=study, order=1).update(label="+4h")
    sessions = fill_study(study)
    # The last session was taken in French: the exports' `language` column is the session's.
    Participant.objects.filter(pk=sessions[-1].participant_id).update(language="fr")
    Session.objects.filter(pk=sessions[-1].pk).update(language="fr")
    score_fixed(sessions)
    return study


@dataclass
class Researchers:
    study: Study
    other: Study
    users: dict[str, User]
    tokens: dict[str, str]

    def client(self, who: str | None) -> APIClient:
        client = APIClient()
        if who is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.tokens[who]}")
        return client


def make_researchers(study: Study, other: Study) -> Researchers:
    """owner, analyst, viewer of `study`; a non-member; a staff non-member; other owner;
    with write tokens, plus read-only, expired and revoked tokens of the owner."""
    users: dict[str, User] = {}
    tokens: dict[str, str] = {}
    for name in ("owner", "analyst", "viewer", "stranger", "staff", "other_owner"):
        users[name] = User.objects.create_user(
            username=name,
            password="pw-123456",
            is_staff=name == "staff",
            is_superuser=name == "staff",
        )
        tokens[name] = token_create(user=users[name], scope="write").key
    for name in ("owner", "analyst", "viewer"):
        StudyMembership.objects.create(study=study, user=users[name], role=name)
    StudyMembership.objects.create(study=other, user=users["other_owner"], role="owner")
    tokens["owner_read"] = token_create(user=users["owner"], scope="read").key
    expired = token_create(user=users["owner"], scope="write", expires_days=1)
    type(expired.token).objects.filter(pk=expired.token.pk).update(
        expires_at=datetime(2020, 1, 1, tzinfo=UTC)
    )
    tokens["owner_expired"] = expired.key
    revoked = token_create(user=users["owner"], scope="write")
    from accounts.services import token_revoke

    token_revoke(token=revoked.token)
    tokens["owner_revoked"] = revoked.key
    return Researchers(study, other, users, tokens)


@pytest.fixture
def golden(db: Any) -> Study:
    return golden_study()


@pytest.fixture
def researchers(golden: Study) -> Researchers:
    other = make_study(slug="other-study", n_events=4)
    fill_study(other, n_participants=2)
    return make_researchers(golden, other)


@pytest.fixture
def owner_client(researchers: Researchers) -> APIClient:
    return researchers.client("owner")
