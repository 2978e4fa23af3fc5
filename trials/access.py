"""Who may see and edit which study: the one rule, read by the API and the pages alike.

Roles (StudyMembership.Role), lowest first:
- viewer: the study, its aggregates (summary, results, codebook), links and preview; nothing
  per participant;
- analyst: plus participants, sessions, trials, responses, scores, exports (external ids on
  request), imports, rescoring, withdrawals;
- owner: plus the study's settings, arms, timepoints, lists, status and members.

A study the user is not a member of is treated exactly like a study that does not exist; a
member below the needed role is refused. Staff and superusers get no more than their
memberships (the admin is for staff). No Django REST framework here: trials/api/access.py
turns the refusals into the API's error shape, dashboard/access.py into 404 / 403 pages.
"""

from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from trials.models import Study, StudyMembership

Role = StudyMembership.Role
ROLE_RANK = {Role.VIEWER: 1, Role.ANALYST: 2, Role.OWNER: 3}


class NotAMember(Exception):
    """No such study, or one the user is not a member of (the two look the same)."""


class RoleTooLow(Exception):
    """A member whose role is below the one needed."""

    def __init__(self, role: str, needed: str) -> None:
        super().__init__(f"role {role} is below {needed}")
        self.role = role
        self.needed = needed


def studies_for_member(user: Any) -> QuerySet[Study]:
    """Studies the user is a member of, each annotated with `role` (one query, no join fan-out)."""
    role = StudyMembership.objects.filter(study=OuterRef("pk"), user=user).values("role")[:1]
    return Study.objects.annotate(role=Subquery(role)).filter(role__isnull=False)


def role_of(study: Study) -> str:
    """The user's role, as annotated on a study by studies_for_member."""
    return str(getattr(study, "role", ""))


def role_at_least(role: str, needed: str) -> bool:
    return ROLE_RANK[Role(role)] >= ROLE_RANK[Role(needed)]


def study_of_member(*, user: Any, slug: str, min_role: str = Role.VIEWER) -> Study:
    """The study annotated with the user's `role` (one query); NotAMember / RoleTooLow otherwise."""
    study = studies_for_member(user).filter(slug=slug).first()
    if study is None:
        raise NotAMember(slug)
    if not role_at_least(role_of(study), min_role):
        raise RoleTooLow(role_of(study), min_role)
    return study
