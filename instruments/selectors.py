"""Reads of instruments: what a study gives per timepoint, covariates, the change analysis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from instruments.definition import INSTRUMENT_SCORE_VERSION, Instrument as Definition
from instruments.models import Instrument, InstrumentScore, ItemAnswer, Rating, StudyInstrument
from trials.models import Session, Study, StudyMembership, Timepoint

if TYPE_CHECKING:
    import pandas as pd

# The demographics items the group mixed model may take as covariates (PROTOCOL.md).
COVARIATE_ITEMS = ("age", "education_years")


def item_payload(item: Any, language: str | None = None) -> dict[str, Any]:
    """An item as the API shows it: all languages, or one (with English as the fallback)."""

    def text(texts: dict[str, str]) -> Any:
        if language is None:
            return texts
        return texts.get(language) or texts.get("en") or ""

    out: dict[str, Any] = {"code": item.code, "text": text(item.text)}
    if item.numeric:
        out["min"] = item.minimum
        out["max"] = item.maximum
        if item.unit:
            out["unit"] = text(item.unit)
    else:
        out["options"] = [{"value": o.value, "label": text(o.label)} for o in item.options]
    out["required"] = item.required
    out["reverse"] = item.reverse
    out["scored"] = item.scored
    return out


def instrument_payload(definition: Definition) -> dict[str, Any]:
    return {
        "code": definition.code,
        "version": definition.version,
        "kind": definition.kind,
        "name": definition.name,
        "languages": list(definition.languages),
        "source": definition.source,
        "licence": definition.licence,
        "items": [item_payload(i) for i in definition.items],
        "subscales": [{"code": s.code, "items": list(s.items)} for s in definition.subscales],
    }


def study_instruments(*, study: Study) -> list[dict[str, Any]]:
    """Per timepoint (visit order), the instruments attached and their items (two queries)."""
    links = list(
        StudyInstrument.objects.filter(study=study).select_related("instrument", "timepoint")
    )
    by_timepoint: dict[int, list[dict[str, Any]]] = {}
    for link in links:
        payload = instrument_payload(link.instrument.parsed())
        position = link.position if link.instrument.kind == "self_report" else None
        by_timepoint.setdefault(link.timepoint_id, []).append({**payload, "position": position})
    return [
        {"timepoint": tp.label, "instruments": by_timepoint.get(tp.pk, [])}
        for tp in Timepoint.objects.filter(study=study).order_by("order")
    ]


def participant_covariates(*, study_id: int) -> pd.DataFrame:
    """Age and years of education per participant (index: participant id), for the group
    mixed model; the latest answer counts where demographics were given twice."""
    import pandas as pd

    rows = (
        ItemAnswer.objects.filter(
            participant__study_id=study_id,
            instrument__code="demographics",
            item__in=COVARIATE_ITEMS,
            value__isnull=False,
        )
        .order_by("answered_at", "id")
        .values_list("participant_id", "item", "value")
    )
    latest: dict[int, dict[str, float]] = {}
    for participant, item, value in rows:
        if value is not None:
            latest.setdefault(participant, {})[item] = float(value)
    frame = pd.DataFrame.from_dict(latest, orient="index", columns=list(COVARIATE_ITEMS))
    frame.index.name = "participant"
    return frame.sort_index()


def instrument_totals(*, study_id: int, instrument: str) -> pd.DataFrame:
    """participant, arm, timepoint, timepoint_order, total of one instrument's scores."""
    import pandas as pd

    rows = InstrumentScore.objects.filter(
        session__participant__study_id=study_id,
        instrument__code=instrument,
        score_version=INSTRUMENT_SCORE_VERSION,
        total__isnull=False,
    ).values_list(
        "session__participant_id",
        "session__participant__arm__code",
        "session__timepoint__label",
        "session__timepoint__order",
        "total",
    )
    return pd.DataFrame(
        list(rows), columns=["participant", "arm", "timepoint", "timepoint_order", "total"]
    )


def participant_instruments(*, participant_id: int) -> list[dict[str, Any]]:
    """Per visit of the participant, every instrument attached there: its score, and for a
    clinician-rated one when it was rated (the participant page; four queries)."""
    from instruments.models import Rating
    from trials.models import Session

    sessions = list(
        Session.objects.filter(participant_id=participant_id)
        .select_related("timepoint")
        .order_by("timepoint__order")
    )
    links = StudyInstrument.objects.filter(
        timepoint_id__in=[s.timepoint_id for s in sessions]
    ).select_related("instrument")
    by_timepoint: dict[int, list[StudyInstrument]] = {}
    for link in links:
        by_timepoint.setdefault(link.timepoint_id, []).append(link)
    scores = {
        (s.session_id, s.instrument_id): s
        for s in InstrumentScore.objects.filter(
            session__in=sessions, score_version=INSTRUMENT_SCORE_VERSION
        )
    }
    ratings = {
        (r.session_id, r.instrument_id): r for r in Rating.objects.filter(session__in=sessions)
    }
    out = []
    for session in sessions:
        for link in by_timepoint.get(session.timepoint_id, []):
            key = (session.pk, link.instrument_id)
            score = scores.get(key)
            rating = ratings.get(key)
            out.append(
                {
                    "session": session,
                    "instrument": link.instrument,
                    "clinician": link.instrument.kind == "clinician",
                    "total": score.total if score else None,
                    "status": score.status if score else "",
                    "rated_at": rating.rated_at if rating else None,
                }
            )
    return out


