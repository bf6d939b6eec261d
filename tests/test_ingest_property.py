"""Property-based test of POST /api/ingest/{format} (issue 18, item 5) with Hypothesis: start from a
valid sample alert of each format (tests/fixtures/alerts), replace one field - top-level or nested,
any key or list element - with an arbitrary JSON value, and post it with a valid sibling alert, as
a JSON array or as NDJSON. The values include what Python's json reads but nothing after it holds:
NaN, Infinity, integers of more than 4,300 digits, floats that read as infinity, times over the
whole calendar with any offset, epoch numbers out of range, nested objects and lists.

For every example: never a 5xx; the answer is strict JSON (no NaN); the sibling is stored for the
key's customer; the changed alert is created, a duplicate, skipped, or an error carrying its index
(and NDJSON line) and the field that was wrong.

Bounded and repeatable for CI: INGEST_PROPERTY_EXAMPLES examples per format (default 60), no
deadline, derandomized, no example database. Analysis is not run (the test never commits)."""

import copy
import itertools
import json
import os
from datetime import timedelta, timezone
from pathlib import Path

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import factories
from threats import apikeys
from threats.models import Threat

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).parent / "fixtures" / "alerts"
EXAMPLES = int(os.environ.get("INGEST_PROPERTY_EXAMPLES", "60"))
_alert_ids = itertools.count(1)


def _first_line(name):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8").splitlines()[0])


# A valid alert of each format, the path of its alert id, and how to make a new id from a number.
ALERTS = {
    "generic": (json.loads((FIXTURES / "generic_alerts.json").read_text(encoding="utf-8"))[0], ("id",), str),
    "wazuh": (_first_line("wazuh_alerts.ndjson"), ("id",), str),
    "suricata": (_first_line("suricata_eve.ndjson"), ("flow_id",), lambda n: 10**12 + n),
    "ecs": (_first_line("ecs_alerts.ndjson"), ("kibana.alert.uuid",), str),
}


class Raw:
    """JSON text written as it is: literals Python cannot produce from a value (a 5,000-digit integer)."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):  # as Hypothesis prints a falsifying example
        return f"Raw({self.text[:20]!r}{'...' if len(self.text) > 20 else ''})"


def dump(value):
    """JSON text of a value holding Raw literals; floats keep Python's NaN / Infinity spelling."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(key)}:{dump(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(dump, value)) + "]"
    return json.dumps(value)


def paths(node, prefix=()):
    """Every key path and list position inside an alert, nested ones included."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    found = []
    for key, child in children:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


def replaced(alert, path, value):
    changed = copy.deepcopy(alert)
    node = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return changed


def _any_moment():
    offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda minutes: timezone(timedelta(minutes=minutes)))
    return st.builds(lambda moment, zone: moment.replace(tzinfo=zone).isoformat(), st.datetimes(), offsets)


EDGE_TIMES = ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00Z",
              "9999-12-31T23:59:59.999999Z", "1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z",
              "Dec 31, 9999 @ 23:59:59.999", "2026-02-30T00:00:00Z", "0001-01-01", ""]
EDGE_NUMBERS = [0, -1, 10**11, 10**11 + 1, -62135596801, 253402300800, 253402300800000, 2**63, -(2**63),
                10**400, 1e308, -1e308, 5e-324, Raw("1e400"), Raw("-1e400"), Raw("NaN"), Raw("Infinity"),
                Raw("-Infinity"), Raw("9" * 4_301), Raw("-" + "1" * 5_000)]
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
    st.sampled_from(EDGE_TIMES), _any_moment(), st.sampled_from(EDGE_NUMBERS),
)
JSON_VALUES = st.recursive(
    LEAVES, lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children,
                                                                             max_size=3),
    max_leaves=10,
)


@pytest.fixture
def key(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "key": (10**6, 60)}
    customer = factories.make_customer(name="Global Finance", slug="global-finance")  # the samples name global-finance
    return customer, apikeys.issue("property shipper", ["ingest"], customer=customer)[1]


def _fresh(fmt):
    """The format's sample alert with an alert id no other example used, so that it is stored
    (not answered as a duplicate) unless the change makes it fail."""
    alert, ref_path, ref = ALERTS[fmt]
    return replaced(alert, ref_path, ref(next(_alert_ids)))


def _body(items, ndjson):
    if ndjson:
        return "".join(dump(item) + "\n" for item in items), "application/x-ndjson"
    return "[" + ",".join(map(dump, items)) + "]", "application/json"


def _strict_json(content):
    def refuse(name):
        raise AssertionError(f"the answer holds {name}")

    return json.loads(content, parse_constant=refuse)


@pytest.mark.parametrize("fmt", list(ALERTS))
def test_any_json_value_in_any_field_is_stored_or_refused_alone_never_a_500(fmt, key):
    customer, raw_key = key
    alert = ALERTS[fmt][0]

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(path=st.sampled_from(paths(alert)), value=JSON_VALUES, ndjson=st.booleans())
    def check(path, value, ndjson):
        body, content_type = _body([replaced(_fresh(fmt), path, value), _fresh(fmt)], ndjson)
        response = Client().post(f"/api/ingest/{fmt}", body, content_type=content_type, HTTP_X_API_KEY=raw_key)

        assert response.status_code == 202, (path, response.status_code, response.content[:500])
        assert response["Content-Type"].startswith("application/json")
        changed, sibling = _strict_json(response.content)["items"]
        assert sibling["status"] == "created" and Threat.objects.filter(pk=sibling["id"], customer=customer).exists()
        assert changed["index"] == 0 and changed.get("line") == (1 if ndjson else None)
        assert changed["status"] in ("created", "duplicate", "skipped", "error"), changed
        if changed["status"] == "error":
            assert isinstance(changed["field"], str) and changed["field"] and changed["detail"], changed
        if changed["status"] in ("created", "duplicate"):
            assert Threat.objects.filter(pk=changed["id"], customer=customer).exists()

    check()
