"""Admin triage is readable (issue 23 item 6): the threat change page shows the verdict's JSON (risk
factors, ATT&CK, response plan, timeline, the alert itself) as escaped tables, and a save that
changes nothing says so instead of "changed successfully"."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from tests import factories
from threats.admin import JSON_MAX_DEPTH, JSON_MAX_ROWS, json_html
from threats.models import Threat, ThreatEvent

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"


def change_url(threat):
    return f"/admin/threats/threat/{threat.pk}/change/"


def _staff(name, role):
    user = get_user_model().objects.create_user(username=name, password="pw-" + name, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def analyst(db):
    return _staff("ana", "analyst")


@pytest.fixture
def viewer(db):
    return _staff("vic", "viewer")


def untouched_save(client, threat, **extra):
    """POST the change page back exactly as it was rendered."""
    page = client.get(change_url(threat))
    form = page.context["adminform"].form
    data = {name: "" if value is None else value for name, value in form.initial.items() if name.startswith("triage_")}
    for inline in page.context["inline_admin_formsets"]:
        prefix = inline.formset.prefix
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    return client.post(change_url(threat), {**data, **extra}, follow=True)


# --- json_html ----------------------------------------------------------------------------------


def test_an_object_is_a_two_column_table_and_a_list_of_objects_a_table_with_a_column_per_key():
    html = json_html({"actions": [{"action": "block_ip", "target": "192.0.2.10"}, {"action": "notify", "extra": 1}],
                      "sla_minutes": 60, "notes": [], "auto": True, "escalation": ["Tier 1", "Tier 2"]})

    assert html.startswith('<table class="json-table">')
    assert "<tr><th>sla_minutes</th><td>60</td></tr>" in html
    assert "<thead><tr><th>action</th><th>target</th><th>extra</th></tr></thead>" in html
    assert "<tr><td>notify</td><td>—</td><td>1</td></tr>" in html  # a key a row lacks is a dash
    assert "<th>notes</th><td>—</td>" in html and "<th>auto</th><td>yes</td>" in html
    assert '<span class="json-list">Tier 1, Tier 2</span>' in html


def test_every_key_and_value_is_escaped():
    html = json_html({SCRIPT: [{SCRIPT: SCRIPT}], "list": [SCRIPT], "deep": SCRIPT})

    assert "<script" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 5


def test_hidden_characters_are_markers():
    html = json_html({"file": "invoice\u202efdp.exe"})

    assert "\u202e" not in html and 'class="hidden-char"' in html


def test_very_deep_or_very_long_json_is_cut_short_still_escaped():
    deep = SCRIPT
    for _ in range(JSON_MAX_DEPTH + 2):
        deep = {"k": deep}
    html = json_html({"deep": deep, "many": list(range(JSON_MAX_ROWS + 5))})

    assert "<script" not in html and "&lt;script&gt;" in html
    assert "… and 5 more" in html


# --- The change page ----------------------------------------------------------------------------


def test_the_change_page_shows_the_verdict_as_tables_not_one_line_json(analyst, customer):
    threat = factories.make_threat(customer=customer)
    html = analyst.get(change_url(threat)).content.decode()

    for title in ("Verdict", "ATT&amp;CK", "Response plan", "Timeline", "Alert as received"):
        assert f">{title}</" in html, title
    assert '"technique_id"' not in html and "[{" not in html  # no JSON text left
    technique = threat.mitre["techniques"][0]
    assert f"<td>{technique['technique_id']}</td>" in html
    assert f"<td>{threat.response_plan['actions'][0]['action']}</td>" in html
    assert f"<td>{threat.timeline[0]['title']}</td>" in html
    assert f"<td>{threat.risk_factors[0]['reason']}</td>" in html
    assert "css/admin.css" in html  # the tables' style


def test_alert_values_on_the_change_page_are_escaped(analyst, customer):
    threat = factories.make_threat(customer=customer, observables={"src_ip": "192.0.2.10", "user_agent": SCRIPT},
                                   raw={SCRIPT: SCRIPT})
    Threat.objects.filter(pk=threat.pk).update(risk_factors=[{"reason": SCRIPT, "points": 5}],
                                               timeline=[{"at": "2026-01-01T00:00:00Z", "title": SCRIPT}])
    html = analyst.get(change_url(threat)).content.decode()

    assert SCRIPT not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5


def test_saving_without_a_change_says_nothing_changed(analyst, customer):
    threat = factories.make_threat(customer=customer)
    events = ThreatEvent.objects.filter(threat=threat).count()

    response = untouched_save(analyst, threat, _save="Save")

    text = response.content.decode()
    assert response.redirect_chain[-1][0] == "/admin/threats/threat/"
    assert "was changed successfully" not in text and "Nothing changed" in text
    assert ThreatEvent.objects.filter(threat=threat).count() == events
    assert not LogEntry.objects.filter(object_id=str(threat.pk)).exists()


def test_save_and_continue_without_a_change_stays_on_the_page_and_says_so(analyst, customer):
    threat = factories.make_threat(customer=customer)

    response = untouched_save(analyst, threat, _continue="Save and continue editing")

    assert response.redirect_chain[-1][0] == change_url(threat)
    assert "Nothing changed" in response.content.decode()


def test_a_real_change_still_says_changed_successfully(analyst, customer):
    threat = factories.make_threat(customer=customer)
    page = analyst.get(change_url(threat))
    data = {name: "" if value is None else value for name, value in page.context["adminform"].form.initial.items()
            if name.startswith("triage_")}
    data.update(triage_status="acknowledged", _save="Save")
    for inline in page.context["inline_admin_formsets"]:
        data.update({f"{inline.formset.prefix}-TOTAL_FORMS": "0", f"{inline.formset.prefix}-INITIAL_FORMS": "0"})

    response = analyst.post(change_url(threat), data, follow=True)

    assert "was changed successfully" in response.content.decode()
    threat.refresh_from_db()
    assert threat.status == "acknowledged" and threat.version == 2


def test_a_read_only_viewer_gets_no_save_button_and_cannot_post(viewer, customer):
    threat = factories.make_threat(customer=customer)
    html = viewer.get(change_url(threat)).content.decode()

    assert 'name="_save"' not in html and 'name="_continue"' not in html
    assert "<td>" in html  # the tables are there for a viewer too
    assert viewer.post(change_url(threat), {"_save": "Save"}).status_code == 403