def study_change_analysis(*, study_id: int, points: bool) -> dict[str, Any]:
    """The paper's second result for a study: change from the first visit in the MADRS total
    against the change in each learning measure, per arm x later timepoint (scoring.change).

    `points` adds one row per participant and later visit (analysts and owners only: the
    correlations alone are aggregates). Three queries.
    """
    import pandas as pd

    from scoring.change import MEASURES, change_correlations, change_from_first
    from scoring.columns import SCORE_VERSION
    from scoring.models import Score

    totals = instrument_totals(study_id=study_id, instrument="madrs")
    body: dict[str, Any] = {
        "outcome": "madrs",
        "measures": list(MEASURES),
        "score_version": SCORE_VERSION,
        "correlations": [],
    }
    if points:
        body["points"] = []
    if totals.empty:  # no rating yet: the scores are not read at all
        return body
    scores = Score.objects.filter(
        session__participant__study_id=study_id,
        score_version=SCORE_VERSION,
        status=Score.Status.DONE,
    ).values_list("session__participant_id", "session__timepoint__order", "values")
    score_rows = [
        {"participant": p, "timepoint_order": t, **{m: (v or {}).get(m) for m in MEASURES}}
        for p, t, v in scores
    ]
    # Only the measures the scores have (update_bias_ee comes with score version 2).
    measures = [m for m in MEASURES if any(r[m] is not None for r in score_rows)]
    body["measures"] = measures
    if not measures:
        return body
    frame = totals.rename(columns={"total": "madrs"}).merge(
        pd.DataFrame(score_rows), on=["participant", "timepoint_order"], how="left"
    )
    for measure in measures:
        frame[measure] = pd.to_numeric(frame[measure], errors="coerce")
    changes = change_from_first(frame, outcome="madrs", measures=measures)
    body["correlations"] = change_correlations(changes, outcome="madrs", measures=measures)
    if points:
        body["points"] = [
            {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in changes.drop(columns=["timepoint_order"]).to_dict(orient="records")
        ]
    return body


# ---------------------------------------------------------------- the dashboard's pages


def instruments_all() -> list[Instrument]:
    """Every instrument in the library, by code."""
    return list(Instrument.objects.order_by("code"))


def instrument_by_code(*, code: str | None) -> Instrument | None:
    return Instrument.objects.filter(code=code).first() if code else None


def instrument_given_elsewhere(*, instrument: Instrument, user: Any) -> bool:
    """True when the instrument is given by a study this user does not own."""
    studies = StudyInstrument.objects.filter(instrument=instrument).values("study_id")
    owned = StudyMembership.objects.filter(user=user, role=StudyMembership.Role.OWNER).values(
        "study_id"
    )
    return studies.exclude(study_id__in=owned).exists()


def study_instrument_links(*, study: Study) -> dict[tuple[str, str], int]:
    """(timepoint label, instrument code) -> link id, for the page's detach buttons."""
    return {
        (link.timepoint.label, link.instrument.code): link.pk
        for link in StudyInstrument.objects.filter(study=study).select_related(
            "timepoint", "instrument"
        )
    }


@dataclass(frozen=True)
class RatingPage:
    """What the clinician-rating page of one visit shows."""

    visit: Session
    link: StudyInstrument
    rating: Rating | None
    answers: dict[str, int | None]
    score: InstrumentScore | None


def rating_page(
    *, study: Study, participant_pk: int, session_pk: int, code: str
) -> RatingPage | None:
    """The visit, its clinician instrument, the rating so far and its score; None if any is
    not this study's (5 queries)."""
    visit = (
        Session.objects.filter(
            pk=session_pk, participant_id=participant_pk, participant__study=study
        )
        .select_related("timepoint")
        .first()
    )
    link = (
        StudyInstrument.objects.filter(
            study=study,
            timepoint_id=visit.timepoint_id if visit else 0,
            instrument__code=code,
            instrument__kind="clinician",
        )
        .select_related("instrument")
        .first()
    )
    if visit is None or link is None:
        return None
    of_visit = {"session": visit, "instrument": link.instrument}
    return RatingPage(
        visit=visit,
        link=link,
        rating=Rating.objects.filter(**of_visit).first(),
        answers=dict(ItemAnswer.objects.filter(**of_visit).values_list("item", "value")),
        score=InstrumentScore.objects.filter(
            **of_visit, score_version=INSTRUMENT_SCORE_VERSION
        ).first(),
    )
