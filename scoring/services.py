"""Writes of scoring: queue a session's scoring, compute and store score rows, rescore a
study, request and run its group fit (the one place the server computes the group level)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from common.scalars import json_scalar
from scoring.columns import SCORE_VERSION
from scoring.models import ModelFit, Score
from scoring.selectors import (
    results_fingerprint,
    scored_sessions,
    sessions_unscored,
    study_level_orders,
    trials_frame,
)
from trials.models import Session, Study

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# Worth another try later: the database went away or the connection broke.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
# reject_on_worker_lost puts back the message of a task whose worker died; a session
# that kills its worker every time would loop for ever. After this many starts that
# stored nothing, its score is marked failed instead.
MAX_ATTEMPTS = 10


def score_enqueue(*, session_id: int) -> None:
    """Create the session's pending score row and queue its scoring once the transaction commits.

    A failed publish (broker down or hung) is logged, not raised: the completion stands and the
    periodic sweep queues the session again. The broker timeouts in settings (CELERY_BROKER_*)
    bound how long the publish can hold the request.
    """
    from common.publish import task_publish
    from scoring.tasks import score_session

    Score.objects.get_or_create(
        session_id=session_id, score_version=SCORE_VERSION, defaults={"queued_at": timezone.now()}
    )

    def publish() -> None:
        try:
            task_publish(score_session, session_id)
        except Exception as exc:  # noqa: BLE001 - the sweep is the safety net
            log.warning(
                "scoring of session %s not queued (%s: %s); the sweep will queue it",
                session_id,
                type(exc).__name__,
                exc,
            )

    transaction.on_commit(publish)


def scores_enqueue(*, session_ids: Sequence[int], batch_size: int = 200) -> None:
    """score_enqueue for many sessions at once (an import of thousands): the pending rows in
    one INSERT, their scoring queued in batches (score_batch) once the transaction commits.

    A failed publish is logged, not raised: the periodic sweep queues what was left.
    """
    from common.publish import task_publish
    from scoring.tasks import score_batch

    now = timezone.now()
    Score.objects.bulk_create(
        [Score(session_id=pk, score_version=SCORE_VERSION, queued_at=now) for pk in session_ids],
        ignore_conflicts=True,
        batch_size=1000,
    )
    batches = [
        list(session_ids[i : i + batch_size]) for i in range(0, len(session_ids), batch_size)
    ]

    def publish() -> None:
        for batch in batches:
            try:
                task_publish(score_batch, batch)
            except Exception as exc:  # noqa: BLE001 - the sweep is the safety net
                log.warning(
                    "scoring of %s sessions not queued (%s: %s); the sweep will queue them",
                    len(batch),
                    type(exc).__name__,
                    exc,
                )
                return

    transaction.on_commit(publish)


def score_all(frame: pd.DataFrame, **options: Any) -> pd.DataFrame:
    """scoring.pipeline.score_all, imported on first use: a web process that only enqueues
    never loads the numerical stack."""
    from scoring.pipeline import score_all as compute

    return compute(frame, **options)


def sessions_score(*, session_ids: Iterable[int]) -> int:
    """Score the given completed sessions with the current version; returns rows written.

    One vectorised pass per set of study settings (minimum per valence, learning-rate
    bound); idempotent: the (session, score version) row is updated in place, and rows
    of other score versions are left as they are. Any error propagates and nothing of
    the failed pass is stored.
    """
    ids = list(
        Session.objects.filter(
            pk__in=list(session_ids), status=Session.Status.COMPLETED
        ).values_list(
            "pk", "participant__study__min_valid_per_valence", "participant__study__lr_max"
        )
    )
    if not ids:
        return 0
    by_settings: dict[tuple[int, float], list[int]] = {}
    for pk, minimum, lr_max in ids:
        by_settings.setdefault((minimum, lr_max), []).append(pk)
    written = 0
    for (minimum, lr_max), pks in by_settings.items():
        frame = trials_frame(session_ids=pks)
        scores = (
            score_all(frame, min_valid_per_valence=minimum, lr_max=lr_max)
            if not frame.empty
            else None
        )
        now = timezone.now()
        with transaction.atomic():
            for pk in pks:
                if scores is not None and pk in scores.index:
                    row = scores.loc[pk]
                    values = {k: json_scalar(v) for k, v in row.items() if k != "flags"}
                    flags = list(row["flags"])
                else:
                    values, flags = {}, ["no_valid_trials", "too_few_for_models"]
                Score.objects.update_or_create(
                    session_id=pk,
                    score_version=SCORE_VERSION,
                    defaults={
                        "status": Score.Status.DONE,
                        "reason": "",
                        "values": values,
                        "flags": flags,
                        "scored_at": now,
                    },
                )
                written += 1
    # The session's questionnaires are scored with it (PROTOCOL.md, Questionnaires).
    from instruments.services import sessions_instruments_score

    sessions_instruments_score(session_ids=[pk for pk, *_settings in ids])
    return written


def sessions_score_or_fail(*, session_ids: Sequence[int]) -> tuple[int, int]:
    """Score sessions in one pass, or one by one if that fails; returns (scored, failed).

    A session whose scoring raises is marked failed with the error as its reason, and the
    others are still scored. Transient database errors propagate (the task retries them).
    """
    try:
        return sessions_score(session_ids=session_ids), 0
    except TRANSIENT_ERRORS:
        raise
    except Exception:  # noqa: BLE001 - find the culprit below
        log.warning("scoring %d sessions together failed; one by one now", len(session_ids))
    scored = failed = 0
    for session_id in session_ids:
        try:
            scored += sessions_score(session_ids=[session_id])
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded on the score row
            log.exception("scoring session %s failed", session_id)
            score_mark_failed(session_id=session_id, reason=f"{type(exc).__name__}: {exc}")
            failed += 1
    return scored, failed


def score_mark_failed(*, session_id: int, reason: str) -> None:
    """Record a terminal failure so it is visible and not queued again by the sweep."""
    Score.objects.update_or_create(
        session_id=session_id,
        score_version=SCORE_VERSION,
        defaults={
            "status": Score.Status.FAILED,
            "reason": reason[:2000],
            "scored_at": timezone.now(),
        },
    )


def scores_attempt(*, session_ids: Sequence[int]) -> list[int]:
    """Count a scoring attempt on these sessions; returns those still worth scoring.

    A score started MAX_ATTEMPTS times without a result (pending, or a done one being
    re-scored) is marked failed here. A rescore request sets attempts back to 0
    (study_rescore_request): they count the starts of one scoring, never past MAX_ATTEMPTS + 1
    (the column is a smallint).
    """
    rows = Score.objects.filter(session_id__in=session_ids, score_version=SCORE_VERSION)
    rows.update(attempts=F("attempts") + 1)
    exhausted = set(rows.filter(attempts__gt=MAX_ATTEMPTS).values_list("session_id", flat=True))
    for session_id in exhausted:
        score_mark_failed(
            session_id=session_id,
            reason=f"scoring started {MAX_ATTEMPTS} times without storing a result "
            "(worker lost or hard time limit each time)",
        )
    return [pk for pk in session_ids if pk not in exhausted]


def scores_settled(*, session_id: int) -> bool:
    """Whether the session has a done or failed score of the current version (a peak batch
    of another session's task scored it before its own message came)."""
    return Score.objects.filter(
        session_id=session_id,
        score_version=SCORE_VERSION,
        status__in=[Score.Status.DONE, Score.Status.FAILED],
    ).exists()


def scores_claim_waiting(*, session_id: int, limit: int | None = None) -> list[int]:
    """Claim up to `limit` (SCORE_PEAK_BATCH - 1) other sessions whose scoring is queued and
    not started yet.

    At a completion peak (a Prolific launch: hundreds of sessions end within minutes) the
    worker that starts one session's scoring takes these with it into one vectorised pass,
    instead of each waiting in the queue for a pass of its own: with 2,000 participants the
    completion-to-score lag fell from p50 37 s to 0.26 s, and Celery's CPU from 30 to 23 %
    of a core (bench/README.md, "Load"). The claim counts their start (attempts 0 -> 1)
    under SKIP LOCKED, so two workers never take the same row, and a claimed row is never
    claimed again; each still has its own message, which finds it done (`scores_settled`)
    or, if this pass died, scores it.
    """
    limit = settings.SCORE_PEAK_BATCH - 1 if limit is None else limit
    if limit <= 0:
        return []
    with transaction.atomic():
        claimed = list(
            Score.objects.select_for_update(skip_locked=True)
            .filter(score_version=SCORE_VERSION, status=Score.Status.PENDING, attempts=0)
            .exclude(session_id=session_id)
            .order_by("pk")
            .values_list("pk", "session_id")[:limit]
        )
        Score.objects.filter(pk__in=[pk for pk, _ in claimed]).update(attempts=F("attempts") + 1)
    return [other for _, other in claimed]


def scores_queue_unscored(*, grace: timedelta, limit: int = 1000) -> list[int]:
    """Claim the completed sessions the sweep must queue; returns their ids, oldest first.

    A session qualifies when it has no done or failed score of the current version and was
    neither completed nor queued within `grace` (its message may still be on its way). The
    claim stamps queued_at with a conditional update under SKIP LOCKED, so two sweeps never
    queue the same session.
    """
    now = timezone.now()
    cutoff = now - grace
    candidates = sessions_unscored(score_version=SCORE_VERSION, queued_before=cutoff, limit=limit)
    if not candidates:
        return []
    Score.objects.bulk_create(
        [Score(session_id=pk, score_version=SCORE_VERSION) for pk in candidates],
        ignore_conflicts=True,
    )
    with transaction.atomic():
        claimable = (
            Score.objects.select_for_update(skip_locked=True)
            .filter(
                session_id__in=candidates,
                score_version=SCORE_VERSION,
                status=Score.Status.PENDING,
            )
            .filter(Q(queued_at__isnull=True) | Q(queued_at__lt=cutoff))
        )
        claimed = set(claimable.values_list("session_id", flat=True))
        Score.objects.filter(session_id__in=claimed, score_version=SCORE_VERSION).update(
            queued_at=now
        )
    return [pk for pk in candidates if pk in claimed]


def study_rescore(
    *, study_id: int | None = None, batch_size: int = 500
) -> Iterator[tuple[int, int]]:
    """Re-score every completed session (of a study) in batches; yields (done, total).

    Runs in the calling process; a session that fails is marked failed and the rest go on.
    """
    sessions = Session.objects.filter(status=Session.Status.COMPLETED)
    if study_id is not None:
        sessions = sessions.filter(participant__study_id=study_id)
    ids = list(sessions.order_by("pk").values_list("pk", flat=True))
    done = 0
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        sessions_score_or_fail(session_ids=batch)
        done += len(batch)
        yield done, len(ids)


# A rescore not finished after this long is taken as lost (its messages dropped): a new
# request starts another.
RESCORE_STALE = timedelta(minutes=30)


def study_rescore_request(*, study: Any, actor: Any, batch_size: int) -> tuple[Any, bool]:
    """Start re-scoring a study's completed sessions, unless one is running; (rescore, started).

    Idempotent while it runs: a second request gets the running one back and queues nothing
    (the study's rescore row is locked, so two requests at once start one). Starting queues
    the batches after commit and records it in the audit log.
    """
    from audit.services import audit_record
    from common.publish import task_publish
    from scoring.models import Rescore
    from scoring.selectors import rescore_remaining
    from scoring.tasks import score_batch

    now = timezone.now()
    with transaction.atomic():
        rescore, created = Rescore.objects.select_for_update().get_or_create(
            study=study, defaults={"requested_at": now}
        )
        if (
            not created
            and rescore.requested_at > now - RESCORE_STALE
            and rescore_remaining(study_id=study.pk, since=rescore.requested_at) > 0
        ):
            return rescore, False
        ids = list(
            Session.objects.filter(participant__study=study, status=Session.Status.COMPLETED)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        batches = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
        # A new scoring of each session: its starts are counted from 0 again.
        Score.objects.filter(session_id__in=ids, score_version=SCORE_VERSION).update(attempts=0)
        rescore.requested_at, rescore.sessions, rescore.batches = now, len(ids), len(batches)
        rescore.save(update_fields=["requested_at", "sessions", "batches"])

        def publish() -> None:
            for batch in batches:
                try:
                    task_publish(score_batch, batch)
                except Exception:  # noqa: BLE001 - logged; a request after RESCORE_STALE retries
                    log.warning("rescore batch of %d sessions not queued", len(batch))

        audit_record(
            actor=actor,
            action="study.rescore",
            study=study.slug,
            detail={"sessions": len(ids), "score_version": SCORE_VERSION},
        )
        transaction.on_commit(publish)
    return rescore, True


# ---------------------------------------------------------------- group fit

# A fit still "fitting" after this long is taken as lost: the next request queues another.
STALE_FIT = timedelta(minutes=20)


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
    from scoring.tasks import fit_mixed_model

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
            analysis = group_analysis(
                frame, arm_order=arms, timepoint_order=timepoints, lr_max=study.lr_max
            )
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


def _scores_hb_store(*, rows: list[tuple[int, int, Any]], shrunk: pd.DataFrame) -> int:
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
            row = table.loc[session_id].to_numpy(dtype=float)
            hb = {c: json_scalar(float(v)) for c, v in zip(columns, row, strict=True)}
            score.values = {**score.values, **hb}
            changed.append(score)
        Score.objects.bulk_update(changed, ["values"], batch_size=500)
    return len(changed)
