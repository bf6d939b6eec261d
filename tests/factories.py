"""Build valid objects in one call; keyword arguments override the defaults."""

import contextlib
import itertools
from datetime import timedelta
from unittest import mock

from django.test import TestCase
from django.utils import timezone
from django.utils.text import slugify

from threats import services
from threats.models import Customer, InfraEvent

_names = itertools.count(1)


def make_customer(**fields):
    name = fields.pop("name", f"Customer {next(_names)}")
    defaults = dict(slug=slugify(name), tier="business", rate_limit_per_minute=100, timezone="UTC")
    return Customer.objects.create(name=name, **{**defaults, **fields})


def make_threat(customer=None, analyse=True, **fields):
    """A stored threat through the service layer (so its `threat.created` event exists).

    With `analyse=True` (and the eager test settings) the agents have run when this returns.
    """
    from agents.tasks import analysis_inline

    defaults = dict(
        threat_type="bot_traffic",
        title="Automated traffic: 1,200 requests in 10 min from 192.0.2.10",
        occurred_at=timezone.now() - timedelta(seconds=5),
        observables={"src_ip": "192.0.2.10", "user_agent": "curl/8.7.1", "country": "US", "endpoint": "/api/login"},
        raw={"metadata": {"request_count": 1200, "window_minutes": 10, "requests_per_minute": 120}},
        actor=services.SYSTEM,
    )
    customer = customer or make_customer()
    # Tests run inside a transaction, so on-commit hooks (broadcast, enqueue, retention) are run
    # here explicitly, as a real commit would.
    skip_analysis = contextlib.nullcontext() if analyse else mock.patch("agents.tasks._submit")
    with skip_analysis, TestCase.captureOnCommitCallbacks(execute=True), analysis_inline():
        threat = services.do_create_threat(customer=customer, **{**defaults, **fields})
    threat.refresh_from_db()
    return threat


def make_infra_event(customer=None, minutes_ago=10, **fields):
    defaults = dict(kind="deployment", service="api", description="Release 1.2.3")
    started = timezone.now() - timedelta(minutes=minutes_ago)
    return InfraEvent.objects.create(customer=customer, started_at=started, **{**defaults, **fields})


def ingest_records(fmt, records, customer):
    """Each record (a dict) through batch ingestion as the API takes it, one commit each (so the
    on-commit analysis runs, and a later record sees the earlier ones analysed); the customer's threats."""
    import json

    from threats import ingest
    from threats.models import Threat

    for record in records:
        with TestCase.captureOnCommitCallbacks(execute=True):
            ingest.ingest(fmt, ingest.decode_body(json.dumps(record).encode(), "application/x-ndjson"),
                          default_customer=customer, actor_label="test")
    return list(Threat.objects.filter(customer=customer).order_by("occurred_at"))


class Verdict:
    """What agents.coordinator hands to services: the threat's verdict fields and its agent runs."""

    def __init__(self, **fields):
        self.fields = fields
        self.agent_runs = [{"kind": "priority", "status": "completed"}]

    def threat_fields(self):
        return self.fields
