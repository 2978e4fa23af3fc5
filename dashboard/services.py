"""Writes of the dashboard: withdrawals (setup: trials.services.study_setup; the group fit:
scoring.services).

Every write checks its whole input first and raises InvalidInput with the offending
fields named (nothing is written), or Conflict when the study's state forbids it. Each
change is also appended to the audit log.
"""

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.services import audit_record
from dashboard.models import Withdrawal
from reminders.services import contact_delete
from scoring.models import Score
from trials.models import (
    Participant,
    ParticipantIdentity,
    Response,
    Session,
    Study,
    Trial,
)
from trials.services.errors import Conflict, NotFound
from trials.services.withdrawn import withdrawn_identities_block

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- withdrawal


@transaction.atomic
def participant_withdraw(
    *, study: Study, participant_id: int, actor: Any, reason: str = ""
) -> Withdrawal:
    """Delete a participant's responses, trials, scores, questionnaire answers and ratings,
    recruiter id and e-mail address.

    The participant row and their sessions stay (as counts, with no answer in them) so that
    the Latin square stays balanced; unfinished sessions are closed as abandoned.
    """
    participant = (
        Participant.objects.select_for_update().filter(study=study, pk=participant_id).first()
    )
    if participant is None:
        raise NotFound(_("No such participant in this study."))
    if participant.withdrawn_at is not None:
        raise Conflict(_("This participant has withdrawn already."), code="withdrawn")
    sessions = Session.objects.filter(participant=participant)
    # An answer claims its step with an UPDATE of the session row in the statement that
    # inserts it. Locking every session first waits for an answer in flight to commit (the
    # DELETE below, a later statement, then sees its row); closing the open ones makes any
    # later answer's claim find the session abandoned, so it inserts nothing.
    session_ids = list(sessions.select_for_update().order_by("pk").values_list("pk", flat=True))
    sessions.filter(status__in=[Session.Status.CREATED, Session.Status.IN_PROGRESS]).update(
        status=Session.Status.ABANDONED
    )
    n_responses, _detail = Response.objects.filter(session_id__in=session_ids).delete()
    n_scores, _detail = Score.objects.filter(session_id__in=session_ids).delete()
    n_trials, _detail = Trial.objects.filter(session_id__in=session_ids).delete()
    n_items = _instrument_data_delete(session_ids)
    identities = list(ParticipantIdentity.objects.filter(participant=participant))
    withdrawn_identities_block(study=study, participant_pk=participant.pk, identities=identities)
    n_identities, _detail = ParticipantIdentity.objects.filter(participant=participant).delete()
    n_contacts = contact_delete(participant=participant)
    now = timezone.now()
    Participant.objects.filter(pk=participant.pk).update(withdrawn_at=now)
    withdrawal = Withdrawal.objects.create(
        study=study,
        participant_pk=participant.pk,
        withdrawn_by=actor if getattr(actor, "is_authenticated", False) else None,
        withdrawn_by_username=getattr(actor, "username", "") or str(actor),
        withdrawn_at=now,
        reason=reason.strip(),
        n_sessions_kept=len(session_ids),
        n_responses_deleted=n_responses,
        n_trials_deleted=n_trials,
        n_scores_deleted=n_scores,
        n_identities_deleted=n_identities,
    )
    audit_record(
        actor=actor,
        action="participant.withdraw",
        study=study.slug,
        target=f"P{participant.pk}",
        detail={
            "responses": n_responses,
            "trials": n_trials,
            "scores": n_scores,
            "identities": n_identities,
            "contacts": n_contacts,
            "item_answers": n_items,
        },
    )
    return withdrawal


def _instrument_data_delete(session_ids: list[int]) -> int:
    """The questionnaire answers (in the session or a clinician's), ratings and instrument
    scores of these sessions; returns the item answers deleted."""
    from instruments.models import InstrumentScore, ItemAnswer, Rating

    n_items, _detail = ItemAnswer.objects.filter(session_id__in=session_ids).delete()
    InstrumentScore.objects.filter(session_id__in=session_ids).delete()
    Rating.objects.filter(session_id__in=session_ids).delete()
    return n_items
