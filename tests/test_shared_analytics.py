"""Analytics computed at most once per ANALYTICS_SHARE_SECONDS per customer scope, shared by every
request of that scope, each snapshot exact at its own seq (threats/shared_analytics.py)."""

import pytest

from tests import factories
from threats import access, analytics, services, shared_analytics


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def sharing(settings, monkeypatch):
    settings.ANALYTICS_SHARE_SECONDS = 1
    clock = Clock()
    real = shared_analytics.shared
    monkeypatch.setattr(shared_analytics, "shared", lambda scope, compute: real(scope, compute, clock=clock))
    return clock


@pytest.mark.django_db
def test_a_second_request_within_the_window_gets_the_same_snapshot_exact_at_its_own_seq(sharing, alice):
    factories.make_threat()
    first = analytics.analytics_snapshot(alice)
    factories.make_threat()  # an event after the snapshot: the dashboard applies it from latest_seq
    second = analytics.analytics_snapshot(alice)
    assert second == first and second["latest_seq"] < services.latest_seq()
    sharing.now += 1.5
    third = analytics.analytics_snapshot(alice)
    assert third["latest_seq"] == services.latest_seq() and third["total_threats"] == first["total_threats"] + 1


@pytest.mark.django_db
def test_each_customer_scope_has_its_own_snapshot(sharing, alice, bob):
    acme, globex = factories.make_customer(slug="acme"), factories.make_customer(slug="globex")
    factories.make_threat(customer=acme)
    factories.make_threat(customer=globex)
    factories.make_threat(customer=globex)
    for user, customer in ((alice, acme), (bob, globex)):
        access.UserAccess.objects.create(user=user).customers.set([customer])
    mine, theirs = analytics.analytics_snapshot(alice), analytics.analytics_snapshot(bob)
    assert mine["total_threats"] == 1 and theirs["total_threats"] == 2  # never handed the other's


@pytest.mark.django_db
def test_a_window_of_zero_computes_every_time(settings, alice):
    settings.ANALYTICS_SHARE_SECONDS = 0
    first = analytics.analytics_snapshot(alice)
    factories.make_threat()
    assert analytics.analytics_snapshot(alice)["latest_seq"] > first["latest_seq"]
