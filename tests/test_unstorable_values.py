"""Values Python reads but the database or the calendar cannot hold (issue 18, item 5): NaN and
Infinity, integers longer than Python converts, dates at the edges of the calendar. In an alert
each is an error of that item, with its index and field, and the batch's other items are stored;
in a page cursor it is a 400 naming the cursor. Never a 500 (which used to drop the whole batch).
On SQLite and PostgreSQL (CI runs both). The property-based version is test_ingest_property.py."""

import base64
import json
import uuid

import pytest
from django.test import Client, TestCase

from tests import factories
from threats import apikeys
from threats.models import Threat, ThreatGroup

pytestmark = pytest.mark.django_db
VALID = '{"id": "ok", "title": "Valid sibling", "occurred_at": "2026-11-20T10:00:00Z"}'
HUGE = "9" * 4_301  # one digit past Python's int conversion limit


@pytest.fixture
def key(db):
    return apikeys.issue("acme shipper", ["ingest"], customer=factories.make_customer(slug="acme"))[1]


def post(key, body, content_type="application/json"):
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().post("/api/ingest/generic", body, content_type=content_type, HTTP_X_API_KEY=key)
    assert response.status_code == 202, response.content
    return response.json()["items"]


def alert(field_text, occurred_at='"2026-11-20T10:00:00Z"'):
    """A generic alert whose `extra` field (or time) is the given JSON text, unparsed."""
    return f'{{"id": "bad", "title": "Odd value", "occurred_at": {occurred_at}, "extra": {{"n": [{field_text}]}}}}'


@pytest.mark.parametrize("literal, reason", [
    ("NaN", "NaN is not a JSON number."),
    ("Infinity", "Infinity is not a JSON number."),
    ("-Infinity", "-Infinity is not a JSON number."),
    ("1e400", "The number is beyond the range of a 64-bit float."),
    (HUGE, "An integer of 4301 digits; at most 4300."),
    ("-" + HUGE, "An integer of 4301 digits; at most 4300."),
])
def test_an_unstorable_number_is_an_error_of_its_item_with_the_path(key, literal, reason):
    items = post(key, f"[{alert(literal)}, {VALID}]")
    assert items[0] == {"index": 0, "status": "error", "duplicate": False, "field": "extra.n[0]", "detail": reason,
                        "truncated": [], "warnings": []}
    assert items[1]["status"] == "created" and Threat.objects.get(pk=items[1]["id"]).title == "Valid sibling"


@pytest.mark.parametrize("occurred_at", [
    '"0001-01-01T00:00:00+05:00"',  # no UTC value: the year before year 1
    '"9999-12-31T23:59:59-05:00"',  # no UTC value: year 10000
    '"0001-01-01T00:00:00Z"',  # the grouping window subtracts an hour from it
    '"9999-12-31T23:59:59Z"',
    '"1969-12-31T23:59:59Z"',
    '"2100-01-01T00:00:00Z"',
    "-62135596801",  # epoch before year 1
    "253402300800000",  # epoch milliseconds after year 9999
    "1e300",
    HUGE,
    "9" * 400,  # an integer too large to divide as a float
])
def test_a_time_at_the_calendars_edges_is_an_error_of_its_item(key, occurred_at):
    items = post(key, f"[{alert('1', occurred_at)}, {VALID}]")
    assert (items[0]["status"], items[0]["index"]) == ("error", 0)
    assert items[0]["field"] == "occurred_at" and items[0]["detail"]
    assert items[1]["status"] == "created"


def test_the_accepted_times_run_from_1970_to_2099(key):
    first = '{"id": "first", "title": "Epoch zero", "occurred_at": 0}'
    last = '{"id": "last", "title": "Last moment", "occurred_at": "2099-12-31T23:59:59.999999+00:00"}'
    assert [i["status"] for i in post(key, f"[{first}, {last}]")] == ["created", "created"]


