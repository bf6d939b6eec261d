"""Server-rendered pages: overview, threat list, threat detail, login, and the health/readiness probes.

What the browser does with these pages (live updates, triage clicks, reconnects) is tested in a real
browser in tests/browser/; here the HTML itself: content, escaping, links, filters and pagination,
the Content-Security-Policy, and that nothing inline could run.
"""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.html import escape

from tests import factories
from threats import services
from threats.choices import Scenario, Severity, ThreatType
from threats.models import Threat

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
JS_LINK = "javascript:alert(document.cookie)"
PAGES = ("/", "/threats/")


def html_of(response, status=200):
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("text/html")
    return response.content.decode()


def make_user_with(username, codenames):
    user = get_user_model().objects.create_user(username=username, password="pw-" + username)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="threats", codename__in=codenames))
    return get_user_model().objects.get(pk=user.pk)


def section(html, element_id):
    """The inner HTML of the element with this id (nested elements of the same tag included)."""
    start = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>', html)
    assert start, f"no element #{element_id}"
    tag, depth = start.group(1), 1
    for match in re.finditer(rf"<(/?){tag}\b[^>]*>", html[start.end():]):
        depth += -1 if match.group(1) else 1
        if depth == 0:
            return html[start.end():start.end() + match.start()]
    raise AssertionError(f"#{element_id} is not closed")


def json_script(html, element_id):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.DOTALL)
    assert match, f"no json_script #{element_id}"
    return json.loads(match.group(1))


def acknowledge(threat, user, minutes_after=None):
    services.triage(user, threat.pk, status="acknowledged")
    if minutes_after is not None:
        Threat.objects.filter(pk=threat.pk).update(acknowledged_at=threat.received_at + timedelta(minutes=minutes_after))


# --- Access -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_it_redirects_anonymous_users_to_the_login_page(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


@pytest.mark.parametrize("path", PAGES)
def test_it_rejects_the_outsider_on_every_page(charlie_client, threat, path):
    html = html_of(charlie_client.get(path), 403)

    assert threat.title not in html


def test_it_rejects_the_outsider_on_a_threat_page(charlie_client, threat):
    html = html_of(charlie_client.get(f"/threats/{threat.pk}/"), 403)

    assert threat.title not in html


