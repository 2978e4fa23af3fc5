"""Fixtures of the reminder tests: a three-visit study that collects e-mail, a real SMTP server."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from reminders.models import Contact
from tests.factories import make_study
from tests.reminders.smtp_server import SmtpServer, free_port
from trials.models import Participant, Session, Study
from trials.services.enrolment import study_enrol

SITE = "https://study.example.org"


def three_visits(slug: str = "visits3", **fields: object) -> Study:
    """baseline; T1 opens 4 h after baseline, closes after 12 h; T2 8 h / 24 h after T1."""
    fields.setdefault("collect_email", True)
    return make_study(slug=slug, title="Ketamine follow-up", n_timepoints=3, **fields)


def participant_done_at(
    study: Study, done_at: datetime, *, language: str = "fr", email: str = "", zone: str = ""
) -> Participant:
    """A participant whose baseline was completed at `done_at`, with an address if given."""
    participant = study_enrol(study=study, language=language).participant
    Session.objects.filter(participant=participant).update(
        status=Session.Status.COMPLETED, completed_at=done_at, step_index=0
    )
    if email:
        Contact.objects.create(
            participant=participant,
            study=study,
            email=email,
            time_zone=zone,
            consented_at=timezone.now(),
        )
    return participant


def hours_ago(hours: float) -> datetime:
    return timezone.now() - timedelta(hours=hours)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    """A stopped SMTP server on a reserved port: tests start it (or leave it down)."""
    server = SmtpServer(port=free_port(), mail_dir=tmp_path / "maildir", log=tmp_path / "smtp.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_settings(settings: pytest.FixtureRequest, smtp: SmtpServer) -> SmtpServer:
    """This process sends over SMTP to `smtp` (pytest-django's default is the memory outbox)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"  # type: ignore[attr-defined]
    settings.EMAIL_HOST = "127.0.0.1"  # type: ignore[attr-defined]
    settings.EMAIL_PORT = smtp.port  # type: ignore[attr-defined]
    settings.EMAIL_TIMEOUT = 5  # type: ignore[attr-defined]
    settings.SITE_URL = SITE  # type: ignore[attr-defined]
    settings.DEFAULT_FROM_EMAIL = "Lab <lab@example.org>"  # type: ignore[attr-defined]
    return smtp
