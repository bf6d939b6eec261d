"""GET /api/stories and GET /api/stories/{id} (docs/stories.md): scoped like threats, filtered, paged,
400 naming a bad parameter, 404 outside the scope; a threat's detail names its stories."""

import pytest
from django.contrib.auth import get_user_model

from stories.models import Story
from tests import factories
from tests.test_stories import EXECUTION, EXFIL, INITIAL, alert
from threats.models import UserAccess

pytestmark = pytest.mark.django_db


@pytest.fixture
def attack(acme):
    """Three alerts on one host reaching initial access, execution and exfiltration."""
    return [alert(acme, 0, [INITIAL], "MEDIUM", title="Phishing link clicked"),
            alert(acme, 30, [EXECUTION], "HIGH", title="<script>alert(1)</script> ran"),
            alert(acme, 90, [EXFIL], "MEDIUM", title="Upload to a paste site")]


def scoped_client(client, user, customers):
    UserAccess.objects.create(user=user).customers.set(customers)
    user = get_user_model().objects.get(pk=user.pk)
    client.force_login(user)
    return client


def items(client, **params):
    response = client.get("/api/stories", params)
    assert response.status_code == 200, response.content
    return response.json()["items"]


def test_the_list_shows_a_flagged_story_with_its_tactics_in_order(alice_client, attack):
    [story] = items(alice_client)
    assert (story["entity_kind"], story["entity"], story["threat_count"]) == ("host", "ws-01", 3)
    assert [t["id"] for t in story["tactics"]] == [INITIAL, EXECUTION, EXFIL]
    assert [t["threat"] for t in story["tactics"]] == [str(t.pk) for t in attack]
    assert story["flagged_at"] and story["flagged_threat"] == str(attack[1].pk)
    assert (story["severity"], story["alert_severity"], story["severity_reason"]) == ("CRITICAL", "HIGH", "3 tactics")


def test_the_detail_is_the_timeline_of_its_alerts(alice_client, attack):
    story = Story.objects.get()
    body = alice_client.get(f"/api/stories/{story.pk}").json()
    assert [m["threat"] for m in body["timeline"]] == [str(t.pk) for t in attack]
    assert [m["reached"] for m in body["timeline"]] == [[INITIAL], [EXECUTION], [EXFIL]]
    assert body["timeline"][1]["title"] == "<script>alert(1)</script> ran"  # JSON carries text as it is
    assert body["timeline"][1]["severity"] == "HIGH" and body["timeline"][1]["counts"] is True


def test_a_threat_names_its_stories(alice_client, attack):
    story = Story.objects.get()
    assert alice_client.get(f"/api/threats/{attack[0].pk}").json()["stories"] == [story.pk]


@pytest.mark.parametrize("params, expected", [
    ({"flagged": "true"}, 1), ({"flagged": "false"}, 1), ({"entity": "WS-01"}, 1), ({"entity": "ws-02"}, 1),
    ({"kind": "host"}, 2), ({"kind": "user"}, 0), ({"customer": "acme"}, 2), ({"customer": "nobody"}, 0),
])
def test_filters(alice_client, acme, attack, params, expected):
    alert(acme, 0, [INITIAL], host="WS-02")
    assert len(items(alice_client, **params)) == expected


