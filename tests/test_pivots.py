"""Pivots on observables (issue 23 item 2): every threat with this address, user, host, hash, domain
or rule, from the API, the search box and the detail page's links; only threats the user may see;
each pivot an index read on PostgreSQL (threats/pivots.py, migrations 0007 and 0016)."""

import os
import re

import pytest
from django.db import connection

from tests import factories
from threats import access, paging
from threats.models import UserAccess

pytestmark = pytest.mark.django_db
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
POSTGRES = os.environ.get("DATABASE_URL", "").split(":")[0] in ("postgres", "postgresql")


@pytest.fixture
def stored():
    """Two customers' threats: Acme's share an attacker address (as source, and as destination of
    the reply), a user, a hash, a domain and a rule; Globex's also has the address."""
    acme, globex = factories.make_customer(name="Acme"), factories.make_customer(name="Globex")

    def threat(customer, title, observables, rule=""):
        return factories.make_threat(customer, analyse=False, title=title, observables=observables, rule=rule)

    return {
        "login": threat(acme, "VPN login after failures", {"src_ip": "203.0.113.7", "user": "j.doe", "host": "vpn-gw-1"},
                        rule="rule:5715"),
        "reply": threat(acme, "Outbound reply", {"src_ip": "10.0.0.5", "dst_ip": "203.0.113.7", "host": "web-1"}),
        "file": threat(acme, "Malware written", {"host": "ws-12", "hashes": [SHA256],
                                                 "domains": ["Updates.Example-CDN.com"]}, rule="sid:1:2001219"),
        "v6": threat(acme, "IPv6 probe", {"src_ip": "2001:db8::1"}),
        "other": threat(globex, "Globex probe", {"src_ip": "203.0.113.7", "user": "j.doe"}, rule="rule:5715"),
        "acme": acme,
    }


def ids(client, **params):
    response = client.get("/api/threats", {"limit": 100, **params})
    assert response.status_code == 200, response.content
    return {item["id"] for item in response.json()["items"]}


def pks(stored, *names):
    return {str(stored[name].pk) for name in names}


@pytest.mark.parametrize("params, expected", [
    ({"ip": "203.0.113.7"}, ("login", "reply", "other")),  # source or destination
    ({"ip": "2001:DB8:0::1"}, ("v6",)),  # compared in the form importers store
    ({"user": "j.doe"}, ("login", "other")),
    ({"host": "ws-12"}, ("file",)),
    ({"hash": SHA256.upper()}, ("file",)),
    ({"domain": "updates.example-cdn.com"}, ("file",)),  # stored as the source wrote it, mixed case
    ({"domain": "Updates.Example-CDN.com."}, ("file",)),
    ({"rule": "rule:5715"}, ("login", "other")),
    ({"rule": "rule:5715", "customer": "acme"}, ("login",)),  # combines with every other filter
    ({"user": "J.DOE"}, ()),  # users and hosts are exact
])
def test_each_pivot_finds_the_threats_that_share_the_value(alice_client, stored, params, expected):
    assert ids(alice_client, **params) == pks(stored, *expected)


@pytest.mark.parametrize("term, expected", [
    ("203.0.113.7", ("login", "reply", "other")),
    ("j.doe", ("login", "other")),
    (SHA256, ("file",)),
    ("updates.example-cdn.com", ("file",)),
    ("sid:1:2001219", ("file",)),
    ("vpn", ("login",)),  # the title still matches as text
    ("5715", ()),  # a rule only as importers write it (rule:5715)
])
def test_the_search_box_finds_threats_by_their_observables(alice_client, stored, term, expected):
    assert ids(alice_client, q=term) == pks(stored, *expected)


@pytest.mark.parametrize("params, field", [
    ({"ip": "203.0.113"}, "ip"), ({"hash": "not-a-digest"}, "hash"), ({"user": "x" * 201}, "user"),
    ({"rule": "5715"}, "rule"),
])
def test_a_pivot_value_that_cannot_be_one_is_a_400_naming_the_filter(alice_client, stored, params, field):
    response = alice_client.get("/api/threats", params)
    assert response.status_code in (400, 422), response.content
    assert field in response.content.decode()


