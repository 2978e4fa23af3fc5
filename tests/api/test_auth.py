"""API tokens: stored as a hash, shown once, scoped, expiring, revocable, throttled."""

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import token_create, token_revoke
from tests.api.conftest import Researchers
from trials.models import Session

STUDY = "/api/v1/studies/golden/"


def _bearer(key: str, keyword: str = "Bearer") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {key}")
    return client


@pytest.mark.django_db
def test_only_a_prefix_and_a_hash_are_stored() -> None:
    user = User.objects.create_user("r1")
    new = token_create(user=user, scope="write", name="laptop")
    row = ApiToken.objects.get(pk=new.token.pk)
    assert len(new.key) == 43  # 32 bytes, URL-safe base64
    assert row.prefix == new.key[:8]
    assert row.key_hash == hashlib.sha256(new.key.encode()).hexdigest()
    stored = [str(v) for v in ApiToken.objects.values_list().get(pk=row.pk)]
    assert new.key not in stored


@pytest.mark.django_db
def test_command_prints_the_token_as_its_last_line() -> None:
    User.objects.create_user("alice")
    out = StringIO()
    call_command(
        "create_api_token", "alice", "--scope", "write", "--expires-days", "30", stdout=out
    )
    key = out.getvalue().strip().splitlines()[-1]
    token = ApiToken.objects.get(key_hash=hashlib.sha256(key.encode()).hexdigest())
    assert token.scope == "write"
    assert token.user.username == "alice"
    assert token.expires_at is not None
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    with pytest.raises(CommandError):
        call_command("create_api_token", "nobody", stdout=StringIO())
    with pytest.raises(CommandError):
        call_command("create_api_token", "alice", "--expires-days", "0", stdout=StringIO())
    assert ApiToken.objects.count() == 1


@pytest.mark.django_db
def test_command_and_dashboard_share_one_default_expiry() -> None:
    """90 days unless asked otherwise, from the command line as from the dashboard's form."""
    from dashboard.forms import TokenForm

    User.objects.create_user("alice")
    out = StringIO()
    call_command("create_api_token", "alice", stdout=out)
    assert "expires 20" in out.getvalue()
    lapses = ApiToken.objects.get().expires_at
    assert lapses is not None
    assert timedelta(days=89, hours=23) < lapses - timezone.now() <= timedelta(days=90)
    assert TokenForm().fields["expires_days"].initial == 90
    call_command("create_api_token", "alice", "--no-expiry", stdout=StringIO())
    assert ApiToken.objects.filter(expires_at__isnull=True).count() == 1
    with pytest.raises(CommandError):
        call_command(
            "create_api_token", "alice", "--no-expiry", "--expires-days", "5", stdout=StringIO()
        )
    assert ApiToken.objects.count() == 2


@pytest.mark.django_db
def test_bearer_and_drf_token_keywords_both_work(researchers: Researchers) -> None:
    key = researchers.tokens["owner"]
    assert _bearer(key).get(STUDY).status_code == 200
    assert _bearer(key, "Token").get(STUDY).status_code == 200
    assert _bearer(key, "bearer").get(STUDY).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "not_authenticated"),
        ("Bearer nope", "invalid_token"),
        ("Bearer", "invalid_token"),
        ("Bearer a b", "invalid_token"),
        ("Bearer " + "x" * 300, "invalid_token"),
        ("expired", "token_expired"),
        ("revoked", "token_revoked"),
        ("participant", "invalid_token"),
    ],
)
def test_refused_credentials_answer_401_in_the_error_shape(
    researchers: Researchers, header: str | None, code: str
) -> None:
    client = APIClient()
    session = Session.objects.filter(participant__study=researchers.study).first()
    assert session is not None
    values = {
        "expired": f"Bearer {researchers.tokens['owner_expired']}",
        "revoked": f"Bearer {researchers.tokens['owner_revoked']}",
        "participant": f"Bearer {session.token}",
    }
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=values.get(header, header))
    response = client.get(STUDY)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert set(body["error"]) == {"code", "message", "fields"}


@pytest.mark.django_db
def test_revoking_is_idempotent_and_immediate(researchers: Researchers) -> None:
    new = token_create(user=researchers.users["owner"], scope="read")
    assert _bearer(new.key).get(STUDY).status_code == 200
    assert token_revoke(token=new.token) is True
    assert token_revoke(token=new.token) is False
    assert _bearer(new.key).get(STUDY).status_code == 401


@pytest.mark.django_db
def test_last_use_is_written_at_most_once_a_minute(
    researchers: Researchers, django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    new = token_create(user=researchers.users["owner"], scope="read")
    client = _bearer(new.key)
    # token + user (1), UPDATE last_used_at (2), study with role (3) + 3 prefetches (6)
    with django_assert_num_queries(6):
        assert client.get(STUDY).status_code == 200
    first = ApiToken.objects.get(pk=new.token.pk).last_used_at
    assert first is not None
    # within the minute: no UPDATE
    with django_assert_num_queries(5):
        assert client.get(STUDY).status_code == 200
    assert ApiToken.objects.get(pk=new.token.pk).last_used_at == first
    ApiToken.objects.filter(pk=new.token.pk).update(last_used_at=first - timedelta(seconds=61))
    assert client.get(STUDY).status_code == 200
    assert ApiToken.objects.get(pk=new.token.pk).last_used_at > first


@pytest.mark.django_db
def test_repeated_failed_authentication_is_throttled(researchers: Researchers, settings) -> None:  # type: ignore[no-untyped-def]
    for _ in range(20):
        assert _bearer("wrong-token").get(STUDY).status_code == 401
    refused = _bearer("wrong-token").get(STUDY)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert "Retry-After" in refused
    # Even a good token from that address waits: the window is per address.
    assert _bearer(researchers.tokens["owner"]).get(STUDY).status_code == 429
    # Another address is not affected.
    other = _bearer(researchers.tokens["owner"])
    assert other.get(STUDY, REMOTE_ADDR="10.9.8.7").status_code == 200


@pytest.mark.django_db
def test_login_session_works_for_reads_and_csrf_guards_writes(researchers: Researchers) -> None:
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="owner", password="pw-123456")
    assert client.get(STUDY).status_code == 200
    refused = client.post(STUDY + "rescore")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"


@pytest.mark.django_db
def test_inactive_user_token_is_refused(researchers: Researchers) -> None:
    User.objects.filter(username="analyst").update(is_active=False)
    assert _bearer(researchers.tokens["analyst"]).get(STUDY).status_code == 401
