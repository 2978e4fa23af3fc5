"""Reads of the trials app."""

from typing import Any

from trials.models import Event, Session, Trial
from trials.services.responses import completion_redirect, steps_of


def session_state(*, session: Session) -> dict[str, Any]:
    """What the task page needs to run or resume a session (three queries)."""
    study = session.participant.study
    steps = steps_of(session)
    done = session.step_index
    remaining = steps[done:]
    answered_e1 = {s.event_id for s in steps[:done] if s.phase == "e1"}
    texts = {
        code: texts
        for code, texts in Event.objects.filter(event_list_id=session.event_list_id).values_list(
            "code", "texts"
        )
    }
    brs: dict[int, int | None] = {}
    if any(s.phase == "br" and s.event_id in answered_e1 for s in remaining):
        brs = dict(
            Trial.objects.filter(session=session, event_id__in=answered_e1).values_list(
                "event_id", "br"
            )
        )
    lang = session.language

    def text(code: str) -> str:
        t = texts.get(code, {})
        return str(t.get(lang) or t.get("en") or code)

    completion = None
    if session.status == Session.Status.COMPLETED:
        completion = {
            "completion_code": session.completion_code,
            "redirect_url": completion_redirect(study, session),
        }
    return {
        "status": session.status,
        "language": lang,
        "scale": {"min": study.scale_min, "max": study.scale_max},
        "progress": {"done": done, "total": len(steps)},
        "config": {
            "title": study.title,
            "br_mode": study.br_mode,
            "min_br_view_ms": study.min_br_view_ms,
            "collect_ebr": study.collect_ebr,
            "collect_confidence": study.collect_confidence,
            "memory_test": study.memory_test,
            "ratings": study.ratings,
            "debrief": study.debrief_required,
            "debrief_text": study.text_for(study.debrief_text, lang),
        },
        "steps": [
            {
                "event": s.code,
                "text": text(s.code),
                "block": s.block,
                "phase": s.phase,
                "practice": s.practice,
                "br": brs.get(s.event_id) if s.phase == "br" else None,
            }
            for s in remaining
        ]
        if session.status in (Session.Status.CREATED, Session.Status.IN_PROGRESS)
        else [],
        "completion": completion,
    }
