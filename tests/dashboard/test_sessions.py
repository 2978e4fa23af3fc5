"""Sessions table (filters, pages), participant page (trials and scores), withdrawal."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from dashboard.models import Withdrawal
from scoring.models import Score
from tests.dashboard.builders import bulk_study, enrol_and_complete, member
from trials.models import Participant, ParticipantIdentity, Response, Session, Study, Trial
from trials.services.enrolment import study_enrol

pytestmark = pytest.mark.django_db


@pytest.fixture
def three(study: Study) -> dict[str, Session]:
    """ok (patients, scored, no flag), away (controls, flagged many_away), fresh (created)."""
    Study.objects.filter(pk=study.pk).update(min_valid_per_valence=2)
    study.refresh_from_db()
    ok = enrol_and_complete(study, external_id="PROLIFIC-OK", arm="patients")
    away = enrol_and_complete(
        study, external_id="away", arm="controls", good_shift=-4, bad_shift=-4
    )
    fresh = study_enrol(study=study, external_id="fresh", arm_code="controls").session
    Session.objects.filter(pk=fresh.pk).update(created_at=timezone.now() - timedelta(days=3))
    # Four events are too few to compare models (score version 2 flags both sessions
    # too_few_for_models); the table reads the stored flags, so ok is made the
    # unflagged session here.
    Score.objects.filter(session=ok, flags=["too_few_for_models"]).update(flags=[])
    return {"ok": ok, "away": away, "fresh": fresh}


def listed(client: Client, query: str = "") -> list[int]:
    response = client.get(f"/dashboard/s/small/sessions/{query}")
    assert response.status_code == 200, response.context["form"].errors
    return [row["pk"] for row in response.context["page"].object_list]


def test_filters(client_as: Callable[[str], Client], three: dict[str, Session]) -> None:
    client = client_as("analyst")
    ok, away, fresh = three["ok"].pk, three["away"].pk, three["fresh"].pk
    assert sorted(listed(client)) == sorted([ok, away, fresh])
    assert listed(client, "?status=created") == [fresh]
    assert sorted(listed(client, "?status=completed")) == sorted([ok, away])
    assert listed(client, "?flag=any") == [away]
    assert listed(client, "?flag=many_away") == [away]
    assert listed(client, "?flag=fast_rt") == []
    assert listed(client, "?flag=none") == [ok]
    assert listed(client, "?flag=unscored") == [fresh]
    arm = three["ok"].participant.arm_id
    assert listed(client, f"?arm={arm}") == [ok]
    assert listed(client, f"?timepoint={three['ok'].timepoint_id}&status=completed&arm={arm}") == [
        ok
    ]
    today = timezone.localdate()
    assert sorted(listed(client, f"?date_from={today.isoformat()}")) == sorted([ok, away])
    assert listed(client, f"?date_to={(today - timedelta(days=1)).isoformat()}") == [fresh]
    assert listed(client, "?participant=PROLIFIC-OK") == [ok]
    assert listed(client, f"?participant=P{three['away'].participant_id}") == [away]
    assert listed(client, "?participant=nobody") == []


def test_bad_filters_are_refused_with_the_field_named(
    client_as: Callable[[str], Client], three: dict[str, Session]
) -> None:
    response = client_as("analyst").get(
        "/dashboard/s/small/sessions/?status=done&date_from=yesterday"
    )
    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"status", "date_from"}


def test_flags_show_in_the_table(
    client_as: Callable[[str], Client], three: dict[str, Session]
) -> None:
    body = client_as("analyst").get("/dashboard/s/small/sessions/").content.decode()
    assert 'class="badge flag" title="Many updates away from the base rate">many_away<' in body


def test_pages_of_fifty(db: None) -> None:
    study = bulk_study(n_sessions=120, slug="paged")
    client = Client()
    client.force_login(member(study, "analyst"))
    first = client.get("/dashboard/s/paged/sessions/?status=")
    assert first.context["page"].paginator.num_pages == 3
    assert len(first.context["page"].object_list) == 50
    third = client.get("/dashboard/s/paged/sessions/?status=&page=3")
    assert len(third.context["page"].object_list) == 20
    assert 'href="?status=&amp;page=2"' in third.content.decode()
    seen = listed_ids = [
        r["pk"]
        for p in (1, 2, 3)
        for r in client.get(f"/dashboard/s/paged/sessions/?page={p}").context["page"].object_list
    ]
    assert len(set(listed_ids)) == 120 == len(seen)


def test_participant_page_shows_trials_and_scores(
    client_as: Callable[[str], Client], three: dict[str, Session]
) -> None:
    session = three["ok"]
    response = client_as("analyst").get(
        f"/dashboard/s/small/participants/{session.participant_id}/"
    )
    detail = response.context["detail"]
    assert detail.identity.external_id == "PROLIFIC-OK"
    (item,) = detail.sessions
    trials = item["trials"]
    # Practice first, then block-1 order; every good-news trial moved 6, bad-news 3.
    assert trials[0]["practice"] is True and trials[0]["exclusion_reason"] == "practice"
    main = trials[1:]
    assert [t["block1_position"] for t in main] == [1, 2, 3, 4]
    for t in main:
        assert t["e1"] - t["br"] in (15, -10)
        expected = ("good", 6) if t["e1"] > t["br"] else ("bad", 3)
        assert (t["valence"], t["update"]) == expected
        assert t["ee"] == abs(t["e1"] - t["br"])
    assert item["score"].values["n_good"] == 2 and item["score"].values["update_bias"] == 3.0
    body = response.content.decode()
    assert 'class="valence-good">good<' in body and "update_bias" in body


def test_the_latin_square_row_is_numbered_as_in_the_api(
    client_as: Callable[[str], Client], three: dict[str, Session]
) -> None:
    """One numbering: the dashboard shows the API's `sequence` (from 0), lists from 0 too."""
    participant = three["ok"].participant
    Participant.objects.filter(pk=participant.pk).update(sequence=1)
    client = client_as("analyst")
    page = client.get(f"/dashboard/s/small/participants/{participant.pk}/").content.decode()
    assert '<dd data-field="sequence">1</dd>' in page
    api = client.get("/api/v1/studies/small/participants/").json()
    rows = api["results"] if isinstance(api, dict) else api
    assert [r["sequence"] for r in rows if r["id"] == participant.pk] == [1]
    lists = client_as("owner").get("/dashboard/s/small/setup/lists/").content.decode()
    assert '<td class="num">0</td>' in lists and "counted from 0" in lists