def test_pages_follow_the_cursor_without_repeats(alice_client, acme):
    for number in range(5):
        alert(acme, number, [INITIAL], host=f"host-{number}")
    first = alice_client.get("/api/stories", {"limit": 2}).json()
    seen = [s["entity"] for s in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = alice_client.get("/api/stories", {"limit": 2, "cursor": cursor}).json()
        seen += [s["entity"] for s in page["items"]]
        cursor = page["next_cursor"]
    assert seen == [f"host-{number}" for number in reversed(range(5))]


@pytest.mark.parametrize("params, field", [
    ({"kind": "planet"}, "kind"), ({"flagged": "maybe"}, "flagged"), ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"), ({"cursor": "nonsense"}, "cursor"), ({"severity": "HIGH"}, "severity"),
    ({"entity": "x" * 300}, "entity"),
])
def test_a_bad_parameter_is_a_400_naming_it(alice_client, params, field):
    response = alice_client.get("/api/stories", params)
    assert response.status_code == 400 and response.json()["field"] == field


def test_a_story_outside_the_scope_or_absent_is_a_404(client, alice, acme, globex, attack):
    alert(globex, 0, [INITIAL], title="GLOBEX ONLY")
    theirs = Story.objects.get(customer=globex)
    client = scoped_client(client, alice, [acme])
    assert client.get(f"/api/stories/{theirs.pk}").status_code == 404
    assert client.get("/api/stories/999999").status_code == 404
    assert client.get("/api/stories/99999999999999999999").status_code == 404
    listed = client.get("/api/stories").content.decode()
    assert "Globex" not in listed and "GLOBEX" not in listed
    assert [s["customer_slug"] for s in items(client, customer="globex")] == []


def test_the_outsider_and_the_anonymous_are_refused(charlie_client, attack):
    story = Story.objects.get()
    assert charlie_client.get("/api/stories").status_code == 403
    assert charlie_client.get(f"/api/stories/{story.pk}").status_code == 403
    charlie_client.logout()
    assert charlie_client.get("/api/stories").status_code == 401


def test_the_openapi_document_describes_both_endpoints(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    assert "/api/stories" in paths and "/api/stories/{story_id}" in paths
    detail = client.get("/api/openapi.json").json()["components"]["schemas"]["ThreatDetail"]["properties"]
    assert "stories" in detail


# --- Export (the handoff app's code path, docs/handoff.md) ---------------------------------------------------


def test_a_story_exports_as_json_with_its_timeline_and_threats(alice_client, attack):
    story = Story.objects.get()
    body = alice_client.get(f"/api/stories/{story.pk}/export?format=json").json()
    assert body["schema"] == "soc.export/1" and body["kind"] == "story"
    assert [t["id"] for t in body["story"]["tactics"]] == [INITIAL, EXECUTION, EXFIL]
    assert [m["threat"] for m in body["story"]["timeline"]] == [str(t.pk) for t in attack]
    assert [t["id"] for t in body["threats"]] == [str(t.pk) for t in attack]


def test_a_story_exports_as_escaped_markdown(alice_client, attack):
    story = Story.objects.get()
    answer = alice_client.get(f"/api/stories/{story.pk}/export?format=markdown")
    text = answer.content.decode()
    assert answer["Content-Type"].startswith("text/markdown")
    assert "# Attack story: host ws\\-01" in text and "## Tactic progression" in text
    assert "1\\. TA0001 Initial Access" not in text and "1. TA0001 Initial Access" in text
    assert "<script" not in text and "&lt;script&gt;" in text
    assert text.count("## Incident:") == 3


def test_a_story_export_outside_the_scope_is_a_404(client, alice, acme, globex):
    alert(globex, 0, [INITIAL])
    client = scoped_client(client, alice, [acme])
    assert client.get(f"/api/stories/{Story.objects.get().pk}/export").status_code == 404


def test_the_threat_list_filters_on_a_story(alice_client, acme, attack):
    alert(acme, 0, [INITIAL], host="elsewhere")
    story = Story.objects.get(entity="ws-01")
    listed = alice_client.get("/api/threats", {"story": story.pk}).json()["items"]
    assert {t["id"] for t in listed} == {str(t.pk) for t in attack}
    page = alice_client.get("/threats/", {"story": story.pk}).content.decode()
    assert f"attack story #{story.pk}" in page and page.count('class="threat-row') == 3


def test_a_story_filter_outside_the_scope_finds_nothing(client, alice, acme, globex):
    alert(globex, 0, [INITIAL])
    client = scoped_client(client, alice, [acme])
    assert client.get("/api/threats", {"story": Story.objects.get().pk}).json()["items"] == []
    assert client.get("/api/threats", {"story": "0"}).json()["field"] == "story"
