"""The participant's address: opt in, refusals that store nothing, opt out, stop, withdrawal."""

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from dashboard.services import participant_withdraw
from reminders.models import Contact, Reminder
from tests.factories import make_study
from trials.models import Participant, Study
from trials.services.enrolment import study_enrol

pytestmark = pytest.mark.django_db


def enrolled(study: Study, **kwargs: object) -> Participant:
    return study_enrol(study=study, language="fr", **kwargs).participant  # type: ignore[arg-type]


def post_contact(client: Client, token: str, body: object) -> tuple[int, object]:
    response = client.post(
        f"/api/v1/participants/{token}/contact",
        data=json.dumps(body),
        content_type="application/json",
    )
    return response.status_code, response.json() if response.content else None


def add_reminder(participant: Participant, status: str) -> Reminder:
    timepoint = participant.study.timepoints.order_by("order").last()
    assert timepoint is not None
    return Reminder.objects.create(
        participant=participant,
        timepoint=timepoint,
        kind="opens",
        status=status,
        opens_at="2026-03-03T10:00:00Z",
        sent_at="2026-03-03T10:01:00Z" if status == "sent" else None,
    )


@pytest.fixture
def study() -> Study:
    return make_study(slug="visits3", title="Three visits", n_timepoints=3, collect_email=True)


def test_an_address_is_stored_with_its_consent_time_and_zone(study: Study, client: Client) -> None:
    participant = enrolled(study)

    status, body = post_contact(
        client,
        participant.token,
        {"email": "  Ana.Silva@Example.ORG ", "time_zone": "Europe/Paris"},
    )

    assert (status, body) == (204, None)
    contact = Contact.objects.get()
    assert (contact.participant_id, contact.study_id, contact.email, contact.time_zone) == (
        participant.pk,
        study.pk,
        "Ana.Silva@example.org",
        "Europe/Paris",
    )
    assert contact.consented_at is not None
    # A second address replaces the first: one per participant.
    assert post_contact(client, participant.token, {"email": "ana@example.net"})[0] == 204
    assert list(Contact.objects.values_list("email", "time_zone")) == [("ana@example.net", "")]


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("ana.example.org", "This is not an e-mail address (e.g. name@example.org)."),
        ("ana@", "This is not an e-mail address (e.g. name@example.org)."),
        ("", "Enter an e-mail address."),
        (12, "Enter an e-mail address."),
        ("a" * 250 + "@x.org", "An e-mail address has at most 254 characters."),
    ],
)
def test_an_invalid_address_is_refused_and_nothing_is_stored(
    study: Study, client: Client, email: object, message: str
) -> None:
    participant = enrolled(study)
    post_contact(client, participant.token, {"email": "kept@example.org"})

    status, body = post_contact(client, participant.token, {"email": email})

    assert status == 400
    assert body == {
        "error": {"code": "invalid", "message": message, "fields": {"email": [message]}}
    }
    assert list(Contact.objects.values_list("email", flat=True)) == ["kept@example.org"]


def test_an_unknown_time_zone_is_refused(study: Study, client: Client) -> None:
    participant = enrolled(study)
    status, body = post_contact(
        client, participant.token, {"email": "a@example.org", "time_zone": "Mars/Olympus"}
    )
    assert status == 400
    assert body["error"]["fields"] == {"time_zone": ["Unknown time zone."]}  # type: ignore[index]
    assert Contact.objects.count() == 0


def test_a_study_that_does_not_collect_addresses_refuses_them(client: Client) -> None:
    study = make_study(slug="noemail", n_timepoints=2)
    participant = enrolled(study)

    status, body = post_contact(client, participant.token, {"email": "a@example.org"})

    assert status == 409
    assert body == {
        "error": {
            "code": "email_not_collected",
            "message": "This study does not collect e-mail addresses.",
            "fields": {},
        }
    }
    assert Contact.objects.count() == 0


def test_a_prolific_participant_is_never_asked_even_where_the_study_collects(
    study: Study, client: Client
) -> None:
    participant = enrolled(study, external_id="5f1a2b3c4d5e6f7a8b9c0d1e", source="prolific")
    status, body = post_contact(client, participant.token, {"email": "a@example.org"})
    assert status == 409
    assert body["error"]["code"] == "email_not_collected"  # type: ignore[index]
    assert Contact.objects.count() == 0


