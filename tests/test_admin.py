"""Django admin triage: the actions go through the service layer (threat changed + audit event),
triage fields cannot be edited by hand, and the event log is read-only."""

import re

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model

from tests import factories
from threats.choices import Disposition, Status
from threats.models import Threat, ThreatEvent

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/threats/threat/"
TRIAGE_FIELDS = ["status", "disposition", "disposition_reason", "assignee", "acknowledged_at", "closed_at",
                 "closed_by_kind", "closed_by", "severity", "risk_score", "analysis_status"]


@pytest.fixture
def staff_client(client, alice):
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    client.force_login(alice)
    return client


@pytest.fixture
def superuser_client(client, db):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root")
    client.force_login(root)
    return client


def run_action(client, action, threats, **extra):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [str(t.pk) for t in threats],
                                    "index": 0, "select_across": 0, **extra})


def alice_updates(threat):
    return list(ThreatEvent.objects.filter(threat=threat, type="threat.updated", actor_label="alice").order_by("seq"))


# --- Changelist ------------------------------------------------------------------------------------


def test_it_shows_the_threat_changelist_with_filters_to_a_staff_analyst(staff_client, threat):
    other = factories.make_threat(analyse=False, title="Another customer's threat")  # two customers to filter on
    response = staff_client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert threat.title in html and other.title.replace("'", "&#x27;") in html
    assert 'id="changelist-filter"' in html
    for name in ("severity", "status", "analysis status", "requires human review", "threat type", "customer",
                 "assignee"):
        assert f"By {name}" in html, name
    actions = set(re.findall(r'<option value="(\w+)"', html))
    assert {"acknowledge", "assign_to_me", "mark_false_positive", "resolve"} <= actions


def test_it_filters_the_changelist(staff_client, customer):
    new = factories.make_threat(customer=customer, analyse=False, title="Still new")
    done = factories.make_threat(customer=customer, analyse=False, title="Already closed")
    Threat.objects.filter(pk=done.pk).update(status=Status.CLOSED)

    html = staff_client.get(CHANGELIST, {"status__exact": "closed"}).content.decode()

    assert done.title in html and new.title not in html


def test_it_keeps_non_staff_analysts_out_of_the_admin(alice_client, threat):
    response = alice_client.get(CHANGELIST)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_it_keeps_outsider_out_of_the_admin(charlie, client, threat):
    charlie.is_staff = True
    charlie.save(update_fields=["is_staff"])
    client.force_login(charlie)

    assert client.get(CHANGELIST).status_code == 403
    run_action(client, "acknowledge", [threat])
    threat.refresh_from_db()
    assert threat.status == Status.NEW
    assert not ThreatEvent.objects.filter(type="threat.updated").exists()


# --- Actions ---------------------------------------------------------------------------------------


def test_it_acknowledges_selected_threats(staff_client, customer):
    first, second = factories.make_threat(customer=customer), factories.make_threat(customer=customer)
    untouched = factories.make_threat(customer=customer)

    response = run_action(staff_client, "acknowledge", [first, second])

    assert response.status_code == 302
    for threat in (first, second):
        threat.refresh_from_db()
        assert threat.status == Status.ACKNOWLEDGED
        assert threat.acknowledged_at is not None
        [event] = alice_updates(threat)
        assert event.actor_kind == "user"
        assert event.payload["changes"]["status"] == {"from": "new", "to": "acknowledged"}
        assert threat.assignee.username == "alice"  # one meaning of Acknowledge: it takes an unassigned threat
    untouched.refresh_from_db()
    assert untouched.status == Status.NEW and alice_updates(untouched) == []


def test_it_assigns_selected_threats_to_me(staff_client, alice, threat):
    run_action(staff_client, "assign_to_me", [threat])

    threat.refresh_from_db()
    assert threat.assignee == alice
    [event] = alice_updates(threat)
    assert event.payload["changes"] == {"assignee": {"from": None, "to": "alice"}}


def test_closing_as_false_positive_asks_for_a_reason_first(staff_client, threat):
    response = run_action(staff_client, "mark_false_positive", [threat])

    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="reason"' in page and 'value="mark_false_positive"' in page and str(threat.pk) in page
    threat.refresh_from_db()
    assert threat.status == Status.NEW and alice_updates(threat) == []


