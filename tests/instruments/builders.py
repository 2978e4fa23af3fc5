"""Deterministic instrument answers on the golden study (golden files, change analysis)."""

from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import User

from instruments.models import Instrument, ItemAnswer
from instruments.services import instrument_scores_store, rating_save
from tests.instruments.conftest import attach_shipped
from trials.models import Session, Study

ANSWERED = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


def fill_instruments(study: Study) -> None:
    """Every session: demographics (first visit), PHQ-9 (one item skipped by participant 2),
    LOT-R, and a MADRS rating; answered_at pinned, scores stored."""
    attach_shipped(study)
    instruments = {i.code: i for i in Instrument.objects.all()}
    rater = User.objects.create_user("rater")
    sessions = list(
        Session.objects.filter(participant__study=study).select_related("timepoint", "participant")
    )
    sessions.sort(key=lambda s: s.pk)
    for n, session in enumerate(sessions):
        p = session.participant_id
        t = session.timepoint.order
        rows: list[tuple[str, str, int | None]] = []
        if t == 0:
            rows += [
                ("demographics", "age", 18 + (7 * p * p) % 50),
                ("demographics", "sex", 1 + p % 2),
            ]
            rows += [("demographics", "education_years", 10 + p % 7)]
        for i in range(1, 10):
            value = (p + i + t) % 4 if not (i == 9 and p % 4 == 2) else None
            rows.append(("phq9", f"phq9_{i}", value))
        for i in range(1, 11):
            rows.append(("lotr", f"lotr_{i}", (p * i + t) % 5))
        for k, (code, item, value) in enumerate(rows):
            ItemAnswer.objects.create(
                session=session,
                participant_id=p,
                instrument=instruments[code],
                item=item,
                value=value,
                source="participant",
                rt_ms=1000 + 10 * k,
                answered_at=ANSWERED + timedelta(days=7 * t, hours=n, seconds=k),
            )
        rating_save(
            study=study,
            participant=p,
            timepoint=session.timepoint.label,
            instrument="madrs",
            items={f"madrs_{i}": (2 * p + i - 3 * t) % 7 for i in range(1, 11)},
            rated_at="2025-03-03T12:00:00Z",
            actor=rater,
        )
        ItemAnswer.objects.filter(session=session, source="clinician").update(
            answered_at=ANSWERED + timedelta(days=7 * t, hours=n, minutes=30)
        )
        instrument_scores_store(session_id=session.pk)