def test_a_scoped_analyst_pivots_only_within_the_customers_it_sees(client, stored, analyst_group, django_user_model):
    ann = django_user_model.objects.create_user("ann", password="pw-ann-12345")
    ann.groups.add(analyst_group)
    UserAccess.objects.create(user=ann).customers.set([stored["acme"]])
    client.force_login(ann)
    assert ids(client, ip="203.0.113.7") == pks(stored, "login", "reply")
    assert ids(client, q="j.doe") == pks(stored, "login")


def test_a_summary_carries_the_values_the_live_list_matches_with(alice_client, stored):
    items = {i["id"]: i for i in alice_client.get("/api/threats", {"limit": 100}).json()["items"]}
    assert items[str(stored["file"].pk)]["pivots"] == {
        "host": ["ws-12"], "hash": [SHA256], "domain": ["Updates.Example-CDN.com"], "rule": ["sid:1:2001219"]}
    assert items[str(stored["reply"].pk)]["pivots"] == {"ip": ["10.0.0.5", "203.0.113.7"], "host": ["web-1"]}


def test_the_detail_page_links_each_observable_to_its_pivot(alice_client, stored):
    page = alice_client.get(f"/threats/{stored['file'].pk}/").content.decode()
    assert f'href="/threats/?hash={SHA256}"' in page
    assert 'href="/threats/?domain=Updates.Example-CDN.com"' in page
    assert 'href="/threats/?host=ws-12"' in page
    assert 'href="/threats/?rule=sid%3A1%3A2001219"' in page


def test_the_list_page_filters_on_a_pivot_and_shows_it_as_a_removable_chip(alice_client, stored):
    page = alice_client.get("/threats/", {"ip": "203.0.113.7", "customer": "acme"}).content.decode()
    assert "Outbound reply" in page and "VPN login after failures" in page and "Malware written" not in page
    assert re.search(r'class="chip pivot-chip">ip <code>203\.0\.113\.7</code> <a href="/threats/\?customer=acme"', page)
    refused = alice_client.get("/threats/", {"ip": "not-an-address"})
    assert refused.status_code == 400 and "not an IP address" in refused.content.decode()


def test_hostile_observable_values_are_escaped_in_links(alice_client, db):
    threat = factories.make_threat(analyse=False, observables={"user": '"><script>alert(1)</script>'})
    page = alice_client.get(f"/threats/{threat.pk}/").content.decode()
    assert "<script>alert(1)" not in page
    assert "/threats/?user=%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E" in page


@pytest.mark.skipif(not POSTGRES, reason="the pivot indexes are PostgreSQL's (migrations 0007 and 0016)")
@pytest.mark.parametrize("params, indexes", [
    ({"ip": "203.0.113.7"}, ("threat_entity_src_ip", "threat_entity_dst_ip")),
    ({"user": "j.doe"}, ("threat_entity_user",)),
    ({"hash": SHA256}, ("threat_hashes_gin",)),
    ({"domain": "example.com"}, ("threat_domains_gin",)),
    ({"rule": "rule:5715"}, ("threat_rule_newest",)),
])
def test_each_pivot_can_use_its_index_on_postgresql(alice, stored, params, indexes):
    """With sequential and plain index scans off the planner must still answer every branch with a
    bitmap on its index: a pivot whose SQL drifted from its index's expression could not."""
    found = paging._filter(access.visible_threats(alice), paging.ThreatFilters(**params), alice)
    sql, values = found.order_by("-received_at", "-id").values("id")[:51].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")  # or the newest-first index wins on a small table
        cursor.execute("EXPLAIN " + sql, values)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan on threats_threat" not in plan, plan
    for index in indexes:
        assert f"Bitmap Index Scan on {index}" in plan, plan
