"""trials.access: the one rule (membership, then role) behind the API's and the pages' checks."""

import pytest
from django.contrib.auth.models import User

from tests.factories import make_study
from trials.access import NotAMember, RoleTooLow, role_of, studies_for_member, study_of_member
from trials.models import StudyMembership

pytestmark = pytest.mark.django_db


def test_members_get_the_study_with_their_role_and_others_nothing() -> None:
    study = make_study(slug="mine")
    make_study(slug="theirs")
    analyst = User.objects.create_user("analyst")
    staff = User.objects.create_user("staff", is_staff=True, is_superuser=True)
    StudyMembership.objects.create(study=study, user=analyst, role="analyst")

    found = study_of_member(user=analyst, slug="mine", min_role="viewer")
    assert (found.pk, role_of(found)) == (study.pk, "analyst")
    assert role_of(study_of_member(user=analyst, slug="mine", min_role="analyst")) == "analyst"
    assert [s.slug for s in studies_for_member(analyst)] == ["mine"]
    # Not a member, missing, and staff without a membership: the same refusal.
    for user, slug in ((analyst, "theirs"), (analyst, "no-such"), (staff, "mine")):
        with pytest.raises(NotAMember):
            study_of_member(user=user, slug=slug)
    assert list(studies_for_member(staff)) == []


def test_a_role_below_the_needed_one_is_refused_with_both_named() -> None:
    mine, owned = make_study(slug="mine"), make_study(slug="owned")
    user = User.objects.create_user("viewer")
    StudyMembership.objects.create(study=mine, user=user, role="viewer")
    StudyMembership.objects.create(study=owned, user=user, role="owner")
    with pytest.raises(RoleTooLow) as refused:
        study_of_member(user=user, slug="mine", min_role="analyst")
    assert (refused.value.role, refused.value.needed) == ("viewer", "analyst")
    assert role_of(study_of_member(user=user, slug="owned", min_role="owner")) == "owner"
