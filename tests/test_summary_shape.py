"""The threat summary has one shape (serializers.summary): the API's documented schema, the list's
items, every event's threat and the fields the browser's rows read (static/js/rows.js, list.js,
which cannot import Python) all agree, so none can drift. Bulk triage refuses with the single
triage's errors (services.check_triage)."""

import json
import re
from pathlib import Path

import pytest

from tests import factories
from threats.api import GroupHead, ThreatSummary
from threats.models import ThreatEvent
from threats.serializers import head_verdict, threat_summary

pytestmark = pytest.mark.django_db
STATIC_JS = Path(__file__).resolve().parents[1] / "static" / "js"


def summary_keys(customer):
    return list(threat_summary(factories.make_threat(customer=customer, analyse=False)))


def fields_read(script, variable):
    """The property names `script` reads from `variable` (t.severity, t.group_head.severity → both)."""
    source = (STATIC_JS / script).read_text(encoding="utf-8")
    return set(re.findall(rf"\b{re.escape(variable)}\.([A-Za-z_]\w*)", source))


def test_the_documented_schema_has_exactly_the_summary_fields_in_order(customer):
    assert list(ThreatSummary.model_fields) == summary_keys(customer)


def test_the_list_items_and_the_event_payloads_have_the_summary_fields(alice_client, customer):
    keys = summary_keys(customer)

    item = alice_client.get("/api/threats?limit=1").json()["items"][0]
    event = ThreatEvent.objects.filter(type="threat.created").latest("seq")

    assert list(item) == keys
    assert sorted(event.payload["threat"]) == sorted(keys)  # stored as JSONB on PostgreSQL: key order not kept


def test_the_rows_the_browser_draws_read_only_fields_the_summary_has(customer):
    keys = set(summary_keys(customer))

    for script in ("rows.js", "list.js"):
        read = fields_read(script, "t") | fields_read(script, "message.threat")
        assert read, f"{script} reads no summary field: has the variable been renamed?"
        assert read <= keys, f"{script} reads {sorted(read - keys)}, which the threat summary does not have"


def test_the_group_head_fields_rows_js_reads_are_the_documented_ones():
    documented = set(GroupHead.model_fields)

    assert set(head_verdict("x", "HIGH", 70, "completed")) == documented
    assert fields_read("rows.js", "head") <= documented
    assert fields_read("list.js", "t.group_head") <= documented


BAD_CHANGES = [
    {"status": "done"},
    {"status": "closed", "disposition": "maybe", "reason": "x"},
    {"status": "closed", "reason": "x"},
    {"status": "closed", "disposition": "false_positive"},
    {"status": "closed", "disposition": "false_positive", "reason": "   "},
    {},
]


@pytest.mark.parametrize("change", BAD_CHANGES)
def test_bulk_triage_refuses_with_the_same_error_as_triage_of_one_threat(alice_client, customer, change):
    threat = factories.make_threat(customer=customer, analyse=False)

    one = alice_client.patch(f"/api/threats/{threat.pk}", json.dumps(change), content_type="application/json")
    bulk = alice_client.post("/api/threats/bulk", json.dumps({"ids": [str(threat.pk)], **change}),
                             content_type="application/json")

    assert one.status_code == bulk.status_code == 400
    assert one.json() == bulk.json()
