"""The study's reminder settings: off by default, refused where recruiters forbid e-mail."""

import pytest
from django.contrib.auth.models import User

from dashboard.forms import StudyForm
from tests.factories import make_study
from trials.models import Study
from trials.services.enrolment import study_enrol
from trials.services.errors import InvalidInput
from trials.services.study_setup import study_update

pytestmark = pytest.mark.django_db


def values(study: Study, **changes: object) -> dict[str, object]:
    return {**StudyForm.initial_for(study), **changes} | {
        "consent_text": study.consent_text,
        "debrief_text": study.debrief_text,
        "title_texts": study.title_texts,
        "description_texts": study.description_texts,
    }


def test_email_is_off_by_default_and_the_closing_reminder_24_h() -> None:
    study = make_study(slug="s")
    assert (study.collect_email, study.reminder_closing_hours) == (False, 24)
    assert (
        StudyForm.initial_new()["collect_email"],
        StudyForm.initial_new()["reminder_closing_hours"],
    ) == (False, 24)


def test_an_owner_turns_reminders_on() -> None:
    study = make_study(slug="s")
    study_update(
        study=study,
        actor=User.objects.create_user("o"),
        values=values(study, collect_email=True, reminder_closing_hours=6),
    )
    study.refresh_from_db()
    assert (study.collect_email, study.reminder_closing_hours) == (True, 6)


@pytest.mark.parametrize("recruiter", ["prolific", "sona"])
def test_email_cannot_be_turned_on_for_prolific_or_sona_participants(recruiter: str) -> None:
    study = make_study(slug="s")
    study_enrol(study=study, external_id="5f1a2b3c4d5e6f7a8b9c0d1e", source=recruiter)

    with pytest.raises(InvalidInput) as refused:
        study_update(
            study=study,
            actor=User.objects.create_user("o"),
            values=values(study, collect_email=True),
        )

    assert list(refused.value.fields) == ["collect_email"]
    assert "Prolific, SONA, MTurk" in refused.value.fields["collect_email"][0]
    study.refresh_from_db()
    assert study.collect_email is False


def test_email_cannot_be_turned_on_with_a_prolific_redirect() -> None:
    study = make_study(slug="s")
    with pytest.raises(InvalidInput):
        study_update(
            study=study,
            actor=User.objects.create_user("o"),
            values=values(
                study,
                collect_email=True,
                redirect_url="https://app.prolific.com/submissions/complete?cc=C0DE",
            ),
        )
    study.refresh_from_db()
    assert study.collect_email is False
