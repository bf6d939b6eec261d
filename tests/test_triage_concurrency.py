"""Optimistic concurrency on triage (issue 23 item 3, docs/api.md): a change based on a version
that another analyst moved past is refused (409 with the current threat and their changes), in
the service, the API and the admin change form; a client that sends no version still works."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import TestCase

from threats import services
from threats.models import Threat, ThreatEvent

pytestmark = pytest.mark.django_db

JSON = "application/json"


def patch(client, threat, body, **headers):
    return client.patch(f"/api/threats/{threat.pk}", json.dumps(body), content_type=JSON, **headers)


def close_as(user, threat, disposition, version=None):
    return services.triage(user, threat.pk, version=version, status="closed", disposition=disposition,
                           reason=f"{user.username} says {disposition}")


# --- Service ------------------------------------------------------------------------------------


def test_each_triage_change_moves_the_version_by_one(alice, threat):
    assert threat.version == 1
    assert services.triage(alice, threat.pk, status="acknowledged").version == 2
    assert services.triage(alice, threat.pk, version=2, assignee="alice").version == 3
    assert Threat.objects.get(pk=threat.pk).version == 3


def test_a_stale_version_is_refused_and_nothing_is_written(alice, bob, threat):
    close_as(alice, threat, "true_positive", version=1)
    events_before = ThreatEvent.objects.count()

    with pytest.raises(services.Conflict) as refused:
        close_as(bob, threat, "false_positive", version=1)

    stored = Threat.objects.get(pk=threat.pk)
    assert (stored.status, stored.disposition, stored.version) == ("closed", "true_positive", 2)
    assert ThreatEvent.objects.count() == events_before
    assert refused.value.threat.version == 2 and refused.value.expected == 1
    [change] = services.triage_changes_since(refused.value.threat, 1)
    assert change.actor_label == "alice"
    assert change.payload["changes"]["disposition"] == {"from": "", "to": "true_positive"}


def test_the_version_is_checked_under_the_row_lock_not_only_before_it(alice, bob, threat):
    # Both analysts read version 1; alice's write lands between bob's read and bob's write.
    seen_by_bob = Threat.objects.get(pk=threat.pk)
    close_as(alice, threat, "true_positive", version=1)
    changes = services.check_triage(bob, seen_by_bob, status="closed", disposition="false_positive", reason="mine")

    with pytest.raises(services.Conflict):
        services.do_triage(seen_by_bob, services.Actor.for_user(bob), changes, version=1)
    assert Threat.objects.get(pk=threat.pk).disposition == "true_positive"


def test_a_change_without_a_version_still_applies_last_write_wins(alice, bob, threat):
    close_as(alice, threat, "true_positive", version=1)
    assert services.triage(bob, threat.pk, disposition="false_positive", reason="seen again").disposition == "false_positive"


def test_a_stale_version_is_a_conflict_even_when_the_change_became_invalid(alice, bob, threat):
    # bob meant to set a disposition while closing; alice reopened meanwhile. The conflict, not
    # a validation error about the state bob never saw, is the useful answer.
    close_as(alice, threat, "true_positive", version=1)
    services.triage(alice, threat.pk, version=2, status="investigating")
    with pytest.raises(services.Conflict):
        services.triage(bob, threat.pk, version=2, disposition="false_positive")


# --- API ----------------------------------------------------------------------------------------


def test_get_answers_the_version_as_etag(alice_client, threat):
    response = alice_client.get(f"/api/threats/{threat.pk}")
    assert response["ETag"] == '"1"'
    assert response.json()["version"] == 1


def test_patch_with_the_current_if_match_applies_and_answers_the_new_etag(alice_client, threat):
    response = patch(alice_client, threat, {"status": "acknowledged"}, HTTP_IF_MATCH='"1"')
    assert response.status_code == 200, response.content
    assert response["ETag"] == '"2"' and response.json()["version"] == 2


def test_patch_with_a_stale_if_match_answers_409_with_the_current_state(client, alice, bob, threat):
    client.force_login(alice)
    assert patch(client, threat, {"status": "closed", "disposition": "true_positive", "reason": "C2 confirmed"},
                 HTTP_IF_MATCH='"1"').status_code == 200
    client.force_login(bob)

    response = patch(client, threat, {"status": "closed", "disposition": "false_positive", "reason": "scanner"},
                     HTTP_IF_MATCH='"1"')

    assert response.status_code == 409, response.content
    body = response.json()
    assert body["field"] == "version" and "not saved" in body["detail"]
    assert response["ETag"] == '"2"'
    current = body["current"]
    assert (current["status"], current["disposition"], current["disposition_reason"], current["version"]) == (
        "closed", "true_positive", "C2 confirmed", 2)
    [change] = body["changes"]
    assert change["actor"] == "alice"
    assert change["changes"]["status"] == {"from": "new", "to": "closed"}
    assert change["changes"]["disposition_reason"]["to"] == "C2 confirmed"
    assert Threat.objects.get(pk=threat.pk).disposition == "true_positive"


def test_patch_takes_the_version_in_the_body_too(alice_client, alice, threat):
    services.triage(alice, threat.pk, status="acknowledged")
    assert patch(alice_client, threat, {"status": "investigating", "version": 1}).status_code == 409
    assert patch(alice_client, threat, {"status": "investigating", "version": 2}).status_code == 200


def test_patch_without_a_precondition_keeps_working(alice_client, alice, threat):
    services.triage(alice, threat.pk, status="acknowledged")
    assert patch(alice_client, threat, {"status": "investigating"}).json()["status"] == "investigating"
    assert patch(alice_client, threat, {"status": "escalated"}, HTTP_IF_MATCH="*").json()["status"] == "escalated"


@pytest.mark.parametrize("header", ["3", '"x"', 'W/"1"', '"1", "2"', '""'])
def test_patch_refuses_an_if_match_it_cannot_read_with_400(alice_client, threat, header):
    response = patch(alice_client, threat, {"status": "acknowledged"}, HTTP_IF_MATCH=header)
    assert response.status_code == 400 and response.json()["field"] == "If-Match"
    assert Threat.objects.get(pk=threat.pk).status == "new"


def test_patch_refuses_a_header_and_body_version_that_disagree(alice_client, threat):
    response = patch(alice_client, threat, {"status": "acknowledged", "version": 2}, HTTP_IF_MATCH='"1"')
    assert response.status_code == 400 and response.json()["field"] == "version"


def test_an_outsider_gets_403_not_409_with_the_current_state(charlie_client, threat):
    response = patch(charlie_client, threat, {"status": "acknowledged"}, HTTP_IF_MATCH='"7"')
    assert response.status_code == 403
    assert "current" not in response.json()


def test_a_read_only_viewer_gets_403_not_409(client, threat):
    viewer = get_user_model().objects.create_user(username="viewer", password="pw-viewer")
    viewer.user_permissions.add(Permission.objects.get(content_type__app_label="threats", codename="view_threat"))
    client.force_login(viewer)
    response = patch(client, threat, {"status": "acknowledged"}, HTTP_IF_MATCH='"7"')
    assert response.status_code == 403 and "current" not in response.json()


def test_the_openapi_document_describes_the_409_and_the_version(alice_client):
    spec = alice_client.get("/api/openapi.json").json()
    responses = spec["paths"]["/api/threats/{threat_id}"]["patch"]["responses"]
    assert "409" in responses
    assert "version" in spec["components"]["schemas"]["TriageIn"]["properties"]
    assert "version" in spec["components"]["schemas"]["ThreatSummary"]["required"]


def test_the_event_of_a_change_carries_the_new_version(alice, threat):
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.triage(alice, threat.pk, status="acknowledged")
    event = ThreatEvent.objects.filter(threat=threat, type="threat.updated").get()
    assert event.payload["threat"]["version"] == 2


# --- Admin change page ----------------------------------------------------------------------------


CHANGE = "/admin/threats/threat/{}/change/"


@pytest.fixture
def staff(client, alice):
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    client.force_login(alice)
    return client


def admin_post(client, threat, **triage):
    url = CHANGE.format(threat.pk)
    data = {"_save": "Save", "triage_status": "new", "triage_disposition": "", "triage_reason": "",
            "triage_assignee": "", "triage_version": "1", **triage}
    for inline in client.get(url).context["inline_admin_formsets"]:
        data.update({f"{inline.formset.prefix}-TOTAL_FORMS": "0", f"{inline.formset.prefix}-INITIAL_FORMS": "0"})
    return client.post(url, data)


def test_the_admin_change_page_offers_the_triage_fields_at_the_current_version(staff, alice, threat):
    services.triage(alice, threat.pk, status="acknowledged")
    form = staff.get(CHANGE.format(threat.pk)).context["adminform"].form
    assert form.initial["triage_status"] == "acknowledged" and form.initial["triage_version"] == 2
    assert form.initial["triage_assignee"] == "alice"  # acknowledging took it
    assert "alice" in dict(form.fields["triage_assignee"].choices)


def test_the_admin_change_page_closes_a_threat_through_the_service(staff, threat):
    response = admin_post(staff, threat, triage_status="closed", triage_disposition="false_positive",
                          triage_reason="Scanner we run ourselves")
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    stored = Threat.objects.get(pk=threat.pk)
    assert (stored.status, stored.disposition, stored.disposition_reason, stored.version) == (
        "closed", "false_positive", "Scanner we run ourselves", 2)
    assert stored.closed_by.username == "alice"
    event = ThreatEvent.objects.filter(threat=threat, type="threat.updated").get()
    assert event.actor_label == "alice" and event.payload["changes"]["status"] == {"from": "new", "to": "closed"}


def test_the_admin_change_page_refuses_a_stale_save_and_shows_the_other_change(staff, bob, threat):
    close_as(bob, threat, "true_positive", version=1)

    response = admin_post(staff, threat, triage_status="closed", triage_disposition="false_positive",
                          triage_reason="Scanner we run ourselves")

    assert response.status_code == 200
    [error] = response.context["adminform"].form.non_field_errors()
    assert error.startswith("Not saved: bob changed it (status: New → Closed; disposition: – → True positive;")
    assert "make your change again" in error
    assert error in response.content.decode()
    stored = Threat.objects.get(pk=threat.pk)
    assert (stored.disposition, stored.version) == ("true_positive", 2)
    assert ThreatEvent.objects.filter(threat=threat, type="threat.updated").count() == 1
    form = response.context["adminform"].form
    assert (form["triage_version"].value(), form["triage_disposition"].value()) == ("2", "true_positive")


def test_saving_again_after_a_conflict_applies_the_change(staff, bob, threat):
    close_as(bob, threat, "true_positive", version=1)
    response = admin_post(staff, threat, triage_status="closed", triage_disposition="false_positive",
                          triage_reason="Scanner we run ourselves", triage_version="2")
    assert response.status_code == 302
    assert Threat.objects.get(pk=threat.pk).disposition == "false_positive"


def test_the_admin_change_page_says_why_a_closure_is_refused(staff, threat):
    response = admin_post(staff, threat, triage_status="closed", triage_disposition="false_positive")
    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == ["Closing a threat needs a reason."]
    assert Threat.objects.get(pk=threat.pk).status == "new"


def test_a_read_only_admin_user_gets_no_triage_fields(client, threat):
    viewer = get_user_model().objects.create_user(username="viewer", password="pw-viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(content_type__app_label="threats", codename="view_threat"))
    client.force_login(viewer)
    response = client.get(CHANGE.format(threat.pk))
    assert response.status_code == 200
    assert 'name="triage_status"' not in response.content.decode()
