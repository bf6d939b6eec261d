"""Suppressions through the API, the pages and the socket (docs/suppressions.md): the preview's
numbers equal a direct count, saving refuses with a 4xx naming the field, tenants stay apart
(the outsider included), the pages escape what users wrote, and changes reach only the sockets
of the customer's analysts."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from suppressions import services
from suppressions.models import Suppression
from tests import factories
from tests.test_queue_warnings import TIMEOUT, _session, _streaming
from tests.test_suppressions import RULE, stored, suppression
from threats import apikeys
from threats.models import Threat, UserAccess

pytestmark = pytest.mark.django_db
SCRIPT = "<script>alert(1)</script>"


def body(customer, **fields):
    return {"customer": customer.slug, "rule": RULE, **fields}


def saved_body(customer, **fields):
    expires = (timezone.now() + timedelta(days=7)).isoformat()
    return body(customer, reason="our scanner", expires_at=expires, **fields)


def post(client, path, data):
    return client.post(path, data, content_type="application/json")


# --- Preview --------------------------------------------------------------------------------------------


def test_the_preview_answers_the_numbers_of_a_direct_count(alice_client, customer):
    for severity in ("HIGH", "HIGH", "LOW", "CRITICAL"):
        stored(customer, severity=severity)
    tp = stored(customer, severity="CRITICAL", disposition="true_positive")
    stored(customer, severity="HIGH", src_ip="198.51.100.9")
    response = post(alice_client, "/api/suppressions/preview", body(customer, src_ip="203.0.113.7", days=30))
    assert response.status_code == 200, response.content
    data = response.json()
    direct = Threat.objects.filter(customer=customer, rule=RULE, observables__src_ip="203.0.113.7",
                                   received_at__gte=timezone.now() - timedelta(days=30))
    assert data["total"] == direct.count() == 5
    assert {level: data["by_severity"][level] for level in ("CRITICAL", "HIGH", "LOW")} == {
        level: direct.filter(severity=level).count() for level in ("CRITICAL", "HIGH", "LOW")}
    assert [t["id"] for t in data["true_positives"]] == [str(tp.pk)]
    assert data["needs_confirmation"] is True and data["needs_admin"] is False


@pytest.mark.parametrize("fields,field", [({"src_ip": "nope"}, "src_ip"), ({"rule": "5712"}, "rule"),
                                          ({"customer": "no-such"}, "customer")])
def test_bad_proposals_are_400_naming_the_field(alice_client, customer, fields, field):
    response = post(alice_client, "/api/suppressions/preview", {**body(customer), **fields})
    assert response.status_code == 400 and response.json()["field"] == field


def test_more_than_90_preview_days_is_refused(alice_client, customer):
    response = post(alice_client, "/api/suppressions/preview", body(customer, days=91))
    assert response.status_code == 422 and "days" in str(response.json()["detail"])


# --- Saving -----------------------------------------------------------------------------------------------


def test_saving_with_true_positives_needs_the_confirmation(alice_client, customer, alice):
    stored(customer, disposition="true_positive")
    refused = post(alice_client, "/api/suppressions", saved_body(customer))
    assert refused.status_code == 400 and refused.json()["field"] == "confirm_true_positives"
    assert "true positive" in refused.json()["detail"]
    created = post(alice_client, "/api/suppressions", saved_body(customer, confirm_true_positives=True))
    assert created.status_code == 201, created.content
    data = created.json()
    assert (data["author"], data["state"], data["hit_count"], data["preview"]["true_positive_count"]) == (
        "alice", "active", 0, 1)


def test_above_the_threshold_an_analyst_gets_403_naming_the_role(alice_client, customer, settings):
    settings.SUPPRESSION_ADMIN_THRESHOLD = 1
    stored(customer), stored(customer)
    refused = post(alice_client, "/api/suppressions", saved_body(customer))
    assert refused.status_code == 403 and refused.json()["field"] == "role"
    assert "SUPPRESSION_ADMIN_THRESHOLD" in refused.json()["detail"]


def test_an_admin_saves_above_the_threshold(client, customer, settings, analyst_group):
    settings.SUPPRESSION_ADMIN_THRESHOLD = 1
    stored(customer), stored(customer)
    user = get_user_model().objects.create_user("ada", password="pw")
    user.groups.add(analyst_group, Group.objects.get(name="admin"))
    client.force_login(user)
    assert post(client, "/api/suppressions", saved_body(customer)).status_code == 201


@pytest.mark.parametrize("expires,field", [(None, "expires_at"), ("2020-01-01T00:00:00Z", "expires_at")])
def test_a_missing_or_past_expiry_is_refused(alice_client, customer, expires, field):
    data = saved_body(customer)
    data["expires_at"] = expires
    response = post(alice_client, "/api/suppressions", data)
    assert response.status_code in (400, 422) and "expires_at" in str(response.json())


def test_revoking_is_a_delete_and_stops_it(alice_client, customer, alice):
    saved = suppression(customer, alice)
    response = alice_client.delete(f"/api/suppressions/{saved.pk}", content_type="application/json")
    assert response.status_code == 200 and response.json()["state"] == "revoked"
    assert response.json()["revoked_by"] == "alice"
    assert alice_client.delete(f"/api/suppressions/{saved.pk}").json()["state"] == "revoked"


def test_the_list_filters_by_state(alice_client, customer, alice):
    active = suppression(customer, alice)
    expired = suppression(customer, alice, expires_at=timezone.now() - timedelta(days=1))
    revoked = suppression(customer, alice, revoked_at=timezone.now())

    def ids(state):
        return [s["id"] for s in alice_client.get("/api/suppressions", {"state": state}).json()["items"]]

    assert ids("active") == [active.pk] and ids("expired") == [expired.pk] and ids("revoked") == [revoked.pk]
    assert sorted(ids("all")) == sorted([active.pk, expired.pk, revoked.pk])


# --- Tenants and roles ---------------------------------------------------------------------------------------


def test_a_user_of_customer_a_never_sees_previews_saves_or_reads_b(alice_client, alice, customer):
    other = factories.make_customer(name="Globex")
    UserAccess.objects.create(user=alice).customers.set([customer])
    theirs = suppression(other)
    stored(other, severity="HIGH")
    for path, data in (("/api/suppressions/preview", body(other)), ("/api/suppressions", saved_body(other))):
        response = post(alice_client, path, data)
        assert response.status_code == 400 and response.json()["field"] == "customer"
        assert "Globex" not in response.content.decode()
    assert alice_client.get("/api/suppressions").json()["items"] == []
    assert alice_client.get(f"/api/suppressions/{theirs.pk}").status_code == 404
    assert alice_client.delete(f"/api/suppressions/{theirs.pk}").status_code == 404
    assert Suppression.objects.get(pk=theirs.pk).revoked_at is None


def test_the_outsider_may_neither_read_nor_propose(charlie_client, customer):
    assert charlie_client.get("/api/suppressions").status_code == 403
    assert post(charlie_client, "/api/suppressions/preview", body(customer)).status_code == 403
    assert post(charlie_client, "/api/suppressions", saved_body(customer)).status_code == 403


def test_an_api_key_reads_its_customer_but_never_writes(client, customer):
    _, secret = apikeys.issue("reader", ["read"], customer=customer)
    suppression(customer), suppression(factories.make_customer())
    listed = client.get("/api/suppressions", HTTP_X_API_KEY=secret).json()["items"]
    assert [s["customer_slug"] for s in listed] == [customer.slug]
    refused = client.post("/api/suppressions/preview", body(customer), content_type="application/json",
                          HTTP_X_API_KEY=secret)
    assert refused.status_code == 401


def test_the_openapi_document_describes_every_operation(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    assert {"post"} <= set(paths["/api/suppressions/preview"])
    assert {"get", "post"} <= set(paths["/api/suppressions"])
    assert {"get", "delete"} <= set(paths["/api/suppressions/{suppression_id}"])
    assert "suppressed" in str(paths["/api/threats"]["get"]["parameters"])


# --- Pages -------------------------------------------------------------------------------------------------


def closed_fp(customer, **fields):
    threat = stored(customer, severity="LOW", disposition="false_positive", user=SCRIPT, **fields)
    Threat.objects.filter(pk=threat.pk).update(disposition_reason=f"scanner {SCRIPT}")
    return threat


def test_a_closed_false_positive_offers_the_prefilled_form_escaped(alice_client, customer):
    threat = closed_fp(customer)
    page = alice_client.get(f"/threats/{threat.pk}/").content.decode()
    assert 'id="suppress-form"' in page and '"rule": "rule:scanner-probe"' in page
    assert '"src_ip": "203.0.113.7"' in page and 'value="src_ip" checked' in page
    assert SCRIPT not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_an_open_threat_or_a_viewer_gets_no_form(client, alice_client, customer):
    page = alice_client.get(f"/threats/{stored(customer).pk}/").content.decode()
    assert 'id="suppress-form"' not in page and '<div id="suppress-slot" data-swap>' in page  # closing brings it in
    viewer = get_user_model().objects.create_user("vic", password="pw")
    viewer.groups.add(Group.objects.get(name="viewer"))
    client.force_login(viewer)
    assert 'id="suppress-form"' not in client.get(f"/threats/{closed_fp(customer).pk}/").content.decode()


def test_the_suppressions_page_lists_them_escaped_with_revoke(alice_client, customer, alice):
    saved = suppression(customer, alice, reason=SCRIPT, user=SCRIPT)
    page = alice_client.get("/suppressions/").content.decode()
    assert f'data-revoke="{saved.pk}"' in page and SCRIPT not in page
    assert "&lt;script&gt;" in page
    assert f'data-id="{saved.pk}"' not in alice_client.get("/suppressions/?state=revoked").content.decode()


def test_the_threats_page_filters_suppressed(alice_client, customer):
    hidden = stored(customer)
    Threat.objects.filter(pk=hidden.pk).update(suppressed=True, title="HIDDEN ONE")
    stored(customer)
    assert "HIDDEN ONE" in alice_client.get("/threats/?suppressed=yes").content.decode()
    assert "HIDDEN ONE" not in alice_client.get("/threats/?suppressed=no").content.decode()
    assert alice_client.get("/threats/?suppressed=maybe").status_code == 400


# --- The socket ---------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_change_reaches_only_the_sockets_that_may_see_its_customer():
    acme, globex = await database_sync_to_async(
        lambda: (factories.make_customer(name="Acme"), factories.make_customer(name="Globex")))()
    cookies = await database_sync_to_async(
        lambda: {"all": _session("all"), "acme": _session("acme", [acme]), "globex": _session("globex", [globex])})()
    sockets = {name: await _streaming(cookie) for name, cookie in cookies.items()}

    def create_and_revoke():
        author = get_user_model().objects.get(username="acme")
        proposal = services.check_proposal(author, customer=acme.slug, rule=RULE, entities={})
        saved, _ = services.create(author, proposal, reason="scanner", expires_at=timezone.now() + timedelta(days=3))
        services.revoke(author, saved.pk)
        return saved

    saved = await database_sync_to_async(create_and_revoke)()
    for name in ("all", "acme"):
        got = [await sockets[name].receive_json_from(TIMEOUT) for _ in range(2)]
        assert [m["type"] for m in got] == ["suppression.created", "suppression.revoked"]
        assert got[0]["suppression"]["id"] == saved.pk and got[1]["suppression"]["state"] == "revoked"
    assert await sockets["globex"].receive_nothing(0.2)
    for socket in sockets.values():
        await socket.disconnect()


def test_a_suppressed_threat_says_what_hid_it_escaped(alice_client, customer, alice):
    from tests.test_suppressions import alert, ingest_alerts

    saved = suppression(customer, alice, reason=SCRIPT)
    [result] = ingest_alerts(customer, alert("s-1"))
    page = alice_client.get(f"/threats/{result.id}/").content.decode()
    assert 'id="suppressed-by"' in page and f"#{saved.pk}</a>" in page and "active until" in page
    assert SCRIPT not in page and 'id="suppress-form"' not in page
