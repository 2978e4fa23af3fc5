"""Every researcher endpoint x every caller: the status, and nothing leaked or written.

Roles (trials/access.py): owner and analyst read everything and may import and
re-score; a viewer reads the study, its summary and its codebook only (aggregates: no
participant, session, trial, response or per-session score). A study one is not a member
of answers 404 like a missing one; staff have no special access; a read token cannot
write; expired, revoked, unknown and participant tokens are 401.
"""

from typing import Any

import pytest
from django.core.cache import cache

from audit.models import AuditEntry
from scoring.models import Score
from tests.api.conftest import Researchers
from trials.models import Participant, Response, Session, Trial

BASE = "/api/v1/studies/"
GOOD_IMPORT = "participant,arm,timepoint,event_code,e1,br,e2\nX1,patients,baseline,A01,40,20,35\n"

# (method, path under the study or None for the list, role needed: 0 any member,
# 1 viewer, 2 analyst)
ENDPOINTS = [
    ("get", None, 0),
    ("get", "", 1),
    ("get", "participants/", 2),
    ("get", "participants/?include=external_id", 2),
    ("get", "sessions/", 2),
    ("get", "trials/", 2),
    ("get", "trials/?format=csv", 2),
    ("get", "trials/?format=parquet", 2),
    ("get", "responses/", 2),
    ("get", "responses/?format=csv", 2),
    ("get", "scores/", 2),
    ("get", "scores/?format=csv", 2),
    ("get", "summary/?model=false", 1),
    ("get", "codebook/", 1),
    ("get", "codebook/?format=csv", 1),
    ("post", "imports/", 2),
    ("post", "rescore", 2),
]

RANK = {"owner": 3, "analyst": 2, "viewer": 1}
CALLERS = [
    "owner",
    "analyst",
    "viewer",
    "stranger",
    "staff",
    "owner_read",
    "owner_expired",
    "owner_revoked",
    "anonymous",
    "participant",
]


def _counts() -> dict[str, int]:
    return {
        "participants": Participant.objects.count(),
        "sessions": Session.objects.count(),
        "trials": Trial.objects.count(),
        "responses": Response.objects.count(),
        "audit": AuditEntry.objects.count(),
        "scores_pending": Score.objects.filter(status="pending").count(),
    }


def _expected(caller: str, method: str, need: int, own: bool, list_view: bool) -> int:
    if caller in ("owner_expired", "owner_revoked", "anonymous", "participant"):
        return 401
    if caller == "owner_read" and method == "post":
        return 403
    if list_view:
        return 200
    role = RANK.get(caller.removesuffix("_read"), 0)
    if not own or role == 0:
        return 404
    if role < need:
        return 403
    return 200


def _call(client: Any, method: str, url: str) -> Any:
    if method == "post" and url.endswith("imports/"):
        return client.post(url, data=GOOD_IMPORT, content_type="text/csv")
    if method == "post":
        return client.post(url)
    return client.get(url)


def _body(response: Any) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return bytes(response.content)


@pytest.mark.django_db
@pytest.mark.parametrize("caller", CALLERS)
def test_every_endpoint_for_every_caller(
    researchers: Researchers, caller: str, django_capture_on_commit_callbacks: Any
) -> None:
    if caller == "participant":
        session = Session.objects.filter(participant__study=researchers.study).first()
        assert session is not None
        client = researchers.client(None)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {session.token}")
    elif caller == "anonymous":
        client = researchers.client(None)
    else:
        client = researchers.client(caller)
    failures = []
    for study, own in ((researchers.study, True), (researchers.other, False)):
        for method, path, need in ENDPOINTS:
            url = BASE if path is None else f"{BASE}{study.slug}/{path}"
            if path is None and not own:
                continue
            expected = _expected(caller, method, need, own, path is None)
            if expected == 200 and method == "post":
                expected = 201 if path == "imports/" else 202
            cache.clear()  # the failed-authentication counter: each call on its own
            before = _counts()
            with django_capture_on_commit_callbacks(execute=False) as callbacks:
                response = _call(client, method, url)
            body = _body(response)
            if response.status_code != expected:
                failures.append((method, url, response.status_code, expected, body[:200]))
                continue
            if expected >= 400:
                error = response.json()["error"]
                assert set(error) >= {"code", "message", "fields"}, url
                # nothing leaked: no row of any study, no external id
                for secret in (b"PID-", b"patients", b'"results"', b"golden,"):
                    assert secret not in body, (caller, url, secret)
                assert _counts() == before, (caller, url)
                assert callbacks == [], (caller, url)
            elif path is None:
                slugs = [s["slug"] for s in response.json()["results"]]
                allowed = ["golden"] if caller in RANK or caller == "owner_read" else []
                assert slugs == allowed, caller
    assert failures == []


@pytest.mark.django_db
def test_viewer_sees_aggregates_without_participant_rows(researchers: Researchers) -> None:
    viewer = researchers.client("viewer")
    summary = viewer.get(f"{BASE}golden/summary/?model=false").json()
    assert summary["n_sessions"] == 8
    assert {g["arm"] for g in summary["groups"]} == {"patients", "controls"}
    assert b"PID-" not in viewer.get(f"{BASE}golden/").content
    refused = viewer.get(f"{BASE}golden/scores/")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"


@pytest.mark.django_db
def test_external_ids_only_on_request(researchers: Researchers) -> None:
    analyst = researchers.client("analyst")
    plain = analyst.get(f"{BASE}golden/participants/").json()["results"]
    assert all("external_id" not in p for p in plain)
    with_ids = analyst.get(f"{BASE}golden/participants/?include=external_id").json()["results"]
    assert [p["external_id"] for p in with_ids] == ["PID-000", "PID-001", "PID-002", "PID-003"]
    trials = b"".join(analyst.get(f"{BASE}golden/trials/?format=csv").streaming_content)
    assert b"PID-" not in trials and b"external_id" not in trials
    tagged = b"".join(
        analyst.get(f"{BASE}golden/trials/?format=csv&include=external_id").streaming_content
    )
    assert tagged.splitlines()[0].endswith(b",external_id")
    assert tagged.splitlines()[1].endswith(b",PID-000")
    # never the participant's or the session's link token
    tokens = list(Participant.objects.values_list("token", flat=True)) + list(
        Session.objects.values_list("token", flat=True)
    )
    for token in tokens:
        assert token.encode() not in tagged