def test_closing_as_false_positive_refuses_an_empty_reason(staff_client, threat):
    response = run_action(staff_client, "mark_false_positive", [threat], apply="1", reason="   ")

    assert response.status_code == 200 and "This field is required." in response.content.decode()
    threat.refresh_from_db()
    assert threat.status == Status.NEW


def test_it_closes_selected_threats_as_false_positive(staff_client, threat):
    response = run_action(staff_client, "mark_false_positive", [threat], apply="1", reason="Our own scanner")

    assert response.status_code == 302
    threat.refresh_from_db()
    assert threat.status == Status.CLOSED
    assert threat.disposition == Disposition.FALSE_POSITIVE
    assert threat.disposition_reason == "Our own scanner"
    assert threat.closed_at is not None and threat.closed_by_kind == "human" and threat.closed_by.username == "alice"
    [event] = alice_updates(threat)
    assert event.payload["changes"]["status"] == {"from": "new", "to": "closed"}


def test_it_resolves_selected_threats(staff_client, threat):
    run_action(staff_client, "resolve", [threat], apply="1", reason="C2 confirmed")

    threat.refresh_from_db()
    assert threat.status == Status.RESOLVED
    assert threat.disposition == Disposition.TRUE_POSITIVE
    assert threat.closed_at is not None
    [event] = alice_updates(threat)
    assert event.payload["changes"]["disposition"] == {"from": "", "to": "true_positive"}


def test_it_reports_the_result_of_an_action(staff_client, threat):
    response = run_action(staff_client, "resolve", [threat], apply="1", reason="C2 confirmed")

    page = staff_client.get(response["Location"]).content.decode()
    assert "Resolved as true positive 1 threat(s)." in page


# --- Change form and the event log ------------------------------------------------------------------


def test_it_shows_triage_fields_read_only_in_the_change_form(staff_client, threat):
    response = staff_client.get(f"{CHANGELIST}{threat.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    form = response.context["adminform"].form
    for name in TRIAGE_FIELDS:
        assert name not in form.fields, name
        assert f'name="{name}"' not in html, name
    assert 'class="readonly"' in html
    readonly = admin.site._registry[Threat].get_readonly_fields(None, threat)
    assert set(TRIAGE_FIELDS) <= {getattr(field, "__name__", field) for field in readonly}  # text fields are displays


def test_it_ignores_a_hand_edited_triage_field_posted_to_the_change_form(staff_client, threat):
    url = f"{CHANGELIST}{threat.pk}/change/"
    inlines = staff_client.get(url).context["inline_admin_formsets"]
    # The model's own columns posted by hand, next to the triage form's fields left as they were.
    data = {"status": "closed", "disposition": "false_positive", "_save": "Save", "triage_status": "new",
            "triage_disposition": "", "triage_reason": "", "triage_assignee": "", "triage_version": "1"}
    for prefix in (inline.formset.prefix for inline in inlines):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})

    response = staff_client.post(url, data)

    assert response.status_code == 302  # accepted (nothing changed), not refused

    threat.refresh_from_db()
    assert threat.status == Status.NEW and threat.disposition == ""
    assert not ThreatEvent.objects.filter(threat=threat, type="threat.updated").exists()


def test_it_cannot_add_threats_in_the_admin(staff_client):
    assert staff_client.get(f"{CHANGELIST}add/").status_code == 403


def test_it_keeps_the_event_log_read_only(superuser_client, threat):
    event = ThreatEvent.objects.filter(threat=threat).first()
    base = "/admin/threats/threatevent/"

    assert superuser_client.get(base).status_code == 200
    assert superuser_client.get(f"{base}add/").status_code == 403
    change = superuser_client.get(f"{base}{event.pk}/change/")
    assert change.status_code == 200
    assert 'name="_save"' not in change.content.decode()  # view-only
    assert superuser_client.post(f"{base}{event.pk}/change/", {"type": "forged"}).status_code == 403
    assert superuser_client.get(f"{base}{event.pk}/delete/").status_code == 403
    assert superuser_client.post(f"{base}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    superuser_client.post(base, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})
    event.refresh_from_db()
    assert event.type == "threat.created"
    model_admin = admin.site._registry[ThreatEvent]
    assert "delete_selected" not in model_admin.get_actions(superuser_client.get(base).wsgi_request)
