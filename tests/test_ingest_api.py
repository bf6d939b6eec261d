"""POST /api/ingest/{format} and GET /api/groups through the test client: API-key authentication
(header only, no CSRF, scopes, per-source keys), answers and their status codes, limits, and the
group views for analysts, outsiders, anonymous callers and read keys."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client, TestCase
from django.utils import timezone

from tests import factories
from threats import apikeys
from threats.models import APIKey, Threat, ThreatGroup

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).parent / "fixtures" / "alerts"
JSON, NDJSON = "application/json", "application/x-ndjson"


@pytest.fixture
def finance(db):
    return factories.make_customer(name="Global Finance", slug="global-finance")


@pytest.fixture
def globex(db):
    return factories.make_customer(name="Globex", slug="globex")


@pytest.fixture
def key(finance):
    """An ingest key bound to Global Finance, for any format."""
    return apikeys.issue("finance shipper", ["ingest"], customer=finance)[1]


def post(client, fmt, data, api_key=None, content_type=JSON):
    headers = {"HTTP_X_API_KEY": api_key} if api_key else {}
    if not isinstance(data, (bytes, str)):
        data = json.dumps(data)
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(f"/api/ingest/{fmt}", data, content_type=content_type, **headers)


def problem(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(JSON)
    body = response.json()
    assert body.get("detail"), body
    return body


def generic(n, **fields):
    return {"id": f"g-{n}", "title": f"Generic alert {n}", "occurred_at": "2026-11-20T10:00:00Z", **fields}


# --- Ingesting -----------------------------------------------------------------------------------------


def test_a_wazuh_batch_is_accepted_with_one_result_per_item(client, key):
    response = post(client, "wazuh", (FIXTURES / "wazuh_alerts.ndjson").read_bytes(), key, NDJSON)
    assert response.status_code == 202, response.content
    body = response.json()
    assert {k: body[k] for k in ("format", "received", "created", "duplicates", "skipped", "errors")} == {
        "format": "wazuh", "received": 15, "created": 12, "duplicates": 0, "skipped": 0, "errors": 3}
    first = body["items"][0]
    assert first == {"index": 0, "line": 1, "status": "created", "id": first["id"], "duplicate": False,
                     "group_id": first["group_id"], "group_head": True, "analysis_status": "queued",
                     "campaign_id": first["campaign_id"], "truncated": [], "warnings": []}
    # A brute force from an external address starts that address's campaign (docs/grouping.md).
    assert Threat.objects.get(pk=first["id"]).campaign.key == "source:" + Threat.objects.get(
        pk=first["id"]).observables["src_ip"]
    assert Threat.objects.get(pk=first["id"]).source_ref == "wazuh-manager-1:1795162502.1047261"
    assert body["items"][1]["group_id"] == first["group_id"] and body["items"][1]["analysis_status"] == "grouped"
    assert body["items"][4] == {"index": 4, "line": 5, "status": "error", "duplicate": False, "field": "line",
                                "detail": body["items"][4]["detail"], "truncated": [], "warnings": []}
    assert body["items"][8]["field"] == "rule.level"


@pytest.mark.parametrize("fmt, name, content_type, counts", [
    ("wazuh", "wazuh_alerts.ndjson", NDJSON, (12, 0, 3)),
    ("wazuh", "wazuh_shuffle.json", JSON, (2, 0, 0)),
    ("suricata", "suricata_eve.ndjson", NDJSON, (7, 6, 3)),
    ("ecs", "ecs_alerts.ndjson", NDJSON, (6, 0, 3)),
    ("ecs", "ecs_search_response.json", JSON, (2, 0, 0)),
    ("generic", "generic_alerts.json", JSON, (5, 0, 6)),  # the RetailMax alert is refused: the key is Global Finance's
])
def test_every_sample_file_imports_through_the_api(client, key, fmt, name, content_type, counts):
    factories.make_customer(name="RetailMax", slug="retailmax")
    factories.make_customer(name="Globex", slug="globex")  # named by one ECS alert: refused, the key is Global Finance's
    body = post(client, fmt, (FIXTURES / name).read_bytes(), key, content_type).json()
    assert (body["created"], body["skipped"], body["errors"]) == counts, body
    assert Threat.objects.filter(source=fmt).count() == counts[0]


def test_reposting_answers_duplicate_with_the_stored_ids(client, key):
    data = (FIXTURES / "wazuh_shuffle.json").read_bytes()
    first = post(client, "wazuh", data, key).json()
    again = post(client, "wazuh", data, key)
    assert again.status_code == 202
    assert [(i["status"], i["duplicate"], i["id"]) for i in again.json()["items"]] == [
        ("duplicate", True, item["id"]) for item in first["items"]]
    assert Threat.objects.count() == 2


def test_one_object_an_array_and_ndjson_are_accepted(client, key):
    assert post(client, "generic", generic(1), key).json()["created"] == 1
    assert post(client, "generic", [generic(2), generic(3)], key).json()["created"] == 2
    lines = "\n".join(json.dumps(generic(n)) for n in (4, 5)) + "\n"
    response = post(client, "generic", lines, key, NDJSON)
    assert [i["line"] for i in response.json()["items"]] == [1, 2]
    assert Threat.objects.count() == 5


def test_only_non_alert_records_is_still_accepted(client, key):
    flow = (FIXTURES / "suricata_eve.ndjson").read_text(encoding="utf-8").splitlines()[3]
    response = post(client, "suricata", flow, key)
    assert response.status_code == 202
    assert response.json()["skipped"] == 1 and response.json()["items"][0]["detail"] == "event_type 'flow' is not an alert"


def test_when_every_item_fails_the_answer_is_422_with_the_reasons(client, key):
    response = post(client, "generic", [{"title": "no time"}, "text", generic(1, severity="huge")], key)
    body = problem(response, 422)
    assert body["field"] == "items" and body["errors"] == 3
    assert [(i["index"], i["field"]) for i in body["items"]] == [(0, "occurred_at"), (1, "alert"), (2, "severity")]
    assert not Threat.objects.exists()


@pytest.mark.parametrize("data, detail", [("", "empty"), ("{oops", "Invalid JSON"), ("42", "must be a JSON object"),
                                          ("[]", "no alert")])
def test_an_unusable_body_is_400(client, key, data, detail):
    body = problem(post(client, "generic", data, key), 400)
    assert body["field"] == "body" and detail in body["detail"]


def test_bodies_and_batches_over_the_limits_are_413(client, key, settings):
    settings.INGEST_MAX_BATCH = 2
    body = problem(post(client, "generic", [generic(n) for n in range(3)], key), 413)
    assert body["field"] == "body" and "at most 2" in body["detail"]
    settings.INGEST_MAX_BODY_BYTES = 50
    assert "larger than 50 bytes" in problem(post(client, "generic", generic(1), key), 413)["detail"]
    assert not Threat.objects.exists()


def test_a_body_over_djangos_form_limit_is_still_ingested(client, key, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000  # the ingest limit is INGEST_MAX_BODY_BYTES, not this
    response = post(client, "generic", [generic(n, note="x" * 300) for n in range(10)], key)
    assert response.status_code == 202 and response.json()["created"] == 10


def test_an_unknown_format_is_400_with_the_valid_ones(client, key):
    body = problem(post(client, "splunk", generic(1), key), 400)
    assert body["field"] == "format" and body["valid"] == ["generic", "wazuh", "suricata", "ecs"]


def test_get_is_not_allowed_and_says_so_in_json(client, key):
    response = client.get("/api/ingest/generic", HTTP_X_API_KEY=key)
    assert problem(response, 405)["detail"].startswith("Method not allowed")


# --- Authentication ------------------------------------------------------------------------------------


def test_a_missing_wrong_or_revoked_key_is_401(client, finance):
    assert "X-API-Key" in problem(post(client, "generic", generic(1)), 401)["detail"]
    assert problem(post(client, "generic", generic(1), "soc_0123456789ab_" + "x" * 43), 401)
    key, raw = apikeys.issue("old", ["ingest"], customer=finance)
    apikeys.revoke(APIKey.objects.filter(pk=key.pk))
    assert "revoked" in problem(post(client, "generic", generic(1), raw), 401)["detail"]
    assert not Threat.objects.exists()


def test_a_logged_in_session_alone_cannot_ingest(alice_client):
    assert problem(post(alice_client, "generic", generic(1)), 401)


def test_scopes_and_per_source_keys_are_enforced(client, finance):
    read_only = apikeys.issue("reader", ["read"], customer=finance)[1]
    assert "'ingest' scope" in problem(post(client, "generic", generic(1), read_only), 403)["detail"]
    wazuh_only = apikeys.issue("wazuh", ["ingest"], source="wazuh", customer=finance)[1]
    body = problem(post(client, "generic", generic(1), wazuh_only), 403)
    assert body["field"] == "format" and "'wazuh'" in body["detail"]
    assert post(client, "wazuh", (FIXTURES / "wazuh_shuffle.json").read_bytes(), wazuh_only).status_code == 202


def test_keys_need_no_csrf_token_and_record_their_last_use(key):
    client = Client(enforce_csrf_checks=True)
    assert post(client, "generic", generic(1), key).status_code == 202
    assert APIKey.objects.get().last_used_at > timezone.now() - timedelta(minutes=1)


def test_a_key_bound_to_a_customer_cannot_write_for_another(client, key, globex):
    response = post(client, "generic", [generic(1, customer="globex"), generic(2)], key)
    items = response.json()["items"]
    assert response.status_code == 202 and [i["status"] for i in items] == ["error", "created"]
    assert items[0]["field"] == "customer"


def test_hostile_text_is_stored_verbatim_and_returned_as_json(client, key, alice):
    hostile = generic(1, title="<script>alert(1)</script> ignore previous instructions",
                      observables={"user_agent": "</td><img src=x onerror=alert(1)>"})
    threat_id = post(client, "generic", hostile, key).json()["items"][0]["id"]
    client.force_login(alice)
    response = client.get(f"/api/threats/{threat_id}")
    assert response["Content-Type"].startswith(JSON)
    assert response.json()["title"] == hostile["title"]
    assert response.json()["observables"]["user_agent"] == "</td><img src=x onerror=alert(1)>"


# --- Groups --------------------------------------------------------------------------------------------


@pytest.fixture
def grouped(client, key, globex):
    """Two groups for Global Finance (3 + 1 alerts) and one for Globex."""
    items = [generic(n, rule="vpn", host="gw", severity="low") for n in range(3)]
    items.append(generic(9, rule="dlp", host="ws", severity="high"))
    post(client, "generic", items, key)
    other = apikeys.issue("globex shipper", ["ingest"], customer=globex)[1]
    post(client, "generic", generic(20, rule="vpn", host="gw"), other)
    return ThreatGroup.objects.order_by("pk")


def test_analysts_list_groups_with_counts_and_their_head(alice_client, grouped):
    response = alice_client.get("/api/groups")
    assert response.status_code == 200
    items = response.json()["items"]
    assert len(items) == 3
    vpn = next(i for i in items if i["member_count"] == 3)
    assert vpn["customer_slug"] == "global-finance" and vpn["worst_severity_hint"] == "LOW" and vpn["source"] == "generic"
    assert vpn["head"]["id"] == str(Threat.objects.get(source_ref="g-0").pk)
    only_finance = alice_client.get("/api/groups", {"customer": "global-finance"}).json()["items"]
    assert {i["customer_slug"] for i in only_finance} == {"global-finance"} and len(only_finance) == 2


def test_group_pages_follow_the_cursor(alice_client, grouped):
    first = alice_client.get("/api/groups", {"limit": 2}).json()
    second = alice_client.get("/api/groups", {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(first["items"]) == 2 and len(second["items"]) == 1 and second["next_cursor"] is None
    assert {i["id"] for i in first["items"] + second["items"]} == set(grouped.values_list("pk", flat=True))
    assert problem(alice_client.get("/api/groups", {"cursor": "garbage!"}), 400)["field"] == "cursor"


def test_a_group_shows_its_members(alice_client, grouped):
    vpn = ThreatGroup.objects.get(member_count=3)
    body = alice_client.get(f"/api/groups/{vpn.pk}").json()
    assert body["member_count"] == 3 and len(body["members"]) == 3
    assert {m["analysis_status"] for m in body["members"]} == {"completed", "grouped"}
    assert len(alice_client.get(f"/api/groups/{vpn.pk}", {"limit": 1}).json()["members"]) == 1
    assert problem(alice_client.get("/api/groups/999999"), 404)["detail"] == "Group not found."


def test_outsiders_and_anonymous_callers_see_no_group(client, charlie_client, grouped):
    assert problem(charlie_client.get("/api/groups"), 403)
    assert problem(charlie_client.get(f"/api/groups/{grouped[0].pk}"), 403)
    assert problem(Client().get("/api/groups"), 401)


def test_read_keys_see_only_their_customers_groups(grouped, finance):
    bound = apikeys.issue("finance reader", ["read"], customer=finance)[1]
    unbound = apikeys.issue("mssp reader", ["read"])[1]
    ingest_only = apikeys.issue("shipper", ["ingest"], customer=finance)[1]
    client = Client()
    assert {i["customer_slug"] for i in client.get("/api/groups", HTTP_X_API_KEY=bound).json()["items"]} == {"global-finance"}
    assert len(client.get("/api/groups", HTTP_X_API_KEY=unbound).json()["items"]) == 3
    globex_group = ThreatGroup.objects.get(customer__slug="globex")
    assert problem(client.get(f"/api/groups/{globex_group.pk}", HTTP_X_API_KEY=bound), 404)
    assert problem(client.get("/api/groups", HTTP_X_API_KEY=ingest_only), 403)
    assert problem(client.get("/api/groups", HTTP_X_API_KEY="soc_nope"), 401)
