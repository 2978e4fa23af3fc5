"""Sticky withdrawal: a withdrawn participant's recruiter id may not enrol again.

Only a keyed digest of the id is kept (HMAC-SHA256 with the project's SECRET_KEY, salted
per study): the withdrawal deletes the id itself, and a digest of a small SONA number
without the key cannot be reversed by trying every number. Rotating SECRET_KEY forgets the
digests (those ids could enrol again): the README says so under SECRET_KEY.
"""

from collections.abc import Iterable
from typing import Any

from django.utils.crypto import salted_hmac

from audit.services import audit_record
from trials.models import ParticipantIdentity, Study, WithdrawnIdentity

_SALT = "trials.withdrawn-identity"


def identity_digest(*, study: Study, external_id: str) -> str:
    """The keyed digest of a recruiter id in one study."""
    return salted_hmac(_SALT, f"{study.pk}\n{external_id}", algorithm="sha256").hexdigest()


def withdrawn_identities_block(
    *, study: Study, participant_pk: int, identities: Iterable[ParticipantIdentity]
) -> int:
    """Remember the digests of a withdrawing participant's ids; returns how many."""
    rows = [
        WithdrawnIdentity(
            study=study,
            participant_id=participant_pk,
            digest=identity_digest(study=study, external_id=identity.external_id),
        )
        for identity in identities
    ]
    WithdrawnIdentity.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def identity_withdrawn(*, study: Study, external_id: str) -> bool:
    """Whether this recruiter id belongs to a participant who withdrew (and was not reinstated)."""
    digest = identity_digest(study=study, external_id=external_id)
    return WithdrawnIdentity.objects.filter(study=study, digest=digest).exists()


def participant_reinstate(*, study: Study, participant_pk: int, actor: Any) -> int:
    """Let a withdrawn participant's recruiter id enrol again (as a new participant)."""
    released, _detail = WithdrawnIdentity.objects.filter(
        study=study, participant_id=participant_pk
    ).delete()
    if released:
        audit_record(
            actor=actor,
            action="participant.reinstate",
            study=study.slug,
            target=f"P{participant_pk}",
            detail={"identities": released},
        )
    return released