def test_it_redirects_anonymous_users_from_a_threat_page(client, threat):
    response = client.get(f"/threats/{threat.pk}/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


# --- Overview ---------------------------------------------------------------------------------------


def test_it_shows_the_overview_with_every_trigger_button(alice_client):
    html = html_of(alice_client.get("/"))

    for value in ThreatType.values:
        assert f'data-threat-type="{value}"' in html
    for value in Scenario.values:
        assert f'data-scenario="{value}"' in html
    assert len(re.findall(r'class="trigger[^"]*"', html)) == 1 + len(ThreatType.values) + len(Scenario.values)


def test_it_shows_the_latest_threats_newest_first_in_the_feed(alice_client, customer):
    oldest = factories.make_threat(customer=customer, analyse=False, title="Oldest of them all",
                                   received_at=timezone.now() - timedelta(hours=2))
    recent = [
        factories.make_threat(customer=customer, analyse=False, title=f"Recent threat number {n}",
                              received_at=timezone.now() - timedelta(minutes=n))
        for n in range(25)
    ]

    feed = section(html_of(alice_client.get("/")), "feed")

    for threat in recent:
        assert f"/threats/{threat.pk}/" in feed
    assert oldest.title not in feed  # the feed shows the newest 25 only
    positions = [feed.index(f"Recent threat number {n}<") for n in range(25)]
    assert positions == sorted(positions)


def test_it_renders_the_metric_cards_from_the_database(alice_client, alice, customer):
    threats = [factories.make_threat(customer=customer, analyse=False, title=f"T{n}") for n in range(3)]
    Threat.objects.filter(pk=threats[0].pk).update(severity=Severity.CRITICAL, requires_human_review=True,
                                                   processing_ms=30)
    Threat.objects.filter(pk=threats[1].pk).update(severity=Severity.LOW, processing_ms=10)

    html = html_of(alice_client.get("/"))

    cards = dict(re.findall(r'data-metric="([^"]+)">([^<]*)<', html))
    assert cards["total_threats"] == "3"
    assert cards["customers_affected"] == "1"
    assert cards["average_processing_ms"] == "20 ms"
    assert cards["requires_review"] == "1"
    assert cards["open:CRITICAL"] == "1" and cards["open:LOW"] == "1" and cards["open:HIGH"] == "0"
    assert cards["mtta"] == "–" and cards["mttr"] == "–"


def test_it_hands_the_page_an_analytics_snapshot_exact_at_its_seq(alice_client, threat):
    html = html_of(alice_client.get("/"))

    snapshot = json_script(html, "analytics")
    seq = int(re.search(r'id="dashboard" data-seq="(\d+)"', html).group(1))
    assert snapshot["latest_seq"] == seq == services.latest_seq()
    assert snapshot["exact"] is True
    assert snapshot["total_threats"] == 1
    config = json_script(html, "page-config")
    assert config["username"] == "alice"
    assert config["slaMinutes"] == {"CRITICAL": 15, "HIGH": 30, "MEDIUM": 60, "LOW": 240}


def test_it_colours_each_severity_bar_by_the_severity_name(alice_client, customer):
    threat = factories.make_threat(customer=customer, analyse=False)
    Threat.objects.filter(pk=threat.pk).update(severity=Severity.HIGH)

    chart = section(html_of(alice_client.get("/")), "chart-severity")

    rows = re.findall(r'data-key="(\w+)".*?<rect class="bar-fill ([\w-]+)"[^>]*width="([\d.]+)"', chart, re.DOTALL)
    assert [(key, css) for key, css, _ in rows] == [(s, f"sev-fill-{s.lower()}") for s in reversed(Severity.values)]
    widths = {key: float(width) for key, _, width in rows}
    assert widths == {"CRITICAL": 0, "HIGH": 100, "MEDIUM": 0, "LOW": 0}


def test_it_lists_recent_events_as_sentences_in_the_activity_feed(alice_client, alice, threat):
    services.triage(alice, threat.pk, status="closed", disposition="false_positive", reason="Known scanner")

    activity = section(html_of(alice_client.get("/")), "activity")

    items = re.findall(r'<li data-seq="(\d+)"', activity)
    assert [int(s) for s in items] == sorted((int(s) for s in items), reverse=True)
    assert "status: New → Closed; disposition: – → False positive; reason: Known scanner" in activity
    assert f"analysed: {threat.severity}, risk {threat.risk_score}" in activity
    assert ">alice<" in activity and ">coordinator<" in activity


def test_it_shows_sla_figures_by_severity_and_customer(alice_client, alice, customer):
    late = factories.make_threat(customer=customer, analyse=False, received_at=timezone.now() - timedelta(hours=3))
    Threat.objects.filter(pk=late.pk).update(severity=Severity.HIGH)  # 30 min SLA: breached, never acknowledged
    quick = factories.make_threat(customer=customer, analyse=False, received_at=timezone.now() - timedelta(hours=2))
    Threat.objects.filter(pk=quick.pk).update(severity=Severity.HIGH)
    acknowledge(quick, alice, minutes_after=10)

    html = html_of(alice_client.get("/"))

    high = re.search(r'<tr data-key="HIGH">(.*?)</tr>', section(html, "sla-severity"), re.DOTALL).group(1)
    cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', high)
    assert cells == ["1", "10m 00s", "100%", "0", "–", "1"]
    assert customer.name in section(html, "sla-customer")
    cards = dict(re.findall(r'data-metric="([^"]+)">([^<]*)<', html))
    assert cards["breached_open"] == "1"
    assert re.search(r'class="card metric alert" data-card="breached_open"', html)


def test_it_hides_trigger_buttons_from_a_viewer_without_the_add_permission(client, customer):
    viewer = make_user_with("viewer", ["view_threat"])
    threat = factories.make_threat(customer=customer, analyse=False, title="Visible to viewers")
    client.force_login(viewer)

    html = html_of(client.get("/"))

    assert threat.title in html
    assert "data-threat-type=" not in html and "data-scenario=" not in html


# --- Threat list ------------------------------------------------------------------------------------


def list_ids(client, params=None, status=200):
    html = html_of(client.get("/threats/", params or {}), status)
    return re.findall(r'<tr class="threat-row[^"]*" data-id="([0-9a-f-]+)"', html), html


def spread(customer, count, **fields):
    """`count` threats received one minute apart, newest first in the returned list."""
    now = timezone.now()
    made = [factories.make_threat(customer=customer, analyse=False, title=f"Spread {n}",
                                  received_at=now - timedelta(minutes=n), **fields) for n in range(count)]
    return [str(t.pk) for t in made]


def test_it_pages_the_list_by_keyset_in_both_directions(alice_client, customer, settings):
    from threats import views

    views.PAGE_SIZE, page_size = 4, views.PAGE_SIZE
    try:
        ids = spread(customer, 10)
        first, html = list_ids(alice_client)
        older = re.search(r'href="\?cursor=([^"]+)" rel="next"', html).group(1)
        second, html = list_ids(alice_client, {"cursor": older})
        newer = re.search(r'before=([^"]+)" rel="prev"', html).group(1)
        back, _ = list_ids(alice_client, {"before": newer})
    finally:
        views.PAGE_SIZE = page_size

    assert first == ids[:4]
    assert second == ids[4:8]
    assert back == ids[:4]
    assert 'rel="prev"' not in list_ids(alice_client)[1]


def test_it_never_counts_or_offsets_when_paging(alice_client, customer):
    spread(customer, 3)
    cursor = alice_client.get("/api/threats", {"limit": 1}).json()["next_cursor"]

    with CaptureQueriesContext(connection) as queries:
        html_of(alice_client.get("/threats/", {"cursor": cursor, "severity": "LOW", "q": "Spread"}))
        html_of(alice_client.get("/threats/", {"before": cursor, "status": "new"}))

    threat_queries = [q["sql"] for q in queries.captured_queries if '"threats_threat"' in q["sql"]]
    assert threat_queries
    for sql in threat_queries:
        assert "OFFSET" not in sql.upper() and "COUNT(" not in sql.upper(), sql


@pytest.mark.parametrize("params, expected", [
    ({"severity": "CRITICAL"}, "critical"),
    ({"threat_type": "geo_anomaly"}, "geo"),
    ({"status": "closed"}, "closed"),
    ({"customer": "other-co"}, "other"),
    ({"assignee": "me"}, "mine"),
    ({"assignee": "bob"}, "bobs"),
    ({"assignee": "none"}, "unassigned"),
    ({"review": "yes"}, "review"),
    ({"q": "needle"}, "needle"),
])
def test_it_filters_the_list(alice_client, alice, bob, customer, params, expected):
    other = factories.make_customer(name="Other Co")
    made = {
        "critical": factories.make_threat(customer=customer, analyse=False, title="Critical one"),
        "geo": factories.make_threat(customer=customer, analyse=False, threat_type="geo_anomaly", title="Geo one"),
        "closed": factories.make_threat(customer=customer, analyse=False, title="Closed one"),
        "other": factories.make_threat(customer=other, analyse=False, title="Other customer's"),
        "mine": factories.make_threat(customer=customer, analyse=False, title="Mine"),
        "bobs": factories.make_threat(customer=customer, analyse=False, title="Bob's"),
        "review": factories.make_threat(customer=customer, analyse=False, title="Needs a human"),
        "needle": factories.make_threat(customer=customer, analyse=False, title="A needle in the stack"),
    }
    Threat.objects.filter(pk=made["critical"].pk).update(severity="CRITICAL")
    Threat.objects.filter(pk=made["closed"].pk).update(status="closed")
    Threat.objects.filter(pk=made["mine"].pk).update(assignee=alice)
    Threat.objects.filter(pk=made["bobs"].pk).update(assignee=bob)
    Threat.objects.filter(pk=made["review"].pk).update(requires_human_review=True)
    unassigned = {k for k in made if k not in ("mine", "bobs")}

    ids, html = list_ids(alice_client, params)

    wanted = unassigned if expected == "unassigned" else {expected}
    assert set(ids) == {str(made[k].pk) for k in wanted}
    for name, value in params.items():  # the form shows the active filter
        assert re.search(rf'(value="{re.escape(value)}" selected|name="{name}" value="{value}")', html)


def test_it_explains_a_bad_filter_instead_of_failing(alice_client, threat):
    ids, html = list_ids(alice_client, {"severity": "SEVERE"}, status=400)

    assert ids == []
    assert "Unknown severity &#x27;SEVERE&#x27;." in html and "severity: " not in html  # words, no field name


def test_it_explains_a_bad_cursor(alice_client, threat):
    ids, html = list_ids(alice_client, {"cursor": "not-a-cursor"}, status=400)

    assert ids == [] and "Invalid cursor" in html


def test_it_offers_bulk_actions_only_to_analysts_who_may_triage(client, alice_client, customer):
    factories.make_threat(customer=customer, analyse=False)
    viewer = make_user_with("viewer", ["view_threat"])

    assert 'id="bulk"' in html_of(alice_client.get("/threats/"))
    assert 'class="select"' in html_of(alice_client.get("/threats/"))
    client.force_login(viewer)
    html = html_of(client.get("/threats/"))
    assert 'id="bulk"' not in html and 'class="select"' not in html


def test_it_highlights_a_breached_sla_in_the_list(alice_client, alice, customer):
    breached = factories.make_threat(customer=customer, analyse=False, title="Breached one",
                                     received_at=timezone.now() - timedelta(minutes=45))
    on_time = factories.make_threat(customer=customer, analyse=False, title="On time",
                                    received_at=timezone.now() - timedelta(minutes=5))
    Threat.objects.filter(pk__in=[breached.pk, on_time.pk]).update(severity="CRITICAL")

    html = html_of(alice_client.get("/threats/"))

    row = re.search(rf'<tr class="([^"]*)" data-id="{breached.pk}".*?<td class="sla ([^"]*)">([^<]*)<', html, re.DOTALL)
    assert row.group(1) == "threat-row breached" and row.group(2) == "sla-breached"
    assert row.group(3).startswith("breached 30m")
    row = re.search(rf'<tr class="([^"]*)" data-id="{on_time.pk}".*?<td class="sla ([^"]*)">([^<]*)<', html, re.DOTALL)
    assert row.group(1) == "threat-row" and row.group(2) == "sla-running" and row.group(3).startswith("due in 9m")


# --- Threat detail ----------------------------------------------------------------------------------


def test_it_shows_every_section_of_an_analysed_threat(alice_client, threat):
    html = html_of(alice_client.get(f"/threats/{threat.pk}/"))

    assert escape(threat.title) in html
    for heading in ("Triage", "SLA", "Agents", "Risk score breakdown", "MITRE ATT&amp;CK", "False positive",
                    "Response plan", "Timeline", "Signal", "Notes", "History"):
        assert f">{heading}" in html, heading
    runs = list(threat.agent_runs.all())
    assert {run.kind for run in runs} == {"historical", "config", "devops", "context", "priority"}
    for run in runs:
        assert escape(run.summary) in html
        assert f"confidence {round(run.confidence * 100)}%" in html
    for factor in threat.risk_factors:
        assert escape(factor["reason"]) in html
    for technique in threat.mitre["techniques"]:
        assert f"<code>{technique['technique_id']}</code>" in html
    assert f"{threat.risk_score}/100" in html
    for step in threat.response_plan["escalation"]:
        assert f"<li>{escape(step)}</li>" in html


def test_it_links_the_historical_threats_an_agent_cites(alice_client, alice, customer):
    past = factories.make_threat(customer=customer, title="Earlier automated traffic",
                                 received_at=timezone.now() - timedelta(days=2))
    services.triage(alice, past.pk, status="closed", disposition="false_positive", reason="Load test")
    threat = factories.make_threat(customer=customer)
    historical = threat.agent_runs.get(kind="historical")
    assert any(f"threat:{past.pk}" in f["evidence"] for f in historical.findings)

    html = html_of(alice_client.get(f"/threats/{threat.pk}/"))

    link = re.search(rf'<a class="ref" href="/threats/{past.pk}/"[^>]*>([^<]*)</a>', html)
    assert link and link.group(1) == "Earlier automated traffic (false positive)"


def test_it_shows_queued_agents_while_the_analysis_runs(alice_client, customer):
    threat = factories.make_threat(customer=customer, analyse=False)

    html = html_of(alice_client.get(f"/threats/{threat.pk}/"))

    assert html.count('class="agent-state state-queued">queued…<') == 5
    assert 'data-analysis="queued"' in html
    assert "The SLA starts when the analysis has decided the severity." in html


def test_it_counts_down_the_sla_and_shows_tta_and_ttr(alice_client, alice, customer):
    threat = factories.make_threat(customer=customer, analyse=False, received_at=timezone.now() - timedelta(minutes=5))
    Threat.objects.filter(pk=threat.pk).update(severity="HIGH")
    due = (threat.received_at + timedelta(minutes=30)).isoformat()

    html = html_of(alice_client.get(f"/threats/{threat.pk}/"))
    assert f'id="sla-clock" class="sla" data-due="{due}" data-acknowledged=""' in html

    acknowledge(threat, alice, minutes_after=12)
    services.triage(alice, threat.pk, status="resolved", disposition="true_positive", reason="Contained")
    html = html_of(alice_client.get(f"/threats/{threat.pk}/"))
    assert "<dt>Time to acknowledge</dt><dd>12m 00s</dd>" in html
    assert re.search(r"<dt>Time to resolve</dt><dd>5m \d\ds</dd>", html)


def test_it_shows_notes_and_the_event_history(alice_client, alice, threat):
    services.add_note(alice, threat.pk, "Checked the\nfirewall logs")
    services.triage(alice, threat.pk, assignee="alice")

    html = html_of(alice_client.get(f"/threats/{threat.pk}/"))

    assert "Checked the<br>firewall logs" in html
    history = section(html, "history")
    assert [m for m in re.findall(r'<span class="what">([^<]*)</span>', history)] == [
        "created", f"analysed: {threat.severity}, risk {threat.risk_score}", "added a note", "assignee: – → alice",
    ]


def test_it_answers_404_for_an_unknown_threat(alice_client, threat):
    html = html_of(alice_client.get("/threats/00000000-0000-4000-8000-000000000000/"), 404)

    assert "Not found" in html


# --- Safety: hostile alert text, CSP, nothing inline -------------------------------------------------


@pytest.fixture
def hostile(customer):
    threat = factories.make_threat(
        customer=customer, title=f"Login {SCRIPT} from {IMG}",
        observables={"src_ip": "192.0.2.66", "user_agent": IMG, "user": SCRIPT, "country": "US",
                     "endpoint": "/api/login", "urls": [JS_LINK]},
        raw={"metadata": {"note": SCRIPT, "link": JS_LINK}},
    )
    assert threat.analysis_status == "completed"
    return threat


@pytest.mark.parametrize("path", ["/", "/threats/", "/threats/{id}/"])
def test_it_escapes_hostile_alert_text_on_every_page(alice_client, hostile, path):
    html = html_of(alice_client.get(path.format(id=hostile.pk)))

    assert SCRIPT not in html
    assert "<img src=x" not in html
    assert 'href="javascript:' not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_it_shows_hostile_observables_as_text_on_the_detail_page(alice_client, hostile):
    html = html_of(alice_client.get(f"/threats/{hostile.pk}/"))

    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert f"<code>{escape(JS_LINK)}</code>" in html


@pytest.mark.parametrize("path", ["/", "/threats/", "/threats/{id}/", "/accounts/login/"])
def test_it_runs_no_inline_script_or_style_and_sends_a_csp(alice_client, threat, path):
    response = alice_client.get(path.format(id=threat.pk))
    html = html_of(response)

    policy = response["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    assert "object-src 'none'" in policy and "base-uri 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "connect-src 'self' ws://testserver wss://testserver" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert re.search(r'\bsrc="/static/', tag) or 'type="application/json"' in tag, tag
    assert not re.search(r"<[^>]+\sstyle=", html)
    assert not re.search(r"<[^>]+\son[a-z]+=", html)
    assert "//cdn" not in html and "https://" not in html.replace("https:\\u002F", "")


def test_it_serves_every_page_script_and_stylesheet_from_static(alice_client, threat):
    for path in ("/", "/threats/", f"/threats/{threat.pk}/"):
        html = html_of(alice_client.get(path))
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)


# --- Login ------------------------------------------------------------------------------------------


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


# --- Probes and API 404 -----------------------------------------------------------------------------


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


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's query plan")
@pytest.mark.parametrize("direction, bound", [("cursor", "<="), ("before", ">=")])
def test_a_deep_page_seeks_in_the_index_instead_of_walking_it(alice_client, customer, direction, bound):
    spread(customer, 5)
    cursor = alice_client.get("/api/threats", {"limit": 2}).json()["next_cursor"]

    with CaptureQueriesContext(connection) as queries:
        html_of(alice_client.get("/threats/", {direction: cursor}))

    listing = next(q["sql"] for q in queries.captured_queries
                   if 'FROM "threats_threat"' in q["sql"] and "ORDER BY" in q["sql"])
    with connection.cursor() as cursor_:
        cursor_.execute("SET LOCAL enable_seqscan = off")  # five rows: make the planner show its index use
        cursor_.execute("EXPLAIN " + listing)
        plan = "\n".join(row[0] for row in cursor_.fetchall())
    # An index condition on received_at: the scan starts at the cursor, not at the newest row.
    assert re.search(rf"Index Cond: \(.*received_at {bound}", plan), plan
