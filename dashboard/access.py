"""Who may open which dashboard page: the API's membership rules, as views see them.

A study the user is not a member of is a 404, exactly like a study that does not exist;
a member below the page's role gets a 403 (trials/api/access.py, same roles):
- viewer: overview, results (aggregates only), links, preview;
- analyst: plus sessions, participants, trial-level data, per-session charts, exports,
  withdrawals;
- owner: plus the study's settings, arms, timepoints, lists, status and members.
"""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404

from trials.models import Study, StudyMembership

Role = StudyMembership.Role
ROLE_RANK = {Role.VIEWER: 1, Role.ANALYST: 2, Role.OWNER: 3}


def studies_for_member(user: Any) -> QuerySet[Study]:
    """Studies the user is a member of, annotated with `role` (one query, no fan-out).

    The same rule as the API's (trials/api/access.py): membership only, staff included.
    Kept here so that the pages do not import Django REST framework.
    """
    role = StudyMembership.objects.filter(study=OuterRef("pk"), user=user).values("role")[:1]
    return Study.objects.annotate(role=Subquery(role)).filter(role__isnull=False)


def role_at_least(role: str, needed: str) -> bool:
    return ROLE_RANK[Role(role)] >= ROLE_RANK[Role(needed)]


def member_study(user: Any, slug: str, min_role: str = Role.VIEWER) -> Study:
    """The study annotated with the user's `role` (one query); 404 / 403 otherwise."""
    study = studies_for_member(user).filter(slug=slug).first()
    if study is None:
        raise Http404("No such study.")
    if not role_at_least(role_of(study), min_role):
        raise PermissionDenied(f"This page needs the {min_role} role or above.")
    return study


def role_of(study: Study) -> str:
    """The role annotated on a study by member_study / studies_for_member."""
    return str(study.role)  # type: ignore[attr-defined]


def permissions_of(role: str) -> dict[str, bool]:
    """What the templates may show for a role."""
    return {
        "can_see_data": role_at_least(role, Role.ANALYST),
        "can_edit": role_at_least(role, Role.OWNER),
    }
