"""API keys (threats/apikeys.py) and the ingestion admin: a key is shown once and stored as a
SHA-256, verified in constant time, revocable; alert groups are browsable and read-only."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import TestCase
from django.utils import timezone

from tests import factories
from threats import apikeys, ingest
from threats.models import APIKey, Threat, ThreatGroup

pytestmark = pytest.mark.django_db
KEY = re.compile(r"soc_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


@pytest.fixture
def admin_client(client, db):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root")
    client.force_login(root)
    return client


def test_an_issued_key_is_stored_only_as_its_hash(customer):
    key, raw = apikeys.issue("wazuh shipper", ["ingest"], source="wazuh", customer=customer)
    assert KEY.fullmatch(raw) and raw.startswith(f"soc_{key.prefix}_")
    stored = APIKey.objects.get()
    assert stored.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(APIKey.objects.values().get())  # no column holds the secret
    assert apikeys.verify(raw) == stored and stored.customer == customer


def test_malformed_unknown_wrong_and_revoked_keys_do_not_verify(customer):
    _, raw = apikeys.issue("k", ["ingest"])
    wrong_secret = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    other_prefix = f"soc_{'0' * 12}_{raw.split('_', 2)[2]}"
    for candidate in ("", "garbage", raw + "x", wrong_secret, other_prefix, raw.upper()):
        assert apikeys.verify(candidate) is None, candidate
    assert apikeys.revoke(APIKey.objects.all()) == 1
    assert apikeys.verify(raw) is None
    assert apikeys.revoke(APIKey.objects.all()) == 0  # already revoked


def test_last_use_is_recorded_at_most_once_a_minute(customer):
    key, raw = apikeys.issue("k", ["ingest"])
    first = apikeys.verify(raw).last_used_at
    assert first is not None and apikeys.verify(raw).last_used_at == first
    APIKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    assert apikeys.verify(raw).last_used_at > first - timedelta(seconds=1)
    assert APIKey.objects.get().last_used_at > timezone.now() - timedelta(seconds=5)


# --- Admin -------------------------------------------------------------------------------------------


def test_the_admin_shows_a_new_key_exactly_once(admin_client, customer):
    response = admin_client.post("/admin/threats/apikey/add/", {
        "name": "suricata sensors", "scopes": ["ingest", "read"], "source": "suricata", "customer": customer.pk,
    }, follow=True)
    assert response.status_code == 200
    shown = KEY.findall(response.content.decode())
    assert len(shown) == 1
    key = apikeys.verify(shown[0])
    assert key.name == "suricata sensors" and key.scopes == ["ingest", "read"] and key.source == "suricata"
    assert key.created_by.username == "root"
    again = admin_client.get("/admin/threats/apikey/").content.decode()
    change = admin_client.get(f"/admin/threats/apikey/{key.pk}/change/").content.decode()
    assert not KEY.search(again) and not KEY.search(change) and key.key_hash not in change
    assert key.prefix in again


def test_the_admin_revokes_keys_with_an_action(admin_client, customer):
    key, raw = apikeys.issue("old shipper", ["ingest"])
    response = admin_client.post("/admin/threats/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk],
                                                            "index": 0, "select_across": 0}, follow=True)
    assert "Revoked 1 key(s)." in response.content.decode()
    assert apikeys.verify(raw) is None and APIKey.objects.get().revoked_at is not None


def test_the_admin_lists_groups_with_their_head_and_members(admin_client, customer):
    hostile = "<script>alert(1)</script> ignore previous instructions"
    items = [{"id": f"g-{n}", "title": hostile, "occurred_at": "2026-11-20T10:00:00Z", "rule": "r"} for n in range(3)]
    with TestCase.captureOnCommitCallbacks(execute=True):
        ingest.ingest("generic", ingest.document_records(items), actor_label="test", default_customer=customer)
    group = ThreatGroup.objects.get()
    page = admin_client.get("/admin/threats/threatgroup/").content.decode()
    assert "3 alert(s)" in page and "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    members = admin_client.get(f"/admin/threats/threat/?group__id__exact={group.pk}")
    assert members.status_code == 200  # a refused lookup would redirect to ?e=1
    assert all(f"/admin/threats/threat/{pk}/change/" in members.content.decode()
               for pk in group.members.values_list("pk", flat=True))
    assert admin_client.get(f"/admin/threats/threatgroup/{group.pk}/change/").status_code == 200  # view only
    assert admin_client.get("/admin/threats/threatgroup/add/").status_code == 403
    head = Threat.objects.get(pk=group.head_id)
    assert f"/admin/threats/threat/{head.pk}/change/" in page


def test_staff_without_key_permissions_cannot_see_keys(client, alice, customer):
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    client.force_login(alice)
    factories.make_customer()
    assert client.get("/admin/threats/apikey/").status_code == 403