def test_withdrawal_deletes_the_data_and_keeps_the_record(
    client_as: Callable[[str], Client], three: dict[str, Session], users: dict[str, User]
) -> None:
    session = three["ok"]
    participant = session.participant
    counts = (
        Response.objects.filter(session=session).count(),
        Trial.objects.filter(session=session).count(),
        Score.objects.filter(session=session).count(),
    )
    assert counts == (14, 5, 1)
    other_responses = Response.objects.exclude(session=session).count()
    client = client_as("analyst")
    # Without the confirmation box nothing happens.
    refused = client.post(f"/dashboard/s/small/participants/{participant.pk}/withdraw/", {})
    assert refused.status_code == 400
    assert "confirm" in refused.context["form"].errors
    assert Response.objects.filter(session=session).count() == 14

    response = client.post(
        f"/dashboard/s/small/participants/{participant.pk}/withdraw/",
        {"confirm": "on", "reason": "asked by e-mail"},
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [
        f"P{participant.pk} is withdrawn: 14 answers, 5 trials, 1 scores and 1 recruiter id(s) "
        "were deleted. The withdrawal is recorded."
    ]
    assert b'id="withdrawn-note"' in response.content
    assert Response.objects.filter(session=session).count() == 0
    assert Trial.objects.filter(session=session).count() == 0
    assert Score.objects.filter(session=session).count() == 0
    assert not ParticipantIdentity.objects.filter(participant=participant).exists()
    assert Response.objects.count() == other_responses  # nobody else's data
    participant.refresh_from_db()
    assert participant.withdrawn_at is not None
    record = Withdrawal.objects.get(participant_pk=participant.pk)
    assert (
        record.study_id,
        record.withdrawn_by_username,
        record.reason,
        record.n_sessions_kept,
        record.n_responses_deleted,
        record.n_trials_deleted,
        record.n_scores_deleted,
        record.n_identities_deleted,
    ) == (session.participant.study_id, "analyst-small", "asked by e-mail", 1, 14, 5, 1, 1)
    entry = AuditEntry.objects.get(action="participant.withdraw")
    assert (entry.actor_name, entry.target, entry.detail["responses"]) == (
        "analyst-small",
        f"P{participant.pk}",
        14,
    )
    # A second withdrawal is refused and writes nothing more.
    again = client.post(
        f"/dashboard/s/small/participants/{participant.pk}/withdraw/", {"confirm": "on"}
    )
    assert again.status_code == 400
    assert Withdrawal.objects.count() == 1
    # Left out of the counts and the results.
    data = client.get("/dashboard/s/small/overview.json").json()
    assert (data["totals"]["completed"], data["withdrawn"]) == (1, 1)
    results = client.get("/dashboard/s/small/results/").context["results"]
    assert results.n_sessions == 1


def test_a_session_in_progress_is_closed_at_withdrawal(
    client_as: Callable[[str], Client], three: dict[str, Session]
) -> None:
    fresh = three["fresh"]
    client_as("owner").post(
        f"/dashboard/s/small/participants/{fresh.participant_id}/withdraw/", {"confirm": "on"}
    )
    fresh.refresh_from_db()
    assert fresh.status == Session.Status.ABANDONED
    assert Participant.objects.get(pk=fresh.participant_id).withdrawn_at is not None
