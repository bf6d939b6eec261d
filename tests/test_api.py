"""The JSON API under /api, as documented in ARCHITECTURE §5: every endpoint, its filters and its
errors (always JSON with a "detail" key), for the analyst alice, the anonymous caller and the
outsider charlie."""

import base64
import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from agents.registry import AGENT_KINDS
from tests import factories
from threats.choices import Disposition, Scenario, Severity, Status, ThreatType
from threats.models import Customer, Note, Threat, ThreatEvent

pytestmark = pytest.mark.django_db

JSON = "application/json"
SUMMARY_KEYS = {
    "id", "title", "source", "threat_type", "customer", "customer_slug", "severity", "risk_score",
    "analysis_status", "status", "disposition", "assignee", "requires_human_review", "executive_summary",
    "mitre_techniques", "processing_ms", "occurred_at", "received_at", "campaign", "version", "group_id", "group_head",
    "pivots", "suppressed",
}
DETAIL_KEYS = SUMMARY_KEYS | {
    "source_ref", "observables", "mitre_hints", "rule", "signal", "raw", "risk_factors", "confidence", "mitre", "false_positive",
    "response_plan", "timeline", "review_reasons", "analyzed_at", "analysis_error", "disposition_reason",
    "acknowledged_at", "closed_at", "closed_by_kind", "agent_runs", "notes", "adversarial", "severity_hint",
    "suppression", "stories",
}


# --- Helpers -------------------------------------------------------------------------------------


def send(client, method, path, body=None, **extra):
    if method == "get":
        return client.get(path, body or {}, **extra)
    data = "" if body is None else json.dumps(body)
    return getattr(client, method)(path, data, content_type=JSON, **extra)


