"""The access rule (trials/access.py) as the pages see it: 404 for a non-member, 403 below
the page's role.

Pages by lowest role: viewer: overview, results (aggregates only), links, preview; analyst:
plus sessions, participants, trial-level data, per-session charts, exports, withdrawals;
owner: plus the study's settings, arms, timepoints, lists, status and members.
"""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404

from trials.access import NotAMember, Role, RoleTooLow, role_at_least, study_of_member
from trials.models import Study


def member_study(user: Any, slug: str, min_role: str = Role.VIEWER) -> Study:
    """The study annotated with the user's `role` (one query); 404 / 403 otherwise."""
    try:
        return study_of_member(user=user, slug=slug, min_role=min_role)
    except NotAMember:
        raise Http404("No such study.") from None
    except RoleTooLow:
        raise PermissionDenied(f"This page needs the {min_role} role or above.") from None


def permissions_of(role: str) -> dict[str, bool]:
    """What the templates may show for a role."""
    return {
        "can_see_data": role_at_least(role, Role.ANALYST),
        "can_edit": role_at_least(role, Role.OWNER),
    }
