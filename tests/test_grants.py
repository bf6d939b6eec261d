"""The access cache (threats/grants.py): a user's permissions and customer scope come from the cache
instead of three queries a request, and every change that decides them takes effect on the very
next request — from either side of each relation. Transactional tests: a change retires the cached
grants when its transaction commits, as in production. The same across real processes:
tests/integration/test_security_daphne.py."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests import factories
from threats.models import UserAccess

pytestmark = pytest.mark.django_db(transaction=True)
GRANT_TABLES = ("auth_permission", "threats_useraccess")


@pytest.fixture(autouse=True)
def access_cache(settings):
    settings.ACCESS_CACHE_SECONDS = 60


def _tables_read(client, path):
    with CaptureQueriesContext(connection) as queries:
        answer = client.get(path)
    return answer, [table for table in GRANT_TABLES if any(table in q["sql"] for q in queries.captured_queries)]


def _listed(client):
    answer = client.get("/api/threats?limit=50")
    assert answer.status_code == 200, answer.content
    return {row["id"] for row in answer.json()["items"]}  # ids as the API writes them


def test_the_second_request_reads_no_permission_or_scope_table(alice_client):
    first, read = _tables_read(alice_client, "/api/threats?limit=1")
    assert first.status_code == 200 and read == list(GRANT_TABLES)
    second, read = _tables_read(alice_client, "/api/threats?limit=1")
    assert second.status_code == 200 and read == []


def test_without_the_cache_every_request_reads_them(alice_client, settings):
    settings.ACCESS_CACHE_SECONDS = 0
    for _ in range(2):
        assert _tables_read(alice_client, "/api/threats?limit=1")[1] == list(GRANT_TABLES)


def test_losing_the_role_is_refused_on_the_next_request(alice_client, alice, analyst_group):
    assert alice_client.get("/api/threats?limit=1").status_code == 200
    alice.groups.remove(analyst_group)
    assert alice_client.get("/api/threats?limit=1").status_code == 403


def test_a_role_removed_from_the_group_side_counts_too(alice_client, alice, analyst_group):
    assert alice_client.get("/api/threats?limit=1").status_code == 200
    analyst_group.user_set.remove(alice)
    assert alice_client.get("/api/threats?limit=1").status_code == 403


def test_a_permission_taken_from_the_group_counts_for_its_members(alice_client, analyst_group):
    assert alice_client.get("/api/threats?limit=1").status_code == 200
    analyst_group.permissions.remove(Permission.objects.get(codename="view_threat"))
    assert alice_client.get("/api/threats?limit=1").status_code == 403


def test_a_deleted_group_takes_its_permissions_with_it(alice_client, analyst_group):
    assert alice_client.get("/api/threats?limit=1").status_code == 200
    analyst_group.delete()
    assert alice_client.get("/api/threats?limit=1").status_code == 403


def test_a_direct_permission_given_counts_at_once(charlie_client, charlie):
    assert charlie_client.get("/api/threats?limit=1").status_code == 403
    charlie.user_permissions.add(Permission.objects.get(codename="view_threat"))
    assert charlie_client.get("/api/threats?limit=1").status_code == 200


def test_a_role_given_counts_at_once(charlie_client, charlie):
    assert charlie_client.get("/api/threats?limit=1").status_code == 403
    readers = Group.objects.create(name="readers")
    readers.permissions.add(Permission.objects.get(codename="view_threat"))
    charlie.groups.add(readers)
    assert charlie_client.get("/api/threats?limit=1").status_code == 200


def test_scoping_a_user_and_changing_the_scope_count_at_once(alice_client, alice):
    mine, theirs = factories.make_customer(name="Mine"), factories.make_customer(name="Theirs")
    mine_threat, their_threat = (str(factories.make_threat(customer=c).pk) for c in (mine, theirs))
    assert {mine_threat, their_threat} <= _listed(alice_client)

    access = UserAccess.objects.create(user=alice)  # scoped to nothing: fails closed
    assert _listed(alice_client) == set()
    access.customers.add(mine)
    assert _listed(alice_client) == {mine_threat}
    theirs.scoped_users.add(access)  # from the customer's side
    assert _listed(alice_client) == {mine_threat, their_threat}
    access.customers.remove(theirs)
    assert _listed(alice_client) == {mine_threat}
    assert alice_client.get(f"/api/threats/{their_threat}").status_code == 404
    access.delete()  # unscoped again
    assert _listed(alice_client) == {mine_threat, their_threat}


def test_a_scope_change_from_the_customer_side_counts_too(alice_client, alice):
    mine, theirs = factories.make_customer(name="Mine"), factories.make_customer(name="Theirs")
    factories.make_threat(customer=mine)
    their_threat = str(factories.make_threat(customer=theirs).pk)
    access = UserAccess.objects.create(user=alice)
    access.customers.add(mine, theirs)
    assert their_threat in _listed(alice_client)
    theirs.scoped_users.remove(access)
    assert their_threat not in _listed(alice_client)


def test_logout_ends_the_session_at_once(alice_client):
    assert alice_client.get("/api/threats?limit=1").status_code == 200
    alice_client.post("/accounts/logout/")
    assert alice_client.get("/api/threats?limit=1").status_code == 401


def test_a_change_rolled_back_leaves_the_cached_grants_valid(alice_client, alice, analyst_group):
    from django.db import transaction

    assert alice_client.get("/api/threats?limit=1").status_code == 200
    with pytest.raises(RuntimeError), transaction.atomic():
        alice.groups.remove(analyst_group)
        raise RuntimeError("abort")
    _, read = _tables_read(alice_client, "/api/threats?limit=1")
    assert read == []  # nothing changed, so nothing was retired


def test_an_unreachable_cache_costs_the_queries_not_the_answer(alice_client, alice, analyst_group, settings):
    from tests.integration.server import free_port

    settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
                                   "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2}}}
    answer, read = _tables_read(alice_client, "/api/threats?limit=1")
    assert answer.status_code == 200 and read == list(GRANT_TABLES)
    alice.groups.remove(analyst_group)
    assert alice_client.get("/api/threats?limit=1").status_code == 403
