"""Idempotent ingest is per customer (issue 18, item 1; ARCHITECTURE: `source_ref` is "unique per
customer and source ... never matched across customers"): an alert id that another customer used
is neither a duplicate nor a way to learn, or suppress, that customer's threat. Through
POST /api/ingest/{format} with two customers' keys, through `manage.py import_alerts`, and on the
careful alert-by-alert path."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.test import TestCase

from tests import factories
from threats import apikeys, ingest
from threats.importers import generic
from threats.models import Threat

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).parent / "fixtures" / "alerts"


@pytest.fixture
def acme(db):
    return factories.make_customer(name="Acme Corp", slug="acme-corp")


@pytest.fixture
def globex(db):
    return factories.make_customer(name="Globex", slug="globex")


@pytest.fixture
def keys(acme, globex):
    """An ingest key for each customer."""
    return {slug: apikeys.issue(f"{slug} shipper", ["ingest"], customer=customer)[1]
            for slug, customer in (("acme", acme), ("globex", globex))}


def post(client, fmt, items, api_key):
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(f"/api/ingest/{fmt}", json.dumps(items), content_type="application/json",
                               HTTP_X_API_KEY=api_key)
    assert response.status_code == 202, response.content
    return response.json()["items"]


def generic_alert(ref, title="VPN login from a new country"):
    return {"id": ref, "title": title, "occurred_at": "2026-11-20T10:00:00Z", "rule": "vpn", "host": "gw"}


def wazuh_alert(manager="wazuh-manager-1", alert_id="1795162502.1047261"):
    """The first sample Wazuh alert without its customer label (the key decides the customer)."""
    alert = json.loads((FIXTURES / "wazuh_alerts.ndjson").read_text(encoding="utf-8").splitlines()[0])
    del alert["agent"]["labels"]
    return {**alert, "manager": {"name": manager}, "id": alert_id}


def test_an_id_another_customer_used_is_created_and_never_answers_their_threat_id(client, keys, acme, globex):
    theirs = post(client, "generic", [generic_alert("shared-1")], keys["globex"])[0]
    mine = post(client, "generic", [generic_alert("shared-1")], keys["acme"])[0]
    assert (mine["status"], mine["duplicate"]) == ("created", False)
    assert mine["id"] != theirs["id"]
    assert Threat.objects.get(pk=mine["id"]).customer == acme
    assert Threat.objects.get(pk=theirs["id"]).customer == globex


def test_posting_an_id_first_never_suppresses_the_other_customers_alert(client, keys, globex):
    post(client, "generic", [generic_alert("INC-42", title="decoy")], keys["acme"])
    real = post(client, "generic", [generic_alert("INC-42", title="Ransomware note on fs-01")], keys["globex"])[0]
    assert real["status"] == "created" and real["analysis_status"] == "queued"
    assert Threat.objects.get(customer=globex, source_ref="INC-42").title == "Ransomware note on fs-01"


def test_a_wazuh_manager_and_alert_id_are_matched_within_one_customer_only(client, keys, acme, globex):
    first = post(client, "wazuh", [wazuh_alert()], keys["acme"])[0]
    other = post(client, "wazuh", [wazuh_alert()], keys["globex"])[0]
    again = post(client, "wazuh", [wazuh_alert()], keys["acme"])[0]
    assert (first["status"], other["status"]) == ("created", "created") and first["id"] != other["id"]
    assert (again["status"], again["duplicate"], again["id"]) == ("duplicate", True, first["id"])
    ref = "wazuh-manager-1:1795162502.1047261"
    assert sorted(Threat.objects.filter(source_ref=ref).values_list("customer__slug", flat=True)) == [
        "acme-corp", "globex"]


def test_reposting_within_a_customer_is_still_a_duplicate_with_the_same_id(client, keys):
    first = post(client, "generic", [generic_alert("a-1"), generic_alert("a-2")], keys["acme"])
    again = post(client, "generic", [generic_alert("a-2"), generic_alert("a-1")], keys["acme"])
    assert [(i["status"], i["id"]) for i in again] == [("duplicate", first[1]["id"]), ("duplicate", first[0]["id"])]
    assert Threat.objects.count() == 2


def test_one_unbound_batch_naming_two_customers_stores_the_same_id_once_for_each(client, acme, globex):
    mssp = apikeys.issue("mssp shipper", ["ingest"])[1]
    items = [{**generic_alert("x-1"), "customer": slug} for slug in ("acme-corp", "globex", "acme-corp")]
    answers = post(client, "generic", items, mssp)
    assert [i["status"] for i in answers] == ["created", "created", "duplicate"]
    assert answers[2]["id"] == answers[0]["id"] != answers[1]["id"]


def test_import_alerts_for_one_customer_never_meets_another_customers_alerts(acme, globex, tmp_path):
    path = tmp_path / "alerts.ndjson"
    path.write_text("".join(json.dumps(generic_alert(ref)) + "\n" for ref in ("imp-1", "imp-2")))
    for customer in ("globex", "acme-corp", "acme-corp"):
        with TestCase.captureOnCommitCallbacks(execute=True):
            call_command("import_alerts", str(path), "--format", "generic", "--customer", customer,
                         stdout=StringIO(), stderr=StringIO())
    assert Threat.objects.filter(customer=acme).count() == 2 and Threat.objects.filter(customer=globex).count() == 2


def test_the_careful_path_answers_only_the_same_customers_stored_row(acme, globex):
    """The alert-by-alert retry after an IntegrityError looks the stored row up by customer too:
    another customer's row with the same id is not the one the insert met."""
    ours = factories.make_threat(customer=acme, analyse=False, source="generic", source_ref="a-1")
    factories.make_threat(customer=globex, analyse=False, source="generic", source_ref="a-1")  # the newest
    mapped = [(ingest.Record(0), generic.parse(generic_alert("a-1")), acme, [])]
    batch, results = ingest._Batch("generic", ingest.services.SYSTEM), {}
    with pytest.raises(IntegrityError), transaction.atomic():
        batch._store(mapped, results, known={}, one_by_one=False)  # as if looked up before ours was stored
    batch._store(mapped, results, known={}, one_by_one=True)
    assert (results[0].status, results[0].id) == ("duplicate", str(ours.pk))


def test_the_database_allows_one_id_per_customer_and_source():
    """The constraint itself (migration 0010), on SQLite and PostgreSQL."""
    acme, globex = factories.make_customer(), factories.make_customer()
    for customer in (acme, globex):
        factories.make_threat(customer=customer, analyse=False, source="generic", source_ref="same")
    factories.make_threat(customer=acme, analyse=False, source="ecs", source_ref="same")
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.make_threat(customer=acme, analyse=False, source="generic", source_ref="same")
