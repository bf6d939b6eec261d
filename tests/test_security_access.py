"""Authorization matrix: every API endpoint x (anonymous, viewer, analyst, outsider customer, revoked
key, read key), plus customer scoping on pages, admin and the event log, the roles a fresh install
has, and API key scopes (docs/security.md)."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from tests import factories
from threats import apikeys
from threats.models import APIKey, Threat, ThreatEvent, ThreatGroup, UserAccess

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    acme = factories.make_customer(name="Acme")
    globex = factories.make_customer(name="Globex")
    threat_a, threat_b = factories.make_threat(customer=acme), factories.make_threat(customer=globex)
    now = timezone.now()
    group_a = ThreatGroup.objects.create(customer=acme, source="generic", key="k", title="g", head=threat_a,
                                         member_count=1, first_seen=now, last_seen=now)
    group_b = ThreatGroup.objects.create(customer=globex, source="generic", key="k", title="g", head=threat_b,
                                         member_count=1, first_seen=now, last_seen=now)
    return {"acme": acme, "globex": globex, "a": threat_a, "b": threat_b, "group_a": group_a, "group_b": group_b}


def _user(name, role, customers=None, staff=False):
    user = get_user_model().objects.create_user(username=name, password="pw-" + name, is_staff=staff)
    user.groups.add(Group.objects.get(name=role))
    if customers is not None:
        UserAccess.objects.create(user=user).customers.set(customers)
    return get_user_model().objects.get(pk=user.pk)


def _session(user):
    client = Client()
    client.force_login(user)
    return client


def _key(scopes, customer=None, revoked=False):
    key, raw = apikeys.issue("test key", scopes, customer=customer)
    if revoked:
        apikeys.revoke(APIKey.objects.filter(pk=key.pk))
    return raw


@pytest.fixture
def callers(world):
    """persona -> (client, extra headers)."""
    return {
        "anonymous": (Client(), {}),
        "viewer": (_session(_user("vera", "viewer")), {}),
        "analyst": (_session(_user("alice", "analyst")), {}),
        "outsider": (_session(_user("oscar", "analyst", customers=[world["globex"]])), {}),
        "revoked_key": (Client(), {"HTTP_X_API_KEY": _key(["read", "trigger", "ingest"], revoked=True)}),
        "read_key": (Client(), {"HTTP_X_API_KEY": _key(["read"])}),
    }


def _endpoints(world):
    a, group = world["a"].pk, world["group_a"].pk
    return {
        "list": ("get", "/api/threats", None),
        "detail": ("get", f"/api/threats/{a}", None),
        "trigger": ("post", "/api/threats/trigger", {"customer": "acme", "threat_type": "bot_traffic"}),
        "triage": ("patch", f"/api/threats/{a}", {"status": "acknowledged"}),
        "note": ("post", f"/api/threats/{a}/notes", {"body": "looked at it"}),
        "bulk": ("post", "/api/threats/bulk", {"ids": [str(a)], "status": "acknowledged"}),
        "analytics": ("get", "/api/analytics", None),
        "events": ("get", "/api/events", None),
        "groups": ("get", "/api/groups", None),
        "group": ("get", f"/api/groups/{group}", None),
        "ingest": ("post", "/api/ingest/generic", {"title": "x", "occurred_at": "2026-11-20T13:00:00Z",
                                                   "customer": "acme"}),
    }


EXPECTED = {
    #              list detail trigger triage note bulk analytics events groups group ingest
    "anonymous":   (401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401),
    "viewer":      (200, 200, 403, 403, 403, 403, 200, 200, 200, 200, 401),
    "analyst":     (200, 200, 202, 200, 201, 200, 200, 200, 200, 200, 401),
    "outsider":    (200, 404, 403, 404, 404, 200, 200, 200, 200, 404, 401),
    "revoked_key": (401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401),
    "read_key":    (200, 200, 403, 401, 401, 401, 200, 200, 200, 200, 403),
}
NAMES = ["list", "detail", "trigger", "triage", "note", "bulk", "analytics", "events", "groups", "group", "ingest"]


def _call(client, method, path, body, headers):
    if body is None:
        return getattr(client, method)(path, **headers)
    return getattr(client, method)(path, data=json.dumps(body), content_type="application/json", **headers)


@pytest.mark.parametrize("persona", list(EXPECTED))
@pytest.mark.parametrize("endpoint", NAMES)
def test_every_endpoint_answers_each_persona_as_its_role_allows(world, callers, persona, endpoint):
    client, headers = callers[persona]
    method, path, body = _endpoints(world)[endpoint]
    response = _call(client, method, path, body, headers)
    assert response.status_code == EXPECTED[persona][NAMES.index(endpoint)], response.content
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json() or response.status_code < 300


def test_a_refused_write_changes_nothing(world, callers):
    for persona in ("anonymous", "viewer", "outsider", "revoked_key", "read_key"):
        client, headers = callers[persona]
        for endpoint in ("trigger", "triage", "note", "bulk"):
            _call(client, *_endpoints(world)[endpoint], headers)
    world["a"].refresh_from_db()
    assert world["a"].status == "new" and world["a"].notes.count() == 0
    assert Threat.objects.count() == 2


def test_an_outsider_sees_only_its_customers_everywhere_in_the_api(world, callers):
    client, _ = callers["outsider"]
    assert [t["id"] for t in client.get("/api/threats").json()["items"]] == [str(world["b"].pk)]
    assert {e["threat"]["customer_slug"] for e in client.get("/api/events").json()["events"]} == {"globex"}
    analytics = client.get("/api/analytics").json()
    assert analytics["total_threats"] == 1 and analytics["customer_slugs"] == ["globex"]
    assert [g["id"] for g in client.get("/api/groups").json()["items"]] == [world["group_b"].pk]
    bulk = client.post("/api/threats/bulk", {"ids": [str(world["a"].pk)], "status": "acknowledged"},
                       content_type="application/json").json()
    assert bulk == {"updated": [], "failed": [{"id": str(world["a"].pk), "detail": "Threat not found.",
                                               "field": None}]}


def test_an_outsider_cannot_assign_a_threat_to_someone_outside_its_customer(world):
    alice = _session(_user("alice", "analyst"))
    _user("oscar", "analyst", customers=[world["globex"]])
    response = alice.patch(f"/api/threats/{world['a'].pk}", {"assignee": "oscar"}, content_type="application/json")
    assert response.status_code == 400 and response.json()["field"] == "assignee"


def test_a_scoped_user_with_an_empty_scope_sees_nothing(world):
    client = _session(_user("nobody", "analyst", customers=[]))
    assert client.get("/api/threats").json()["items"] == []
    assert client.get("/api/events").json()["events"] == []
    response = client.post("/api/threats/trigger", {}, content_type="application/json")
    assert response.status_code == 403


def test_a_scoped_trigger_without_a_customer_uses_its_own_customer(world):
    client = _session(_user("oscar", "analyst", customers=[world["globex"]]))
    response = client.post("/api/threats/trigger", {"threat_type": "geo_anomaly"}, content_type="application/json")
    assert response.status_code == 202
    assert Threat.objects.get(pk=response.json()["id"]).customer == world["globex"]


@pytest.mark.parametrize("persona", ["user", "key"])
def test_a_scoped_trigger_resolves_the_slug_first_and_never_reaches_another_customer_by_name(world, persona):
    """Issue 18: "initech" is the slug of the caller's customer and, in another case, the name of
    a customer outside the scope. The trigger resolved the name first (case-insensitively) and
    created the threat there."""
    own = factories.make_customer(name="Initech Holdings", slug="initech")
    rival = factories.make_customer(name="INITECH", slug="rival")
    if persona == "user":
        client, headers = _session(_user("oscar", "analyst", customers=[own])), {}
    else:
        client, headers = Client(), {"HTTP_X_API_KEY": _key(["trigger"], customer=own)}

    def trigger(name):
        return client.post("/api/threats/trigger", {"customer": name, "threat_type": "bot_traffic"},
                           content_type="application/json", **headers)

    created = trigger("initech")
    assert created.status_code == 202 and Threat.objects.get(pk=created.json()["id"]).customer == own
    for name in ("INITECH", "rival"):
        assert trigger(name).status_code == 403
    assert trigger("Initech Holdings").status_code == 202  # the exact name of its own customer
    assert not Threat.objects.filter(customer=rival).exists()


def test_pages_follow_the_same_scope(world):
    client = _session(_user("oscar", "analyst", customers=[world["globex"]]))
    assert client.get(f"/threats/{world['a'].pk}/").status_code == 404
    assert client.get(f"/threats/{world['b'].pk}/").status_code == 200
    listing = client.get("/threats/").content.decode()
    assert str(world["b"].pk) in listing and str(world["a"].pk) not in listing
    overview = client.get("/").content.decode()
    assert str(world["a"].pk) not in overview and str(world["b"].pk) in overview


def test_admin_lists_follow_the_same_scope(world):
    client = _session(_user("oscar", "analyst", customers=[world["globex"]], staff=True))
    page = client.get("/admin/threats/threat/").content.decode()
    assert str(world["b"].pk) in page and str(world["a"].pk) not in page
    assert client.get(f"/admin/threats/threat/{world['a'].pk}/change/").status_code == 302  # "does not exist"
    event_a, event_b = (ThreatEvent.objects.filter(threat=world[k]).first() for k in ("a", "b"))
    assert client.get(f"/admin/threats/threatevent/{event_a.pk}/change/").status_code == 302
    assert client.get(f"/admin/threats/threatevent/{event_b.pk}/change/").status_code == 200


def test_a_fresh_install_has_the_three_roles():
    perms = {g.name: {f"{p.content_type.app_label}.{p.codename}" for p in g.permissions.all()}
             for g in Group.objects.prefetch_related("permissions__content_type")}
    assert {"viewer", "analyst", "admin"} <= set(perms)
    assert "threats.view_threat" in perms["viewer"] and "threats.change_threat" not in perms["viewer"]
    assert {"threats.change_threat", "threats.add_threat", "threats.add_note"} <= perms["analyst"]
    assert "threats.add_apikey" not in perms["analyst"]
    assert {"threats.add_apikey", "threats.change_apikey", "auth.change_user", "threats.change_useraccess"} <= perms["admin"]
    assert perms["viewer"] < perms["analyst"] < perms["admin"]


def test_seed_demo_keeps_the_analyst_login_working():
    from django.core.management import call_command

    call_command("seed_demo", "--history", "0", "--insecure-demo-login", stdout=open("/dev/null", "w"))  # noqa: SIM115
    client = Client()
    response = client.post("/accounts/login/", {"username": "analyst", "password": "analyst"})
    assert response.status_code == 302
    assert client.get("/api/threats").status_code == 200
    assert client.post("/api/threats/trigger", {}, content_type="application/json").status_code == 202


# --- API keys ------------------------------------------------------------------------------------------


def test_a_read_key_bound_to_a_customer_reads_only_that_customer(world):
    headers = {"HTTP_X_API_KEY": _key(["read"], customer=world["globex"])}
    client = Client()
    assert [t["id"] for t in client.get("/api/threats", **headers).json()["items"]] == [str(world["b"].pk)]
    assert client.get(f"/api/threats/{world['a'].pk}", **headers).status_code == 404
    assert {e["threat"]["customer_slug"] for e in client.get("/api/events", **headers).json()["events"]} == {"globex"}


def test_a_key_records_its_last_use(world):
    raw = _key(["read"])
    assert APIKey.objects.get().last_used_at is None
    Client().get("/api/threats", HTTP_X_API_KEY=raw)
    assert APIKey.objects.get().last_used_at is not None


def test_a_trigger_key_creates_threats_for_its_customer_only(world):
    headers = {"HTTP_X_API_KEY": _key(["trigger"], customer=world["globex"])}
    client = Client()
    created = client.post("/api/threats/trigger", {"threat_type": "bot_traffic"}, content_type="application/json",
                          **headers)
    assert created.status_code == 202
    threat = Threat.objects.get(pk=created.json()["id"])
    assert threat.customer == world["globex"]
    assert threat.events.get(type="threat.created").actor_label == "api key test key"
    refused = client.post("/api/threats/trigger", {"customer": "acme"}, content_type="application/json", **headers)
    assert refused.status_code == 403
    assert client.get("/api/threats", **headers).status_code == 403  # trigger scope does not read


def test_an_ingest_key_cannot_read_or_trigger(world):
    headers = {"HTTP_X_API_KEY": _key(["ingest"])}
    assert Client().get("/api/threats", **headers).status_code == 403
    assert Client().post("/api/threats/trigger", {}, content_type="application/json", **headers).status_code == 403


def test_a_malformed_or_unknown_key_is_refused_and_never_falls_back_to_the_session(world):
    client = _session(_user("alice", "analyst"))
    for value in ("nonsense", "soc_000000000000_" + "A" * 43):
        response = client.get("/api/threats", HTTP_X_API_KEY=value)
        assert response.status_code == 401


def test_the_stored_key_is_only_a_hash(world):
    raw = _key(["read"])
    stored = APIKey.objects.get()
    assert raw not in json.dumps(list(APIKey.objects.values()), default=str)
    assert stored.key_hash == apikeys.digest(raw) and len(stored.key_hash) == 64


def test_no_threat_or_event_leaks_across_customers_over_a_randomised_fixture(db):
    """S6: 50 users with random scopes (some unscoped, some empty) over 8 customers and 1,000
    threats; each user's list, event log, analytics and sampled details hold exactly its share."""
    import random

    from threats import services
    from threats.choices import AnalysisStatus

    rng = random.Random(7)
    customers = [factories.make_customer(name=f"Tenant {i}") for i in range(8)]
    rows = [{"customer": rng.choice(customers), "threat_type": "bot_traffic", "title": f"t{i}",
             "occurred_at": timezone.now(), "analysis_status": AnalysisStatus.GROUPED} for i in range(1000)]
    threats = services.do_create_threats(rows, services.SYSTEM)
    by_customer = {c.pk: {str(t.pk) for t in threats if t.customer_id == c.pk} for c in customers}
    everything = {str(t.pk) for t in threats}
    for index in range(50):
        kind = index % 5
        scope = None if kind == 0 else [] if kind == 1 else rng.sample(customers, rng.randint(1, 3))
        client = _session(_user(f"user{index}", rng.choice(["viewer", "analyst"]), customers=scope))
        expected = everything if scope is None else set().union(*(by_customer[c.pk] for c in scope))
        seen, cursor = set(), ""
        while True:
            page = client.get(f"/api/threats?limit=100{cursor}").json()
            seen |= {item["id"] for item in page["items"]}
            if not page["next_cursor"]:
                break
            cursor = f"&cursor={page['next_cursor']}"
        assert seen == expected
        events = client.get("/api/events?limit=1000").json()["events"]
        assert {e["threat"]["id"] for e in events} == expected
        assert client.get("/api/analytics").json()["total_threats"] == len(expected)
        for threat_id in rng.sample(sorted(everything), 5):
            assert client.get(f"/api/threats/{threat_id}").status_code == (200 if threat_id in expected else 404)


def test_nul_characters_are_refused_in_queries_and_bodies(world):
    """PostgreSQL cannot hold NUL in a query or a column: the API refuses it (found by fuzzing)."""
    client = _session(_user("alice", "analyst"))
    response = client.get("/api/threats", {"q": "a\x00b"})
    assert response.status_code == 400 and response.json()["field"] == "q"
    response = client.post(f"/api/threats/{world['a'].pk}/notes", {"body": "x\x00"}, content_type="application/json")
    assert response.status_code == 400  # django-ninja words every parser refusal "Cannot parse request body"
    assert client.get("/api/groups", {"customer": "\x00"}).status_code == 400
    assert world["a"].notes.count() == 0


def test_the_threat_list_page_refuses_nul_characters_in_its_filters(world):
    # Refused, not dropped: dropping them answered with the unfiltered list (issue 23).
    client = _session(_user("alice", "analyst"))
    response = client.get("/threats/", {"q": "t\x00", "customer": "\x00acme", "cursor": "", "before": ""})
    assert response.status_code == 400
    assert "cannot contain a NUL character" in response.content.decode()
