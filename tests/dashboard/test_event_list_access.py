"""Event lists across labs: a lab's lists are its studies' members' only; shared ones are all's.

Two labs, each an owner of their own study (no session yet, so lists may change). Lab A
imports a list in its dashboard; lab B must neither see it offered, nor attach it by id,
nor read its texts or base rates through a study of its own.
"""

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from tests.dashboard.builders import member
from tests.factories import make_study
from trials.models import Event, EventList, Study, StudyEventList
from trials.selectors import event_lists_visible
from trials.services.errors import NotFound
from trials.services.study_setup import study_list_attach

pytestmark = pytest.mark.django_db

SECRET_CSV = (
    "code,text_en,base_rate\n"
    "S1,Confidential vignette about the lab's own cohort,37\n"
    "S2,Another unpublished vignette,41\n"
)


@pytest.fixture
def labs() -> dict[str, tuple[Study, User]]:
    a = make_study(slug="lab-a", title="Lab A")
    b = make_study(slug="lab-b", title="Lab B")
    return {"a": (a, member(a, "owner", "alice")), "b": (b, member(b, "owner", "bob"))}


def as_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def lists_page(client: Client, slug: str) -> str:
    response = client.get(f"/dashboard/s/{slug}/setup/lists/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_labs_list_is_not_offered_nor_attachable_nor_readable_by_another(
    labs: dict[str, tuple[Study, User]], tmp_path: object
) -> None:
    (study_a, alice), (study_b, bob) = labs["a"], labs["b"]
    imported = as_user(alice).post(
        "/dashboard/s/lab-a/setup/lists/",
        {"action": "import", "imp-name": "lab-a-private", "imp-text": SECRET_CSV},
    )
    assert imported.status_code == 302
    private = EventList.objects.get(name="lab-a-private")
    assert (private.owner_study_id, private.shared) == (study_a.pk, False)
    a_lists = set(
        StudyEventList.objects.filter(study=study_a).values_list("event_list_id", flat=True)
    )
    b_lists = set(
        StudyEventList.objects.filter(study=study_b).values_list("event_list_id", flat=True)
    )

    # Listing: lab B is offered neither lab A's private list nor those of lab A's study.
    page = lists_page(as_user(bob), "lab-b")
    assert "lab-a-private" not in page
    for name in EventList.objects.filter(pk__in=a_lists).values_list("name", flat=True):
        assert f">{name}<" not in page
    assert set(event_lists_visible(user=bob).values_list("pk", flat=True)) == b_lists

    # Attaching by id (a tampered form, or the service directly): refused, nothing attached.
    StudyEventList.objects.filter(study=study_b).delete()
    tampered = as_user(bob).post(
        "/dashboard/s/lab-b/setup/lists/", {"action": "attach", "att-event_list": private.pk}
    )
    assert tampered.status_code == 400
    with pytest.raises(NotFound):
        study_list_attach(study=study_b, actor=bob, event_list=private)
    assert not StudyEventList.objects.filter(study=study_b).exists()

    # Reading texts and base rates goes through a study's design and preview pages: lab B's
    # show none of lab A's events.
    for path in ("setup/design/", "preview/", "setup/lists/"):
        text = as_user(bob).get(f"/dashboard/s/lab-b/{path}").content.decode()
        assert "Confidential vignette" not in text, path

    # Lab A's owner sees and could attach it; so would a viewer of lab A.
    viewer = member(study_a, "viewer", "victor")
    assert private.pk in set(event_lists_visible(user=viewer).values_list("pk", flat=True))
    assert private.pk in set(event_lists_visible(user=alice).values_list("pk", flat=True))


def test_shared_lists_are_offered_to_every_lab_and_attach(
    labs: dict[str, tuple[Study, User]], tmp_path: object
) -> None:
    (study_b, bob) = labs["b"]
    csv = tmp_path / "library.csv"  # type: ignore[operator]
    csv.write_text(SECRET_CSV.replace("S1", "L1").replace("S2", "L2"), encoding="utf-8")
    call_command("import_event_list", "operators-library", str(csv))
    library = EventList.objects.get(name="operators-library")
    assert (library.shared, library.owner_study_id) == (True, None)
    assert "operators-library" in lists_page(as_user(bob), "lab-b")
    StudyEventList.objects.filter(study=study_b).delete()
    attached = as_user(bob).post(
        "/dashboard/s/lab-b/setup/lists/", {"action": "attach", "att-event_list": library.pk}
    )
    assert attached.status_code == 302
    assert list(
        StudyEventList.objects.filter(study=study_b).values_list("event_list_id", flat=True)
    ) == [library.pk]
    assert Event.objects.filter(event_list=library).count() == 2


def test_the_demo_lists_are_shared(db: None) -> None:
    from trials.services.demo import demo_study_load

    demo_study_load(password="pw-demo-123456")
    assert set(
        EventList.objects.filter(name__startswith="demo-").values_list("name", "shared")
    ) == {
        ("demo-a", True),
        ("demo-b", True),
        ("demo-c", True),
        ("demo-positive", True),
    }
    outsider = User.objects.create_user("outsider")
    assert {"demo-a", "demo-b", "demo-c"} <= set(
        event_lists_visible(user=outsider).values_list("name", flat=True)
    )


def test_the_lists_page_counts_positive_events(db: None) -> None:
    from trials.services.demo import demo_study_load

    demo_study_load(password="pw-demo-123456")
    client = Client()
    client.force_login(User.objects.get(username="demo"))
    positive = client.get("/dashboard/s/demo-positive/setup/lists/")
    assert positive.status_code == 200
    [row] = positive.context["attached"]
    assert (row["n_events"], row["n_practice"], row["n_positive"]) == (24, 2, 8)
    assert f'data-positive="{row["event_list_id"]}">8<' in positive.content.decode()
    adverse = client.get("/dashboard/s/demo/setup/lists/").context["attached"]
    assert [r["n_positive"] for r in adverse] == [0, 0, 0]
