"""Planning and sending reminders in this process, to a real SMTP server (aiosmtpd)."""

import email
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from reminders.models import Reminder
from reminders.services import reminder_send, reminders_plan, reminders_queue
from tests.reminders.conftest import SITE, hours_ago, participant_done_at, three_visits
from tests.reminders.smtp_server import SmtpServer, body_of, header, subject_of
from trials.models import Participant, Session

pytestmark = pytest.mark.django_db

FR_DAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]
FR_MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
             "septembre", "octobre", "novembre", "décembre"]  # fmt: skip
EN_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December"]  # fmt: skip


def french(moment: datetime, zone: str) -> str:
    local = moment.astimezone(ZoneInfo(zone))
    day, month = FR_DAYS[local.weekday()], FR_MONTHS[local.month - 1]
    return f"{day} {local.day} {month} {local.year}, {local:%H:%M} ({zone})"


def english(moment: datetime, zone: str) -> str:
    local = moment.astimezone(ZoneInfo(zone))
    day, month = EN_DAYS[local.weekday()], EN_MONTHS[local.month - 1]
    return f"{day} {local.day} {month} {local.year}, {local:%H:%M} ({zone})"


def whole_minute(hours: float) -> datetime:
    return hours_ago(hours).replace(second=0, microsecond=0)