def test_ndjson_lines_with_unstorable_values_fail_alone(key):
    lines = "\n".join([alert("NaN"), VALID, alert("1", '"9999-12-31T23:59:59-05:00"'), alert(HUGE)]) + "\n"
    items = post(key, lines, "application/x-ndjson")
    assert [(i["status"], i.get("line"), i.get("field")) for i in items] == [
        ("error", 1, "extra.n[0]"), ("created", 2, None), ("error", 3, "occurred_at"), ("error", 4, "extra.n[0]")]


def test_a_batch_of_only_unstorable_items_is_422_not_500(key):
    response = Client().post("/api/ingest/generic", f"[{alert('NaN')}, {alert(HUGE)}]",
                             content_type="application/json", HTTP_X_API_KEY=key)
    assert response.status_code == 422 and response.json()["errors"] == 2


def test_import_alerts_reads_the_same_values_as_item_errors(tmp_path, capsys):
    from django.core.management import CommandError, call_command

    factories.make_customer(slug="globex")
    path = tmp_path / "alerts.json"
    path.write_text(f"[\n{alert(HUGE)},\n{VALID}\n]\n")
    with pytest.raises(CommandError), TestCase.captureOnCommitCallbacks(execute=True):
        call_command("import_alerts", str(path), "--format", "generic", "--customer", "globex")
    assert "error at item 0: extra.n[0]: An integer of 4301 digits" in capsys.readouterr().out
    assert Threat.objects.filter(source_ref="ok").exists()


# --- Page cursors ----------------------------------------------------------------------------------------


EDGE_MOMENTS = ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+14:00"]


def threat_cursor(moment):
    return base64.urlsafe_b64encode(json.dumps([moment, str(uuid.uuid4())]).encode()).decode().rstrip("=")


def group_cursor(moment, group_id=1):
    return base64.urlsafe_b64encode(f"{moment}|{group_id}".encode()).decode().rstrip("=")


@pytest.mark.parametrize("moment", EDGE_MOMENTS)
def test_an_api_cursor_at_the_calendars_edges_is_400_naming_the_cursor(alice_client, moment):
    for url in (f"/api/threats?cursor={threat_cursor(moment)}", f"/api/groups?cursor={group_cursor(moment)}"):
        response = alice_client.get(url)
        assert response.status_code == 400, (url, response.content)
        assert response.json()["field"] == "cursor"


@pytest.mark.parametrize("moment", EDGE_MOMENTS)
@pytest.mark.parametrize("parameter", ["cursor", "before"])
def test_a_list_page_cursor_at_the_calendars_edges_is_400_with_the_reason(alice_client, moment, parameter):
    response = alice_client.get("/threats/", {parameter: threat_cursor(moment)})
    assert response.status_code == 400
    assert b"Invalid cursor: pass back" in response.content


@pytest.mark.parametrize("group_id", ["9" * 19, "9" * 40, "-5", "0"])
def test_a_group_cursor_with_an_id_beyond_the_database_is_400(alice_client, group_id):
    response = alice_client.get("/api/groups", {"cursor": group_cursor("2026-11-20T10:00:00+00:00", group_id)})
    assert response.status_code == 400 and response.json()["field"] == "cursor"


def test_cursors_at_the_ends_of_the_calendar_in_utc_still_page(alice_client):
    factories.make_threat(analyse=False)
    ThreatGroup.objects.create(customer=factories.make_customer(), source="generic", key="k", title="t",
                               first_seen="2026-11-20T10:00:00Z", last_seen="2026-11-20T10:00:00Z")
    newest, oldest = "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00"
    assert len(alice_client.get("/api/threats", {"cursor": threat_cursor(newest)}).json()["items"]) == 1
    assert alice_client.get("/api/threats", {"cursor": threat_cursor(oldest)}).json()["items"] == []
    assert len(alice_client.get("/api/groups", {"cursor": group_cursor(newest)}).json()["items"]) == 1
    assert alice_client.get("/threats/", {"before": threat_cursor(oldest)}).status_code == 200
