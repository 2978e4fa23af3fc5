"""Writes of the dashboard: withdrawals and the group fit (setup: trials.services.study_setup).

Every write checks its whole input first and raises InvalidInput with the offending
fields named (nothing is written), or Conflict when the study's state forbids it. Each
change is also appended to the audit log.
"""

import logging
import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Case, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.services import audit_record
from dashboard.models import ModelFit, Withdrawal
from dashboard.selectors import results_fingerprint, scored_sessions
from reminders.services import contact_delete
from scoring.models import Score
from scoring.selectors import study_level_orders, trials_frame
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

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

STALE_FIT = timedelta(minutes=20)


# ---------------------------------------------------------------- withdrawal


@transaction.atomic
def participant_withdraw(
    *, study: Study, participant_id: int, actor: Any, reason: str = ""
) -> Withdrawal:
    """Delete a participant's responses, trials, scores, recruiter id and e-mail address.

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
        },
    )
    return withdrawal


# ---------------------------------------------------------------- mixed model


def model_fit_request(*, study: Study, fingerprint: str) -> ModelFit:
    """Make sure a fit of the current data exists or is under way; queue one if not."""
    now = timezone.now()
    fit, created = ModelFit.objects.get_or_create(
        study=study,
        defaults={
            "status": ModelFit.Status.FITTING,
            "pending_fingerprint": fingerprint,
            "requested_at": now,
        },
    )
    if created:
        _enqueue_fit(study.pk, fingerprint)
        fit.refresh_from_db()
        return fit
    if fit.fingerprint == fingerprint and fit.status != ModelFit.Status.FITTING:
        return fit
    if fit.status == ModelFit.Status.FAILED and fit.pending_fingerprint == fingerprint:
        return fit
    running = (
        fit.status == ModelFit.Status.FITTING
        and fit.requested_at is not None
        and fit.requested_at > now - STALE_FIT
    )
    if running and fit.pending_fingerprint == fingerprint:
        return fit
    if running:
        # A fit of older data is running: let it finish; the next poll asks again.
        return fit
    # Claim: only the request that moves the row out of its current state enqueues.
    claimed = ModelFit.objects.filter(
        pk=fit.pk, status=fit.status, requested_at=fit.requested_at
    ).update(status=ModelFit.Status.FITTING, pending_fingerprint=fingerprint, requested_at=now)
    if claimed:
        _enqueue_fit(study.pk, fingerprint)
    fit.refresh_from_db()
    return fit


def _enqueue_fit(study_id: int, fingerprint: str) -> None:
    from common.publish import task_publish
    from dashboard.tasks import fit_mixed_model

    def publish() -> None:
        try:
            task_publish(fit_mixed_model, study_id, fingerprint)
        except Exception:  # noqa: BLE001 - the next page load asks again once the claim is stale
            log.warning("mixed-model fit of study %s not queued", study_id)

    transaction.on_commit(publish)


def model_fit_run(*, study_id: int, fingerprint: str) -> None:
    """Run the study's group analysis (scoring.analysis) on its scored sessions and store it.

    The one place the group level is computed for the server: the results page and the
    summary API both read this row. The hierarchical fit's hb_* values go into the score
    rows it was fitted on (DESIGN.md: "filled once the study's group fit has run").
    """
    # Imported here, not at the top: the numerical stack is heavy and only this task needs it.
    from instruments.selectors import participant_covariates
    from scoring.analysis import covariate_models, group_analysis

    study = Study.objects.filter(pk=study_id).first()
    if study is None:
        return
    rows = list(scored_sessions(study=study).values_list("pk", "session_id", "scored_at"))
    actual = results_fingerprint(
        len(rows), max((r[2] for r in rows if r[2] is not None), default=None)
    )
    status = ModelFit.Status.DONE
    shrunk = None
    result: dict[str, Any]
    if rows:
        frame = trials_frame(session_ids=[r[1] for r in rows])
        arms, timepoints = study_level_orders(study_id=study.pk)
        try:
            analysis = group_analysis(frame, arm_order=arms, timepoint_order=timepoints)
            result = analysis.to_dict()
            shrunk = analysis.hierarchical.sessions
            # Age and education (demographics) when the study collects them: the summary
            # API's ?covariates= reads these variants.
            values = participant_covariates(study_id=study.pk)
            result["covariate_models"] = (
                covariate_models(frame, values, arm_order=arms, timepoint_order=timepoints)
                if not values.dropna(how="all").empty
                else {}
            )
        except Exception as exc:  # noqa: BLE001 - a failed fit is shown, not raised
            log.exception("group fit of study %s failed", study_id)
            reason = f"{type(exc).__name__}: {exc}"
            result = {"mixed_model": {"reason": reason, "coefficients": []}}
            status = ModelFit.Status.FAILED
    else:
        empty = {"reason": "no scored session", "coefficients": [], "n_obs": 0, "n_groups": 0}
        result = {"mixed_model": empty}
    if shrunk is not None:
        _scores_hb_store(rows=rows, shrunk=shrunk)
    # Done only if no newer request came in meanwhile; that one's task will finish the job.
    ModelFit.objects.filter(study_id=study_id).update(
        result=result,
        fingerprint=actual,
        n_sessions=len(rows),
        fitted_at=timezone.now(),
        status=Case(
            When(Q(pending_fingerprint__in=[fingerprint, actual]), then=Value(status)),
            default=Value(ModelFit.Status.FITTING),
        ),
    )


def _scores_hb_store(*, rows: list[tuple[int, int, Any]], shrunk: "pd.DataFrame") -> int:
    """Merge the hierarchical fit's columns into the score rows fitted; returns rows written.

    Under a row lock, and only where the score is still the one fitted (same scored_at):
    a session re-scored meanwhile keeps its new values and gets hb_* from the next group
    fit, which its new scored_at makes due.
    """
    from scoring.hierarchical import HB_COLUMNS, HB_EXTRA_COLUMNS

    fitted = {pk: (session_id, scored_at) for pk, session_id, scored_at in rows}
    columns = [*HB_COLUMNS, *HB_EXTRA_COLUMNS]
    table = shrunk.loc[:, columns]
    changed: list[Score] = []
    with transaction.atomic():
        locked = Score.objects.select_for_update().filter(pk__in=list(fitted)).order_by("pk")
        for score in locked.only("pk", "session_id", "scored_at", "values"):
            session_id, scored_at = fitted[score.pk]
            if score.scored_at != scored_at or session_id not in table.index:
                continue
            values = table.loc[session_id]
            score.values = {**score.values, **{c: _finite_or_none(values[c]) for c in columns}}
            changed.append(score)
        Score.objects.bulk_update(changed, ["values"], batch_size=500)
    return len(changed)


def _finite_or_none(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None
