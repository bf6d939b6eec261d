"""Server-rendered pages: dashboard, threat detail, login, and the health/readiness probes."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from tests import factories
from threats.choices import Scenario, ThreatType

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'


def html_of(response, status=200):
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("text/html")
    return response.content.decode()


def make_user_with(username, codenames):
    user = get_user_model().objects.create_user(username=username, password="pw-" + username)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="threats", codename__in=codenames))
    return get_user_model().objects.get(pk=user.pk)


# --- Dashboard -------------------------------------------------------------------------------------


def test_it_redirects_anonymous_users_to_the_login_page(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_it_shows_the_dashboard_with_every_trigger_button(alice_client):
    html = html_of(alice_client.get("/"))

    for value in ThreatType.values:
        assert f'data-threat-type="{value}"' in html
    for value in Scenario.values:
        assert f'data-scenario="{value}"' in html
    assert len(re.findall(r'class="trigger[^"]*"', html)) == 1 + len(ThreatType.values) + len(Scenario.values)


def test_it_shows_the_latest_threats_on_the_dashboard(alice_client, customer):
    oldest = factories.make_threat(customer=customer, analyse=False, title="Oldest of them all",
                                   received_at=timezone.now() - timedelta(hours=2))
    recent = [
        factories.make_threat(customer=customer, analyse=False, title=f"Recent threat number {n}",
                              received_at=timezone.now() - timedelta(minutes=n))
        for n in range(25)
    ]

    html = html_of(alice_client.get("/"))

    for threat in recent:
        assert threat.title in html
        assert f"/threats/{threat.pk}/" in html
    assert oldest.title not in html  # the feed shows the newest 25 only
    positions = [html.index(f"Recent threat number {n}<") for n in range(25)]
    assert positions == sorted(positions)  # newest first


def test_it_hides_trigger_buttons_from_a_viewer_without_the_add_permission(client, customer):
    viewer = make_user_with("viewer", ["view_threat"])
    threat = factories.make_threat(customer=customer, analyse=False, title="Visible to viewers")
    client.force_login(viewer)

    html = html_of(client.get("/"))

    assert threat.title in html
    assert "data-threat-type=" not in html and "data-scenario=" not in html


def test_it_rejects_outsider_on_the_dashboard(charlie_client, threat):
    html = html_of(charlie_client.get("/"), 403)

    assert threat.title not in html


# --- Threat detail ---------------------------------------------------------------------------------


def test_it_shows_a_threat_with_every_agent_summary_and_the_risk_breakdown(alice_client, threat):
    html = html_of(alice_client.get(f"/threats/{threat.pk}/"))

    assert escape(threat.title) in html
    runs = list(threat.agent_runs.all())
    assert {run.kind for run in runs} == {"historical", "config", "devops", "context", "priority"}
    for run in runs:
        assert run.summary and escape(run.summary) in html
        assert escape(run.get_kind_display()) in html
    assert "Risk score breakdown" in html
    assert threat.risk_factors
    for factor in threat.risk_factors:
        assert escape(factor["reason"]) in html
    assert f"{threat.risk_score}/100" in html
    assert threat.severity in html


def test_it_escapes_hostile_titles_and_observables(alice_client, customer):
    threat = factories.make_threat(
        customer=customer, title=f"Login {SCRIPT} from {IMG}",
        observables={"src_ip": "192.0.2.66", "user_agent": IMG, "user": SCRIPT, "country": "US",
                      "endpoint": "/api/login"},
    )
    assert threat.analysis_status == "completed"
    factories.make_threat(customer=customer, title=f"Second {SCRIPT}", analyse=False)

    for path in (f"/threats/{threat.pk}/", "/"):
        html = html_of(alice_client.get(path))
        assert SCRIPT not in html, path
        assert "<img src=x" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
    assert "&lt;img src=x onerror=alert(1)&gt;" in html_of(alice_client.get(f"/threats/{threat.pk}/"))


def test_it_answers_404_for_an_unknown_threat(alice_client, threat):
    html = html_of(alice_client.get("/threats/00000000-0000-4000-8000-000000000000/"), 404)

    assert "Not found" in html


def test_it_rejects_outsider_on_a_threat_page(charlie_client, threat):
    html = html_of(charlie_client.get(f"/threats/{threat.pk}/"), 403)

    assert threat.title not in html


def test_it_redirects_anonymous_users_from_a_threat_page(client, threat):
    response = client.get(f"/threats/{threat.pk}/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


# --- Login -----------------------------------------------------------------------------------------


def login_with_form(browser, username, password, next_url="/"):
    html = html_of(browser.get(f"/accounts/login/?next={next_url}"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    return browser.post("/accounts/login/", {"username": username, "password": password, "next": next_url,
                                             "csrfmiddlewaretoken": token})


def test_it_logs_alice_in_through_the_real_form(alice):
    browser = Client(enforce_csrf_checks=True)

    response = login_with_form(browser, "alice", "pw-alice")

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert int(browser.session["_auth_user_id"]) == alice.pk
    assert 'data-threat-type="bot_traffic"' in html_of(browser.get("/"))


def test_it_refuses_a_wrong_password_on_the_login_form(alice):
    browser = Client(enforce_csrf_checks=True)

    response = login_with_form(browser, "alice", "wrong")

    assert "password didn" in html_of(response)
    assert "_auth_user_id" not in browser.session
    assert browser.get("/").status_code == 302


def test_it_does_not_redirect_off_site_after_login(alice):
    browser = Client(enforce_csrf_checks=True)

    response = login_with_form(browser, "alice", "pw-alice", next_url="https://evil.example/")

    assert response.status_code == 302
    assert response["Location"] == "/"


# --- Probes and API 404 ----------------------------------------------------------------------------


def test_it_reports_health_without_authentication(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_reports_ready_on_the_test_database(client):
    response = client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_it_answers_an_unknown_api_path_with_json_404(client):
    response = client.get("/api/does/not/exist")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]


def test_it_answers_an_unknown_page_with_an_html_404(alice_client):
    html = html_of(alice_client.get("/no-such-page/"), 404)

    assert "Not found" in html