@pytest.mark.parametrize("token", ["x" * 32, "not a token", "a" * 200])
def test_an_unknown_or_malformed_token_is_a_404(study: Study, client: Client, token: str) -> None:
    status, body = post_contact(client, token, {"email": "a@example.org"})
    assert status == 404
    assert body["error"]["code"] == "not_found"  # type: ignore[index]
    assert client.delete(f"/api/v1/participants/{token}/contact").status_code == 404
    assert Contact.objects.count() == 0


def test_delete_forgets_the_address_and_cancels_what_was_not_sent(
    study: Study, client: Client
) -> None:
    participant = enrolled(study)
    post_contact(client, participant.token, {"email": "a@example.org"})
    sent = add_reminder(participant, "sent")
    pending = Reminder.objects.create(
        participant=participant,
        timepoint=study.timepoints.get(order=1),
        kind="closing",
        opens_at="2026-03-03T10:00:00Z",
    )

    response = client.delete(f"/api/v1/participants/{participant.token}/contact")

    assert (response.status_code, response.content) == (204, b"")
    assert Contact.objects.count() == 0
    assert dict(Reminder.objects.values_list("pk", "status")) == {
        sent.pk: "sent",
        pending.pk: "cancelled",
    }
    # Idempotent: nothing left to delete is still a 204.
    assert client.delete(f"/api/v1/participants/{participant.token}/contact").status_code == 204


def test_the_stop_link_asks_first_and_a_one_click_post_stops(study: Study) -> None:
    participant = enrolled(study)
    Contact.objects.create(
        participant=participant,
        study=study,
        email="a@example.org",
        consented_at="2026-03-01T00:00Z",
    )
    # CSRF checks on, as in production: a mail client's one-click POST carries no token.
    client = Client(enforce_csrf_checks=True)
    url = f"/r/{participant.token}/stop/"

    page = client.get(url)  # what a mail scanner prefetching links does

    assert page.status_code == 200
    assert "Arrêter les rappels" in page.content.decode()
    assert Contact.objects.count() == 1

    stopped = client.post(
        url, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )

    assert stopped.status_code == 200
    assert "Vous ne recevrez plus de rappels" in stopped.content.decode()
    assert Contact.objects.count() == 0
    assert client.get("/r/" + "x" * 32 + "/stop/").status_code == 404


def test_withdrawal_deletes_the_address(study: Study) -> None:
    participant = enrolled(study)
    Contact.objects.create(
        participant=participant,
        study=study,
        email="a@example.org",
        consented_at="2026-03-01T00:00Z",
    )
    pending = add_reminder(participant, "pending")
    actor = User.objects.create_user("ra")

    participant_withdraw(study=study, participant_id=participant.pk, actor=actor)

    assert Contact.objects.count() == 0
    assert Reminder.objects.get(pk=pending.pk).status == "cancelled"
    # The withdrawn participant's link is revoked: answered as an unknown one.
    status, body = post_contact(Client(), participant.token, {"email": "a@example.org"})
    assert status == 404
    assert Client().get(f"/r/{participant.token}/stop/").status_code == 404
    assert Contact.objects.count() == 0


def render_form(participant: Participant) -> str:
    from django.template.loader import render_to_string
    from django.utils import translation

    with translation.override(participant.language):
        return render_to_string("reminders/_contact_form.html", {"participant": participant})


def test_the_completion_field_is_offered_only_where_allowed(study: Study) -> None:
    offered = enrolled(study)
    html = render_form(offered)
    assert 'id="reminder-form"' in html
    assert "J'accepte de recevoir ces rappels par e-mail." in html
    assert "conservée à part de vos réponses, n'est jamais partagée ni exportée" in html

    prolific = enrolled(study, external_id="5f1a2b3c4d5e6f7a8b9c0d1e", source="prolific")
    assert render_form(prolific).strip() == ""
    assert render_form(enrolled(make_study(slug="off", n_timepoints=2))).strip() == ""

    Contact.objects.create(
        participant=offered, study=study, email="a@example.org", consented_at="2026-03-01T00:00Z"
    )
    html = render_form(offered)
    assert 'id="reminder-form"' not in html
    assert f'href="/r/{offered.token}/stop/"' in html
    assert "a@example.org" not in html  # the page never shows the address back
