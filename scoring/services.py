"""Writes of scoring: queue a session's scoring, compute and store score rows."""

import logging
import math
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from scoring.metrics import SCORE_VERSION, score_all
from scoring.models import Score
from scoring.selectors import trials_frame
from trials.models import Session

log = logging.getLogger(__name__)


def score_enqueue(*, session_id: int) -> None:
    """Queue the scoring of a session once the current transaction commits.

    A failed publish (broker down) is logged, not raised: the completion stands and the
    periodic sweep enqueues the session again.
    """
    from scoring.tasks import score_session

    Score.objects.get_or_create(session_id=session_id, score_version=SCORE_VERSION)

    def publish() -> None:
        try:
            score_session.delay(session_id)
        except Exception:  # noqa: BLE001 - the sweep is the safety net
            log.warning("scoring of session %s not queued; the sweep will", session_id)

    transaction.on_commit(publish)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # NumPy scalars
        return _clean(value.item())
    return value


def sessions_score(*, session_ids: Iterable[int]) -> int:
    """Score the given completed sessions with the current version; returns rows written.

    Idempotent: the (session, score version) row is updated in place.
    """
    ids = list(
        Session.objects.filter(
            pk__in=list(session_ids), status=Session.Status.COMPLETED
        ).values_list("pk", "participant__study__min_valid_per_valence")
    )
    if not ids:
        return 0
    by_minimum: dict[int, list[int]] = {}
    for pk, minimum in ids:
        by_minimum.setdefault(minimum, []).append(pk)
    written = 0
    for minimum, pks in by_minimum.items():
        frame = trials_frame(session_ids=pks)
        scores = score_all(frame, min_valid_per_valence=minimum) if not frame.empty else None
        now = timezone.now()
        with transaction.atomic():
            for pk in pks:
                if scores is not None and pk in scores.index:
                    row = scores.loc[pk]
                    values = {k: _clean(v) for k, v in row.items() if k != "flags"}
                    flags = list(row["flags"])
                else:
                    values, flags = {}, ["no_valid_trials"]
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
    return written


def score_mark_failed(*, session_id: int, reason: str) -> None:
    """Record a terminal failure so it is visible and not retried by the sweep."""
    Score.objects.update_or_create(
        session_id=session_id,
        score_version=SCORE_VERSION,
        defaults={
            "status": Score.Status.FAILED,
            "reason": reason[:2000],
            "scored_at": timezone.now(),
        },
    )


def study_rescore(
    *, study_id: int | None = None, batch_size: int = 500
) -> Iterable[tuple[int, int]]:
    """Re-score every completed session (of a study) in batches; yields (done, total)."""
    sessions = Session.objects.filter(status=Session.Status.COMPLETED)
    if study_id is not None:
        sessions = sessions.filter(participant__study_id=study_id)
    ids = list(sessions.order_by("pk").values_list("pk", flat=True))
    done = 0
    for start in range(0, len(ids), batch_size):
        done += sessions_score(session_ids=ids[start : start + batch_size])
        yield done, len(ids)