def json_error(response, status):
    """Assert a JSON error answer with the given status and a non-empty "detail"; return the body."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(JSON), response["Content-Type"]
    body = response.json()
    assert body.get("detail"), body
    return body


def ids(response):
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def quick_threat(customer, minutes_ago=0, **fields):
    """A stored, unanalysed threat received `minutes_ago` (fast: no agents)."""
    received = timezone.now() - timedelta(minutes=minutes_ago)
    return factories.make_threat(customer=customer, analyse=False, received_at=received, **fields)


def updated_events(threat):
    return list(ThreatEvent.objects.filter(threat=threat, type="threat.updated").order_by("seq"))


def encode_cursor(value):
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def db_state():
    """Everything a refused request must leave untouched."""
    return (
        Threat.objects.count(), ThreatEvent.objects.count(), Note.objects.count(),
        sorted(Threat.objects.values_list("status", "assignee_id", "disposition")),
    )


# --- Authentication and authorization, for every endpoint ----------------------------------------

ENDPOINTS = [
    ("get", "/api/threats", None),
    ("get", "/api/threats/{id}", None),
    ("post", "/api/threats/trigger", {"threat_type": "bot_traffic"}),
    ("patch", "/api/threats/{id}", {"status": "acknowledged"}),
    ("post", "/api/threats/{id}/notes", {"body": "looks bad"}),
    ("get", "/api/analytics", None),
    ("get", "/api/events", None),
]
ENDPOINT_IDS = [f"{method} {path}" for method, path, _ in ENDPOINTS]


@pytest.mark.parametrize("method,path,body", ENDPOINTS, ids=ENDPOINT_IDS)
def test_it_answers_anonymous_callers_with_401_json(client, threat, method, path, body):
    before = db_state()
    response = send(client, method, path.format(id=threat.pk), body)
    json_error(response, 401)
    assert db_state() == before


@pytest.mark.parametrize("method,path,body", ENDPOINTS, ids=ENDPOINT_IDS)
def test_it_rejects_outsider(charlie_client, threat, method, path, body):
    before = db_state()
    response = send(charlie_client, method, path.format(id=threat.pk), body)
    json_error(response, 403)
    assert db_state() == before


@pytest.mark.parametrize("method,path,body", [e for e in ENDPOINTS if e[0] != "get"],
                         ids=[i for i, e in zip(ENDPOINT_IDS, ENDPOINTS) if e[0] != "get"])
def test_it_refuses_writes_to_a_read_only_viewer(client, threat, method, path, body):
    viewer = get_user_model().objects.create_user(username="viewer", password="pw-viewer")
    viewer.user_permissions.add(Permission.objects.get(content_type__app_label="threats", codename="view_threat"))
    client.force_login(viewer)
    assert client.get(f"/api/threats/{threat.pk}").status_code == 200
    before = db_state()

    json_error(send(client, method, path.format(id=threat.pk), body), 403)

    assert db_state() == before


@pytest.mark.parametrize("method,path,body", ENDPOINTS, ids=ENDPOINT_IDS)
def test_it_serves_every_endpoint_to_an_analyst(alice_client, threat, method, path, body):
    response = send(alice_client, method, path.format(id=threat.pk), body)
    assert response.status_code in (200, 201, 202), response.content
    assert response["Content-Type"].startswith(JSON)


# --- GET /api/threats -----------------------------------------------------------------------------


def test_it_lists_threats_newest_first_as_summaries(alice_client, customer):
    old = quick_threat(customer, minutes_ago=30, title="old one")
    new = quick_threat(customer, minutes_ago=1, title="new one")
    middle = quick_threat(customer, minutes_ago=10, title="middle one")

    response = alice_client.get("/api/threats")

    assert ids(response) == [str(new.pk), str(middle.pk), str(old.pk)]
    body = response.json()
    assert body["next_cursor"] is None
    assert set(body["items"][0]) == SUMMARY_KEYS
    assert body["items"][0]["title"] == "new one"
    assert body["items"][0]["customer_slug"] == customer.slug


def test_it_returns_twenty_threats_by_default(alice_client, customer):
    for minute in range(21):
        quick_threat(customer, minutes_ago=minute)

    response = alice_client.get("/api/threats")

    assert len(ids(response)) == 20
    assert response.json()["next_cursor"]


@pytest.mark.parametrize("limit", [1, 3, 100])
def test_it_honours_a_limit_within_bounds(alice_client, customer, limit):
    for minute in range(4):
        quick_threat(customer, minutes_ago=minute)

    assert len(ids(alice_client.get("/api/threats", {"limit": limit}))) == min(limit, 4)


@pytest.mark.parametrize("limit", ["0", "101", "-1", "many"])
def test_it_rejects_a_limit_out_of_bounds(alice_client, limit):
    body = json_error(alice_client.get("/api/threats", {"limit": limit}), 400)
    assert body["field"] == "limit" and body["detail"].startswith("Invalid limit: ")


def test_it_walks_every_row_exactly_once_newest_first_with_the_cursor(alice_client, customer):
    tie = timezone.now() - timedelta(minutes=5)
    made = [quick_threat(customer, minutes_ago=minute) for minute in (1, 2, 3, 8, 9)]
    # Three threats received at the very same instant: the cursor must break the tie by id.
    made += [factories.make_threat(customer=customer, analyse=False, received_at=tie) for _ in range(3)]
    expected = [str(pk) for pk in Threat.objects.order_by("-received_at", "-id").values_list("pk", flat=True)]

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = alice_client.get("/api/threats", params)
        page = ids(response)
        assert 0 < len(page) <= 3
        seen += page
        pages += 1
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
        assert pages < 10, "pagination does not terminate"

    assert pages == 3
    assert len(seen) == len(set(seen)) == len(made)
    assert seen == expected
    received = [Threat.objects.get(pk=pk).received_at for pk in seen]
    assert received == sorted(received, reverse=True)


def test_it_paginates_within_a_filter(alice_client, customer):
    other = factories.make_customer()
    mine = [quick_threat(customer, minutes_ago=minute) for minute in range(5)]
    for minute in range(5):
        quick_threat(other, minutes_ago=minute)

    first = alice_client.get("/api/threats", {"customer": customer.slug, "limit": 3})
    second = alice_client.get("/api/threats", {"customer": customer.slug, "limit": 3,
                                               "cursor": first.json()["next_cursor"]})

    assert ids(first) + ids(second) == [str(t.pk) for t in mine]
    assert second.json()["next_cursor"] is None


@pytest.mark.parametrize("cursor", ["zzz", "!!!!", "bm90IGpzb24", encode_cursor({"a": 1}), encode_cursor(["x", "y"]),
                                    encode_cursor([None, None]), encode_cursor(7)])
def test_it_rejects_an_invalid_cursor_with_400_naming_the_field(alice_client, threat, cursor):
    body = json_error(alice_client.get("/api/threats", {"cursor": cursor}), 400)
    assert body["field"] == "cursor"


def test_it_rejects_a_crafted_cursor_with_a_non_string_id_as_400(alice_client, threat):
    cursor = encode_cursor([timezone.now().isoformat(), 5])
    body = json_error(alice_client.get("/api/threats", {"cursor": cursor}), 400)
    assert body["field"] == "cursor"


def test_it_filters_by_severity(alice_client, customer):
    critical, low = quick_threat(customer, minutes_ago=1), quick_threat(customer, minutes_ago=2)
    Threat.objects.filter(pk=critical.pk).update(severity=Severity.CRITICAL)
    Threat.objects.filter(pk=low.pk).update(severity=Severity.LOW)

    assert ids(alice_client.get("/api/threats", {"severity": "CRITICAL"})) == [str(critical.pk)]
    assert ids(alice_client.get("/api/threats", {"severity": "LOW"})) == [str(low.pk)]
    assert ids(alice_client.get("/api/threats", {"severity": "HIGH"})) == []


def test_it_rejects_an_unknown_severity_listing_the_valid_values(alice_client, threat):
    body = json_error(alice_client.get("/api/threats", {"severity": "SEVERE"}), 400)
    assert body["field"] == "severity"
    assert body["valid"] == ["LOW", "MEDIUM", "HIGH", "CRITICAL"]


def test_it_rejects_an_unknown_status_listing_the_valid_values(alice_client, threat):
    body = json_error(alice_client.get("/api/threats", {"status": "done"}), 400)
    assert body["field"] == "status"
    assert body["valid"] == Status.values


def test_it_filters_by_threat_type(alice_client, customer):
    geo = quick_threat(customer, minutes_ago=1, threat_type="geo_anomaly")
    bot = quick_threat(customer, minutes_ago=2, threat_type="bot_traffic")

    assert ids(alice_client.get("/api/threats", {"threat_type": "geo_anomaly"})) == [str(geo.pk)]
    assert ids(alice_client.get("/api/threats", {"threat_type": "bot_traffic"})) == [str(bot.pk)]


def test_it_filters_by_status(alice_client, customer):
    acknowledged, new = quick_threat(customer, minutes_ago=1), quick_threat(customer, minutes_ago=2)
    Threat.objects.filter(pk=acknowledged.pk).update(status=Status.ACKNOWLEDGED)

    assert ids(alice_client.get("/api/threats", {"status": "acknowledged"})) == [str(acknowledged.pk)]
    assert ids(alice_client.get("/api/threats", {"status": "new"})) == [str(new.pk)]


def test_it_filters_by_customer_slug(alice_client, customer):
    other = factories.make_customer(name="Other Corp")
    mine, theirs = quick_threat(customer, minutes_ago=1), quick_threat(other, minutes_ago=2)

    assert ids(alice_client.get("/api/threats", {"customer": customer.slug})) == [str(mine.pk)]
    assert ids(alice_client.get("/api/threats", {"customer": "other-corp"})) == [str(theirs.pk)]
    assert ids(alice_client.get("/api/threats", {"customer": "nobody"})) == []


def test_it_filters_by_assignee_including_me_and_none(alice_client, alice, bob, customer):
    alices = quick_threat(customer, minutes_ago=1)
    bobs = quick_threat(customer, minutes_ago=2)
    nobodys = quick_threat(customer, minutes_ago=3)
    Threat.objects.filter(pk=alices.pk).update(assignee=alice)
    Threat.objects.filter(pk=bobs.pk).update(assignee=bob)

    assert ids(alice_client.get("/api/threats", {"assignee": "me"})) == [str(alices.pk)]
    assert ids(alice_client.get("/api/threats", {"assignee": "alice"})) == [str(alices.pk)]
    assert ids(alice_client.get("/api/threats", {"assignee": "bob"})) == [str(bobs.pk)]
    assert ids(alice_client.get("/api/threats", {"assignee": "none"})) == [str(nobodys.pk)]


def test_it_filters_by_requires_review(alice_client, customer):
    flagged, plain = quick_threat(customer, minutes_ago=1), quick_threat(customer, minutes_ago=2)
    Threat.objects.filter(pk=flagged.pk).update(requires_human_review=True)

    assert ids(alice_client.get("/api/threats", {"requires_review": "true"})) == [str(flagged.pk)]
    assert ids(alice_client.get("/api/threats", {"requires_review": "false"})) == [str(plain.pk)]


def test_it_searches_title_summary_and_source_ref_with_q(alice_client, customer):
    by_title = quick_threat(customer, minutes_ago=1, title="Credential stuffing on /login")
    by_summary = quick_threat(customer, minutes_ago=2, title="Something else")
    Threat.objects.filter(pk=by_summary.pk).update(executive_summary="Likely CREDENTIAL reuse from a botnet")
    by_ref = quick_threat(customer, minutes_ago=3, title="Imported alert", source="wazuh", source_ref="wz-4711")
    quick_threat(customer, minutes_ago=4, title="Unrelated")

    assert ids(alice_client.get("/api/threats", {"q": "credential"})) == [str(by_title.pk), str(by_summary.pk)]
    assert ids(alice_client.get("/api/threats", {"q": "wz-4711"})) == [str(by_ref.pk)]
    assert ids(alice_client.get("/api/threats", {"q": "nothing matches this"})) == []


def test_it_combines_filters(alice_client, customer):
    other = factories.make_customer()
    wanted = quick_threat(customer, minutes_ago=1, threat_type="geo_anomaly")
    quick_threat(customer, minutes_ago=2, threat_type="bot_traffic")
    quick_threat(other, minutes_ago=3, threat_type="geo_anomaly")

    response = alice_client.get("/api/threats", {"customer": customer.slug, "threat_type": "geo_anomaly"})

    assert ids(response) == [str(wanted.pk)]


# --- GET /api/threats/{id} ------------------------------------------------------------------------


def test_it_returns_the_full_threat_with_all_five_agent_runs(alice_client, threat):
    response = alice_client.get(f"/api/threats/{threat.pk}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == DETAIL_KEYS
    assert body["id"] == str(threat.pk)
    assert body["title"] == threat.title
    assert body["observables"] == threat.observables
    assert body["raw"] == threat.raw
    assert body["analysis_status"] == "completed"
    assert body["severity"] in Severity.values
    assert body["risk_score"] == threat.risk_score
    assert body["risk_factors"] == threat.risk_factors and body["risk_factors"]
    assert body["response_plan"] == threat.response_plan
    assert body["mitre"] == threat.mitre
    assert body["false_positive"] == threat.false_positive
    runs = {run["kind"]: run for run in body["agent_runs"]}
    assert set(runs) == {"historical", "config", "devops", "context", "priority"} == set(AGENT_KINDS)
    for run in runs.values():
        assert run["status"] == "succeeded", run
        assert run["summary"]
        assert run["finished_at"] and run["started_at"]
    assert body["notes"] == []


def test_it_includes_notes_in_the_detail(alice_client, threat):
    alice_client.post(f"/api/threats/{threat.pk}/notes", {"body": "first look"}, content_type=JSON)

    notes = alice_client.get(f"/api/threats/{threat.pk}").json()["notes"]

    assert [(n["author"], n["body"]) for n in notes] == [("alice", "first look")]


def test_it_answers_404_json_for_an_absent_threat(alice_client, threat):
    json_error(alice_client.get("/api/threats/00000000-0000-4000-8000-000000000000"), 404)


def test_it_answers_404_json_for_a_non_uuid_path(alice_client):
    json_error(alice_client.get("/api/threats/not-a-uuid"), 404)


# --- POST /api/threats/trigger --------------------------------------------------------------------


def trigger(client, body=None):
    return send(client, "post", "/api/threats/trigger", body)


def test_it_triggers_a_threat_and_queues_its_analysis_on_commit(alice_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = trigger(alice_client, {"threat_type": "geo_anomaly"})

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["analysis_status"] == "queued"  # the answer does not wait for the agents
    assert body["threat_type"] == "geo_anomaly"
    assert body["url"] == f"/api/threats/{body['id']}"
    threat = Threat.objects.get(pk=body["id"])
    assert threat.threat_type == "geo_anomaly"
    assert threat.customer.name == body["customer"]
    assert threat.analysis_status == "completed"
    assert set(threat.agent_runs.values_list("kind", flat=True)) == set(AGENT_KINDS)
    created = ThreatEvent.objects.get(threat=threat, type="threat.created")
    assert created.actor_label == "alice"


@pytest.mark.parametrize("threat_type", ThreatType.values)
def test_it_triggers_each_threat_type(alice_client, threat_type):
    response = trigger(alice_client, {"threat_type": threat_type})

    assert response.status_code == 202, response.content
    threat = Threat.objects.get(pk=response.json()["id"])
    assert threat.threat_type == threat_type
    assert threat.observables and threat.raw["metadata"]


@pytest.mark.parametrize("scenario,customer_name,threat_type", [
    ("crypto_surge", "CryptoExchange Pro", "rate_limit_breach"),
    ("bot_attack", "RetailMax", "bot_traffic"),
    ("geo_impossible", "Global Finance", "geo_anomaly"),
    ("critical_threat", "HealthCare Plus", "device_compromise"),
])
def test_it_triggers_each_scenario(alice_client, scenario, customer_name, threat_type):
    response = trigger(alice_client, {"scenario": scenario})

    assert response.status_code == 202, response.content
    threat = Threat.objects.get(pk=response.json()["id"])
    assert (threat.customer.name, threat.threat_type) == (customer_name, threat_type)
    assert threat.raw["scenario"] == scenario


def test_it_triggers_for_a_customer_given_by_slug(alice_client, customer):
    response = trigger(alice_client, {"customer": customer.slug, "threat_type": "bot_traffic"})

    assert response.status_code == 202, response.content
    assert Threat.objects.get(pk=response.json()["id"]).customer == customer


def test_it_triggers_for_a_catalogue_customer_given_by_slug(alice_client):
    response = trigger(alice_client, {"customer": "retailmax"})

    assert response.status_code == 202, response.content
    assert Threat.objects.get(pk=response.json()["id"]).customer.name == "RetailMax"
    assert Customer.objects.filter(name="RetailMax").count() == 1


@pytest.mark.parametrize("body", [None, {}], ids=["no body", "empty object"])
def test_it_triggers_a_random_threat_without_a_body(alice_client, body):
    response = trigger(alice_client, body)

    assert response.status_code == 202, response.content
    threat = Threat.objects.get(pk=response.json()["id"])
    assert threat.threat_type in ThreatType.values


@pytest.mark.parametrize("body,field,valid", [
    ({"threat_type": "ransomware"}, "threat_type", ThreatType.values),
    ({"scenario": "zombie_apocalypse"}, "scenario", Scenario.values),
])
def test_it_rejects_an_unknown_type_or_scenario_listing_the_valid_values(alice_client, body, field, valid):
    result = json_error(trigger(alice_client, body), 400)

    assert result["field"] == field
    assert result["valid"] == valid
    assert not Threat.objects.exists()


def test_it_rejects_an_unknown_customer_listing_the_known_ones(alice_client, customer):
    result = json_error(trigger(alice_client, {"customer": "no-such-customer"}), 400)

    assert result["field"] == "customer"
    assert customer.slug in result["valid"]
    assert not Threat.objects.exists()


def test_it_rejects_both_type_and_scenario(alice_client):
    json_error(trigger(alice_client, {"threat_type": "bot_traffic", "scenario": "bot_attack"}), 400)
    assert not Threat.objects.exists()


@pytest.mark.parametrize("raw", ["{not json", "[1, 2", '{"threat_type": }', "\x00\xff"])
def test_it_answers_malformed_json_with_a_4xx_json_error(alice_client, raw):
    response = alice_client.post("/api/threats/trigger", raw, content_type=JSON)

    assert 400 <= response.status_code < 500
    json_error(response, response.status_code)
    assert not Threat.objects.exists()


@pytest.mark.parametrize("raw", ['["geo_anomaly"]', '"geo_anomaly"', "5"])
def test_it_rejects_a_trigger_body_that_is_not_a_json_object(alice_client, raw):
    response = alice_client.post("/api/threats/trigger", raw, content_type=JSON)

    assert 400 <= response.status_code < 500
    json_error(response, response.status_code)
    assert not Threat.objects.exists()


def test_it_enforces_csrf_on_writes_with_a_real_session(alice, threat):
    browser = Client(enforce_csrf_checks=True)
    assert browser.login(username="alice", password="pw-alice")
    before = db_state()

    json_error(send(browser, "post", "/api/threats/trigger", {"threat_type": "bot_traffic"}), 403)
    json_error(send(browser, "patch", f"/api/threats/{threat.pk}", {"status": "acknowledged"}), 403)
    json_error(send(browser, "post", f"/api/threats/{threat.pk}/notes", {"body": "x"}), 403)
    assert db_state() == before

    browser.get("/accounts/login/")  # any page with a form sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    response = send(browser, "post", "/api/threats/trigger", {"threat_type": "bot_traffic"}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 202, response.content
    response = send(browser, "patch", f"/api/threats/{threat.pk}", {"status": "acknowledged"}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200, response.content


# --- PATCH /api/threats/{id} ----------------------------------------------------------------------


def patch(client, threat, body):
    return send(client, "patch", f"/api/threats/{threat.pk}", body)


def test_it_acknowledges_a_threat(alice_client, threat):
    response = patch(alice_client, threat, {"status": "acknowledged"})

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "acknowledged"
    threat.refresh_from_db()
    assert threat.status == Status.ACKNOWLEDGED
    assert threat.acknowledged_at is not None
    assert threat.closed_at is None
    [event] = updated_events(threat)
    assert event.actor_label == "alice"
    # Acknowledging a threat nobody has takes it (docs/api.md "One meaning of Acknowledge").
    assert event.payload["changes"] == {"status": {"from": "new", "to": "acknowledged"},
                                        "assignee": {"from": None, "to": "alice"}}


def test_it_assigns_a_threat_to_bob(alice_client, bob, threat):
    response = patch(alice_client, threat, {"assignee": "bob"})

    assert response.status_code == 200, response.content
    assert response.json()["assignee"] == "bob"
    threat.refresh_from_db()
    assert threat.assignee == bob
    [event] = updated_events(threat)
    assert event.payload["changes"] == {"assignee": {"from": None, "to": "bob"}}


@pytest.mark.parametrize("nobody", [None, ""], ids=["null", "empty string"])
def test_it_unassigns_a_threat(alice_client, bob, threat, nobody):
    patch(alice_client, threat, {"assignee": "bob"})

    response = patch(alice_client, threat, {"assignee": nobody})

    assert response.status_code == 200, response.content
    assert response.json()["assignee"] is None
    threat.refresh_from_db()
    assert threat.assignee is None
    events = updated_events(threat)
    assert len(events) == 2
    assert events[-1].payload["changes"] == {"assignee": {"from": "bob", "to": None}}


@pytest.mark.parametrize("username", ["charlie", "nobody-here"])
def test_it_refuses_to_assign_to_someone_who_is_not_an_analyst(alice_client, charlie, threat, username):
    body = json_error(patch(alice_client, threat, {"assignee": username}), 400)

    assert body["field"] == "assignee"
    threat.refresh_from_db()
    assert threat.assignee is None
    assert updated_events(threat) == []


def test_it_closes_a_threat_with_a_disposition_and_a_reason(alice_client, threat):
    response = patch(alice_client, threat,
                     {"status": "closed", "disposition": "false_positive", "reason": "Known scanner"})

    assert response.status_code == 200, response.content
    threat.refresh_from_db()
    assert threat.status == Status.CLOSED
    assert threat.disposition == Disposition.FALSE_POSITIVE
    assert threat.disposition_reason == "Known scanner"
    assert threat.closed_at is not None and threat.acknowledged_at is not None
    assert threat.closed_by_kind == "human" and threat.closed_by.username == "alice"
    [event] = updated_events(threat)
    assert event.actor_label == "alice"
    assert event.payload["changes"]["status"] == {"from": "new", "to": "closed"}
    assert event.payload["changes"]["disposition"] == {"from": "", "to": "false_positive"}


@pytest.mark.parametrize("body,field", [
    ({"status": "resolved"}, "disposition"),
    ({"status": "resolved", "reason": "done"}, "disposition"),
    ({"status": "closed", "disposition": "true_positive"}, "reason"),
    ({"status": "closed", "disposition": "true_positive", "reason": "   "}, "reason"),
])
def test_it_refuses_to_close_without_disposition_and_reason(alice_client, threat, body, field):
    result = json_error(patch(alice_client, threat, body), 400)

    assert result["field"] == field
    threat.refresh_from_db()
    assert threat.status == Status.NEW and threat.closed_at is None
    assert updated_events(threat) == []


def test_it_refuses_a_disposition_without_closing(alice_client, threat):
    result = json_error(patch(alice_client, threat, {"disposition": "true_positive", "reason": "sure"}), 400)

    assert result["field"] == "disposition"
    threat.refresh_from_db()
    assert threat.disposition == ""
    assert updated_events(threat) == []


def test_it_refuses_an_unknown_status_or_disposition(alice_client, threat):
    result = json_error(patch(alice_client, threat, {"status": "done"}), 400)
    assert result["field"] == "status" and result["valid"] == Status.values
    result = json_error(patch(alice_client, threat, {"status": "closed", "disposition": "meh", "reason": "x"}), 400)
    assert result["field"] == "disposition" and result["valid"] == Disposition.values
    assert updated_events(threat) == []


def test_it_refuses_an_empty_change(alice_client, threat):
    json_error(patch(alice_client, threat, {}), 400)
    assert updated_events(threat) == []


def test_it_reopens_a_closed_threat_and_clears_closed_at(alice_client, threat):
    patch(alice_client, threat, {"status": "resolved", "disposition": "true_positive", "reason": "Blocked"})
    threat.refresh_from_db()
    assert threat.closed_at is not None

    response = patch(alice_client, threat, {"status": "investigating"})

    assert response.status_code == 200, response.content
    assert response.json()["closed_at"] is None
    threat.refresh_from_db()
    assert threat.status == Status.INVESTIGATING
    assert threat.closed_at is None
    assert threat.closed_by_kind == "" and threat.disposition == "" and threat.closed_by is None
    assert threat.acknowledged_at is not None
    events = updated_events(threat)
    assert len(events) == 2
    assert events[-1].payload["changes"]["status"] == {"from": "resolved", "to": "investigating"}


def test_it_answers_404_json_when_patching_an_absent_threat(alice_client, threat):
    response = send(alice_client, "patch", "/api/threats/00000000-0000-4000-8000-000000000000",
                    {"status": "acknowledged"})
    json_error(response, 404)


def test_it_rejects_malformed_json_on_patch(alice_client, threat):
    response = alice_client.patch(f"/api/threats/{threat.pk}", "{oops", content_type=JSON)
    assert 400 <= response.status_code < 500
    json_error(response, response.status_code)
    assert updated_events(threat) == []


# --- POST /api/threats/{id}/notes -----------------------------------------------------------------


def note(client, threat, body):
    return send(client, "post", f"/api/threats/{threat.pk}/notes", body)


def test_it_adds_a_note(alice_client, alice, threat):
    response = note(alice_client, threat, {"body": "  Called the customer; it is their pentest.  "})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["author"] == "alice"
    assert body["body"] == "Called the customer; it is their pentest."
    assert body["threat_id"] == str(threat.pk)
    stored = Note.objects.get(pk=body["id"])
    assert (stored.threat_id, stored.author, stored.body) == (threat.pk, alice, body["body"])
    event = ThreatEvent.objects.get(threat=threat, type="threat.note_added")
    assert event.actor_label == "alice"
    assert event.payload["note"]["id"] == stored.pk


@pytest.mark.parametrize("text", ["", "   \n\t"], ids=["empty", "blank"])
def test_it_refuses_an_empty_note(alice_client, threat, text):
    result = json_error(note(alice_client, threat, {"body": text}), 400)

    assert result["field"] == "body"
    assert not Note.objects.exists()


def test_it_refuses_a_note_without_a_body_field(alice_client, threat):
    response = note(alice_client, threat, {})
    assert 400 <= response.status_code < 500
    json_error(response, response.status_code)
    assert not Note.objects.exists()


def test_it_refuses_a_note_that_is_too_long(alice_client, threat):
    response = note(alice_client, threat, {"body": "x" * 10_001})

    assert 400 <= response.status_code < 500
    json_error(response, response.status_code)
    assert not Note.objects.exists()


def test_it_refuses_an_oversized_note_body_with_a_4xx(alice_client, threat):
    response = note(alice_client, threat, {"body": "x" * 3_000_000})

    assert 400 <= response.status_code < 500
    json_error(response, response.status_code)


def test_it_answers_404_json_for_a_note_on_an_absent_threat(alice_client, threat):
    response = send(alice_client, "post", "/api/threats/00000000-0000-4000-8000-000000000000/notes", {"body": "x"})
    json_error(response, 404)
    assert not Note.objects.exists()


# --- GET /api/analytics ---------------------------------------------------------------------------


def test_it_counts_threats_by_type_severity_and_status(alice_client, customer):
    other = factories.make_customer()
    a = quick_threat(customer, minutes_ago=3, threat_type="bot_traffic")
    b = quick_threat(customer, minutes_ago=2, threat_type="bot_traffic")
    c = quick_threat(other, minutes_ago=1, threat_type="geo_anomaly")
    Threat.objects.filter(pk=a.pk).update(severity="CRITICAL", requires_human_review=True, processing_ms=10)
    Threat.objects.filter(pk=b.pk).update(severity="LOW", requires_human_review=True, status="closed",
                                          processing_ms=20)
    Threat.objects.filter(pk=c.pk).update(severity="LOW", status="acknowledged", processing_ms=30)

    body = alice_client.get("/api/analytics").json()

    assert body["total_threats"] == 3
    assert body["customers_affected"] == 2
    assert body["by_type"] == {"bot_traffic": 2, "geo_anomaly": 1}
    assert body["by_severity"] == {"LOW": 2, "MEDIUM": 0, "HIGH": 0, "CRITICAL": 1}
    assert body["by_status"] == {"new": 1, "acknowledged": 1, "investigating": 0, "escalated": 0,
                                 "resolved": 0, "closed": 1}
    assert body["open_by_severity"] == {"LOW": 1, "MEDIUM": 0, "HIGH": 0, "CRITICAL": 1}
    assert body["requires_review"] == 1  # the closed one no longer needs a human
    assert body["average_processing_ms"] == 20.0
    assert body["latest_seq"] == ThreatEvent.objects.order_by("-seq").first().seq


def test_it_reports_empty_analytics(alice_client):
    body = alice_client.get("/api/analytics").json()

    assert body["total_threats"] == 0 and body["customers_affected"] == 0
    assert body["by_type"] == {}
    assert set(body["by_severity"].values()) == {0}
    assert body["mtta_seconds"] is None and body["mttr_seconds"] is None


def test_it_computes_mtta_and_mttr_after_triage(alice_client, customer):
    ten = quick_threat(customer, minutes_ago=10)
    twenty = quick_threat(customer, minutes_ago=20)
    before = alice_client.get("/api/analytics").json()
    assert before["mtta_seconds"] is None and before["mttr_seconds"] is None

    patch(alice_client, ten, {"status": "acknowledged"})
    patch(alice_client, twenty, {"status": "acknowledged"})
    patch(alice_client, twenty, {"status": "resolved", "disposition": "true_positive", "reason": "Blocked"})
    body = alice_client.get("/api/analytics").json()

    ten.refresh_from_db(), twenty.refresh_from_db()
    acks = [(t.acknowledged_at - t.received_at).total_seconds() for t in (ten, twenty)]
    resolution = (twenty.closed_at - twenty.received_at).total_seconds()
    assert body["mtta_seconds"] == pytest.approx(sum(acks) / 2, abs=0.1)
    assert 890 < body["mtta_seconds"] < 960  # about 15 minutes
    assert body["mttr_seconds"] == pytest.approx(resolution, abs=0.1)
    assert 1190 < body["mttr_seconds"] < 1260  # about 20 minutes


# --- GET /api/events ------------------------------------------------------------------------------


def test_it_lists_events_oldest_first(alice_client, threat):
    patch(alice_client, threat, {"status": "acknowledged"})
    stored = list(ThreatEvent.objects.order_by("seq"))

    body = alice_client.get("/api/events").json()

    assert [e["seq"] for e in body["events"]] == [e.seq for e in stored]
    assert [e["type"] for e in body["events"]] == ["threat.created", "threat.analyzed", "threat.updated"]
    assert body["events"][-1]["actor"] == "alice"
    assert body["events"][-1]["threat"]["id"] == str(threat.pk)
    assert body["latest_seq"] == stored[-1].seq


def test_it_lists_only_events_after_the_given_seq(alice_client, threat):
    patch(alice_client, threat, {"status": "acknowledged"})
    seqs = list(ThreatEvent.objects.order_by("seq").values_list("seq", flat=True))

    body = alice_client.get("/api/events", {"after": seqs[0]}).json()

    assert [e["seq"] for e in body["events"]] == seqs[1:]
    assert alice_client.get("/api/events", {"after": seqs[-1]}).json()["events"] == []


def test_it_bounds_events_by_limit(alice_client, threat):
    patch(alice_client, threat, {"status": "acknowledged"})
    seqs = list(ThreatEvent.objects.order_by("seq").values_list("seq", flat=True))

    body = alice_client.get("/api/events", {"limit": 2}).json()

    assert [e["seq"] for e in body["events"]] == seqs[:2]
    assert body["latest_seq"] == seqs[-1]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"after": -1}, {"after": "x"}])
def test_it_rejects_out_of_bounds_event_parameters(alice_client, params):
    assert json_error(alice_client.get("/api/events", params), 400)["field"] == next(iter(params))


# --- Documentation and error shape ----------------------------------------------------------------


def test_it_serves_the_openapi_document(client):
    response = client.get("/api/openapi.json")

    assert response.status_code == 200
    assert response["Content-Type"].startswith(JSON)
    paths = response.json()["paths"]
    for path in ("/api/threats", "/api/threats/{threat_id}", "/api/threats/trigger",
                 "/api/threats/{threat_id}/notes", "/api/analytics", "/api/events"):
        assert path in paths
    assert {"get", "patch"} <= set(paths["/api/threats/{threat_id}"])


def test_it_serves_the_docs_without_any_cdn(client):
    response = client.get("/api/docs")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "/api/openapi.json" in html
    for cdn in ("cdn.", "unpkg", "jsdelivr"):
        assert cdn not in html


def test_it_answers_an_unknown_api_path_with_json_404(alice_client):
    json_error(alice_client.get("/api/no-such-endpoint"), 404)


@pytest.mark.parametrize("method,path", [("delete", "/api/threats/{id}"), ("get", "/api/threats/trigger")])
def test_it_answers_an_unsupported_method_with_json_405(alice_client, threat, method, path):
    json_error(getattr(alice_client, method)(path.format(id=threat.pk)), 405)