def test_an_open_window_gets_one_reminder_in_french_with_the_links_and_the_window(
    smtp_settings: SmtpServer,
) -> None:
    smtp_settings.start()
    study = three_visits(reminder_closing_hours=2)
    done = whole_minute(5)  # T1 opened an hour ago (4 h after baseline), closes in 7 h
    participant = participant_done_at(
        study, done, email="ana@example.org", zone="Europe/Paris", language="fr"
    )
    now = timezone.now()

    assert reminders_plan(now=now) == 1
    assert reminders_plan(now=now) == 1  # the same one again: the constraint keeps one row
    ids = reminders_queue(now=now)
    assert reminders_queue(now=now) == []  # queued already
    assert [reminder_send(reminder_id=i).result for i in ids] == ["sent"]
    assert reminder_send(reminder_id=ids[0]).result == "skipped"  # a redelivered message

    [message] = smtp_settings.messages()
    assert message["X-RcptTo"] == "ana@example.org"
    assert message["To"] == "ana@example.org"
    assert message["From"] == "Lab <lab@example.org>"
    assert message["Content-Language"] == "fr"
    assert subject_of(message) == "Votre prochaine session de « Ketamine follow-up » est ouverte"
    body = body_of(message)
    opens, closes = done + timedelta(hours=4), done + timedelta(hours=12)
    assert (
        f"Votre prochaine session est ouverte du {french(opens, 'Europe/Paris')} "
        f"au {french(closes, 'Europe/Paris')}." in body
    )
    assert f"{SITE}/r/{participant.token}/\n" in body
    assert f"{SITE}/r/{participant.token}/stop/" in body
    assert header(message, "List-Unsubscribe") == f"<{SITE}/r/{participant.token}/stop/>"
    assert header(message, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    [row] = Reminder.objects.all()
    assert (row.kind, row.status, row.attempts, row.opens_at, row.closes_at) == (
        "opens",
        "sent",
        1,
        opens,
        closes,
    )
    assert header(message, "Message-ID") == f"<reminder-{row.pk}@study.example.org>"


def test_the_closing_reminder_in_english_and_utc(smtp_settings: SmtpServer) -> None:
    smtp_settings.start()
    study = three_visits(reminder_closing_hours=24)
    done = whole_minute(5)  # closes in 7 h: inside the 24 h before closing
    participant_done_at(study, done, email="bob@example.org", language="en")

    reminders_plan(now=timezone.now())
    [reminder_id] = reminders_queue(now=timezone.now())
    assert reminder_send(reminder_id=reminder_id).result == "sent"

    [message] = smtp_settings.messages()
    assert subject_of(message) == "Last hours for your next session of “Ketamine follow-up”"
    closes = done + timedelta(hours=12)
    assert f"Your next session closes on {english(closes, 'UTC')}." in body_of(message)
    assert list(Reminder.objects.values_list("kind", "status")) == [("closing", "sent")]


def test_nothing_is_due_before_a_window_opens_after_it_closes_or_without_an_address(
    smtp_settings: SmtpServer,
) -> None:
    study = three_visits()
    participant_done_at(study, hours_ago(1), email="early@example.org")  # opens in 3 h
    participant_done_at(study, hours_ago(17), email="late@example.org")  # T1 closed 5 h ago
    participant_done_at(study, hours_ago(5))  # open, but no address
    enrolled_only = participant_done_at(study, hours_ago(5), email="mid@example.org")
    Session.objects.filter(participant=enrolled_only).update(
        status="in_progress", completed_at=None
    )
    other = three_visits(slug="no-email", collect_email=False)
    participant_done_at(other, hours_ago(5), email="x@example.org")

    assert reminders_plan(now=timezone.now()) == 0
    assert Reminder.objects.count() == 0


def test_a_visit_done_before_its_send_is_cancelled_and_not_sent(
    smtp_settings: SmtpServer,
) -> None:
    smtp_settings.start()
    study = three_visits(reminder_closing_hours=2)
    participant = participant_done_at(study, hours_ago(5), email="ana@example.org")
    reminders_plan(now=timezone.now())
    [reminder_id] = reminders_queue(now=timezone.now())
    # The participant did T1 before the worker got to the reminder.
    study_t1 = study.timepoints.get(order=1)
    Session.objects.create(
        participant=participant,
        timepoint=study_t1,
        event_list_id=Session.objects.filter(participant=participant).first().event_list_id,  # type: ignore[union-attr]
        plan={},
        status="completed",
        completed_at=timezone.now(),
    )

    assert reminder_send(reminder_id=reminder_id).result == "cancelled"

    assert smtp_settings.messages() == []
    assert list(Reminder.objects.values_list("status", "last_error")) == [
        ("cancelled", "visit done")
    ]


def test_an_smtp_server_that_is_down_is_retried_with_backoff_then_marked_failed(
    smtp_settings: SmtpServer, settings: pytest.FixtureRequest
) -> None:
    settings.REMINDER_MAX_ATTEMPTS = 3  # type: ignore[attr-defined]
    study = three_visits(reminder_closing_hours=2)
    participant_done_at(study, hours_ago(5), email="ana@example.org")
    reminders_plan(now=timezone.now())
    [reminder_id] = reminders_queue(now=timezone.now())

    outcomes = []
    for _attempt in range(3):
        outcome = reminder_send(reminder_id=reminder_id)
        outcomes.append((outcome.result, outcome.retry_in))
        row = Reminder.objects.get()
        if outcome.result == "retry":
            assert row.next_attempt_at is not None
            # Not before its time: a second message for it changes nothing.
            assert reminder_send(reminder_id=reminder_id).result == "skipped"
            Reminder.objects.filter(pk=reminder_id).update(
                next_attempt_at=datetime(2020, 1, 1, tzinfo=UTC)
            )

    assert outcomes == [("retry", 60), ("retry", 120), ("failed", 0)]
    row = Reminder.objects.get()
    assert (row.status, row.attempts, row.sent_at) == ("failed", 3, None)
    assert row.last_error.startswith("ConnectionRefusedError")


def test_an_smtp_server_down_then_up_sends_once(smtp_settings: SmtpServer) -> None:
    study = three_visits(reminder_closing_hours=2)
    participant_done_at(study, hours_ago(5), email="ana@example.org")
    reminders_plan(now=timezone.now())
    [reminder_id] = reminders_queue(now=timezone.now())
    assert reminder_send(reminder_id=reminder_id).result == "retry"

    smtp_settings.start()
    Reminder.objects.filter(pk=reminder_id).update(next_attempt_at=timezone.now())
    assert reminder_send(reminder_id=reminder_id).result == "sent"

    assert [m["X-RcptTo"] for m in smtp_settings.messages()] == ["ana@example.org"]
    assert list(Reminder.objects.values_list("status", "attempts", "last_error")) == [
        ("sent", 2, "")
    ]


def test_a_withdrawn_participant_is_never_reminded(smtp_settings: SmtpServer) -> None:
    smtp_settings.start()
    study = three_visits(reminder_closing_hours=2)
    participant = participant_done_at(study, hours_ago(5), email="ana@example.org")
    reminders_plan(now=timezone.now())
    [reminder_id] = reminders_queue(now=timezone.now())
    Participant.objects.filter(pk=participant.pk).update(withdrawn_at=timezone.now())

    assert reminder_send(reminder_id=reminder_id).result == "cancelled"
    assert smtp_settings.messages() == []


def test_make_run_sends_with_the_console_backend(
    settings: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    from django.core.management import call_command

    # make run: no broker (tasks run in this process), no EMAIL_HOST (the console backend).
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"  # type: ignore[attr-defined]
    settings.SITE_URL = SITE  # type: ignore[attr-defined]
    study = three_visits(reminder_closing_hours=2)
    participant = participant_done_at(study, hours_ago(5), email="ana@example.org", language="en")

    call_command("send_reminders")

    out = capsys.readouterr().out
    printed, _separator, rest = out.partition("\n" + "-" * 79 + "\n")
    message = email.message_from_string(printed)
    assert message["To"] == "ana@example.org"
    assert subject_of(message) == "Your next session of “Ketamine follow-up” is open"
    assert f"{SITE}/r/{participant.token}/" in body_of(message)
    assert rest == "1 reminder(s) queued\n"
    assert list(Reminder.objects.values_list("status", flat=True)) == ["sent"]


@pytest.mark.parametrize(
    ("code", "outcome", "status"), [(550, "failed", "failed"), (452, "retry", "pending")]
)
def test_a_refused_recipient_fails_at_once_when_permanent_and_is_retried_when_not(
    smtp_settings: SmtpServer, tmp_path: Path, code: int, outcome: str, status: str
) -> None:
    smtp_settings.handler = "tests.reminders.smtp_server.RefusingMailbox"
    smtp_settings.mail_dir = tmp_path / f"refuse-{code}"
    smtp_settings.start()
    study = three_visits(reminder_closing_hours=2)
    participant_done_at(study, hours_ago(5), email="nobody@example.org")
    reminders_plan(now=timezone.now())
    [reminder_id] = reminders_queue(now=timezone.now())

    assert reminder_send(reminder_id=reminder_id).result == outcome

    row = Reminder.objects.get()
    assert (row.status, row.attempts, row.sent_at) == (status, 1, None)
    assert row.last_error.startswith("refused by the mail server:")
    assert str(code) in row.last_error
