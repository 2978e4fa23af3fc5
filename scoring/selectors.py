"""Reads for scoring: trials as the pure modules take them, scores as the API gives them,
the scored data a group fit describes and the stored fit."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Max, QuerySet

from scoring.columns import SCORE_VERSION
from scoring.models import ModelFit, Score
from trials.exports import RESPONSE_PIVOT
from trials.models import Arm, Response, Session, Study, Timepoint, Trial

if TYPE_CHECKING:
    import pandas as pd


def trials_frame(*, session_ids: Iterable[int]) -> pd.DataFrame:
    """One row per (session, event) in the trials-export format (two queries)."""
    import pandas as pd

    ids = list(session_ids)
    trial_rows = list(
        Trial.objects.filter(session_id__in=ids)
        .order_by("session_id", "practice", "block1_position")
        .values_list(
            "session_id",
            "event_id",
            "event__code",
            "event__polarity",
            "practice",
            "block1_position",
            "block2_position",
            "br",
            "br_mode",
            "session__participant_id",
            "session__participant__arm__code",
            "session__timepoint__label",
        )
    )
    frame = pd.DataFrame(
        trial_rows,
        columns=[
            "session",
            "event_id",
            "event",
            "polarity",
            "practice",
            "block1_position",
            "block2_position",
            "br",
            "br_mode",
            "participant",
            "arm",
            "timepoint",
        ],
    )
    responses = pd.DataFrame(
        list(
            Response.objects.filter(session_id__in=ids)
            .exclude(phase="br")
            .values_list("session_id", "event_id", "phase", "value", "rt_ms")
        ),
        columns=["session", "event_id", "phase", "value", "rt_ms"],
    )
    for column in RESPONSE_PIVOT:
        frame[column] = float("nan")
    frame["rt_e1_ms"] = float("nan")
    frame["rt_e2_ms"] = float("nan")
    if not responses.empty and not frame.empty:
        values = responses.pivot_table(
            index=["session", "event_id"], columns="phase", values="value", aggfunc="first"
        )
        rts = responses[responses.phase.isin(["e1", "e2"])].pivot_table(
            index=["session", "event_id"], columns="phase", values="rt_ms", aggfunc="first"
        )
        key = pd.MultiIndex.from_frame(frame[["session", "event_id"]])
        for column in values.columns:
            frame[column] = values[column].reindex(key).to_numpy(dtype=float)
        for phase in rts.columns:
            frame[f"rt_{phase}_ms"] = rts[phase].reindex(key).to_numpy(dtype=float)
    frame["br"] = frame["br"].astype(float)
    return frame


def study_level_orders(*, study_id: int) -> tuple[list[str], list[str]]:
    """The study's arms (creation order, by code) and timepoints (visit order, by label).

    PROTOCOL.md, "Group level, version 2": the first of each present in the data is the
    reference level of every group fit (scoring.group.factor_levels); two queries.
    """
    arms = list(Arm.objects.filter(study_id=study_id).order_by("id").values_list("code", flat=True))
    timepoints = list(
        Timepoint.objects.filter(study_id=study_id)
        .order_by("order")
        .values_list("label", flat=True)
    )
    return arms, timepoints


def score_values(score: Score) -> dict[str, Any]:
    return {**score.values, "flags": ";".join(score.flags)}


def sessions_unscored(
    *, score_version: int, queued_before: datetime | None = None, limit: int = 1000
) -> list[int]:
    """Completed sessions with no done or failed score of this version, oldest first.

    A pending score counts as unscored (its message may be lost). With `queued_before`,
    sessions completed or queued at or after that moment are left out: their task is
    probably still on its way (the sweep's grace period).
    """
    finished = Score.objects.filter(
        score_version=score_version, status__in=[Score.Status.DONE, Score.Status.FAILED]
    ).values("session_id")
    sessions = Session.objects.filter(status=Session.Status.COMPLETED).exclude(pk__in=finished)
    if queued_before is not None:
        recent = Score.objects.filter(
            score_version=score_version, queued_at__gte=queued_before
        ).values("session_id")
        sessions = sessions.filter(completed_at__lt=queued_before).exclude(pk__in=recent)
    return list(sessions.order_by("completed_at", "pk").values_list("pk", flat=True)[:limit])


def rescore_remaining(*, study_id: int, since: datetime) -> int:
    """Completed sessions of a study with no current-version result stored since `since`."""
    from django.db.models import Exists, OuterRef

    fresh = Score.objects.filter(
        session=OuterRef("pk"), score_version=SCORE_VERSION, scored_at__gte=since
    )
    return (
        Session.objects.filter(participant__study_id=study_id, status=Session.Status.COMPLETED)
        .exclude(Exists(fresh))
        .count()
    )


def scored_sessions(*, study: Study) -> QuerySet[Score]:
    """The current-version, finished scores of the study's remaining participants."""
    return Score.objects.filter(
        session__participant__study=study,
        session__participant__withdrawn_at__isnull=True,
        score_version=SCORE_VERSION,
        status=Score.Status.DONE,
    )


def results_fingerprint(n: int, last_scored: datetime | None) -> str:
    """What identifies the data a fit describes: the count and the latest scoring time."""
    return f"v{SCORE_VERSION}:{n}:{last_scored.isoformat() if last_scored else '-'}"


def scored_fingerprint(*, study: Study) -> tuple[int, str]:
    """How many sessions are scored, and the fingerprint of that data (one query)."""
    agg = scored_sessions(study=study).aggregate(n=Count("id"), last=Max("scored_at"))
    return agg["n"], results_fingerprint(agg["n"], agg["last"])


def model_fit(*, study: Study) -> ModelFit | None:
    """The study's stored group fit, if one was ever requested."""
    return ModelFit.objects.filter(study=study).first()


def study_group_summary(*, study: Study) -> tuple[int, list[dict[str, Any]]]:
    """The study's current-version done scores: their number, and the mean and SEM per arm x
    timepoint (scoring.group.group_summary) as JSON-safe rows in the study's order."""
    import pandas as pd

    from common.scalars import json_scalar
    from scoring.group import group_summary

    scores = list(
        Score.objects.filter(
            session__participant__study=study,
            score_version=SCORE_VERSION,
            status=Score.Status.DONE,
        )
        .select_related("session__participant__arm", "session__timepoint")
        # The study's order: arms as created, timepoints as visited.
        .order_by("session__participant__arm_id", "session__timepoint__order", "session_id")
    )
    frame = pd.DataFrame(
        [
            {
                "session": s.session_id,
                "arm": s.session.participant.arm.code,
                "timepoint": s.session.timepoint.label,
                **s.values,
            }
            for s in scores
        ]
    )
    groups = group_summary(frame) if not frame.empty else pd.DataFrame()
    return len(scores), [
        {str(k): json_scalar(v) for k, v in g.items()} for g in groups.to_dict(orient="records")
    ]
