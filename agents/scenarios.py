"""Labelled scenarios: stored situations with the verdict an experienced analyst expects.

Each JSON file in tests/fixtures/scenarios/ describes a customer, the stored history (past threats
with analyst dispositions, each optionally with the analyst who closed it, `closed_by`, and how
many minutes after it arrived, `closed_after_minutes`), infrastructure events, context items and one signal, all at fixed
times (business hours and look-back windows make the verdict depend on the clock), plus `expect`:
acceptable severities, the review flag, key ATT&CK technique ids and optionally the
false-positive recommendation and whether adversarial input is detected.

`load()` writes the records (fixture loading, like tests/factories.py, so it writes rows directly);
`check()` compares a verdict with the expectation. The test suite and bench/bench_analysis.py
both use them; callers run each scenario inside a transaction they roll back.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.utils.text import slugify

from threats import generator
from threats.choices import AnalysisStatus, CLOSED_STATUSES, Status
from threats.models import ContextItem, Customer, InfraEvent, Threat

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "scenarios"


@dataclass
class Scenario:
    name: str
    path: Path
    spec: dict

    @property
    def expect(self):
        return self.spec["expect"]


def all_scenarios(folder=FIXTURES):
    return [Scenario(p.stem, p, json.loads(p.read_text("utf-8"))) for p in sorted(folder.glob("*.json"))]


def load(scenario):
    """Create the scenario's records; returns the signal's Threat (not yet analysed)."""
    spec = scenario.spec
    at = datetime.fromisoformat(spec["at"])
    customer = _customer(spec["customer"])
    for index, past in enumerate(spec.get("history", [])):
        _past_threat(customer, at, index, past)
    for event in spec.get("infra_events", []):
        started = at - timedelta(minutes=event["minutes_before"])
        ended = started + timedelta(minutes=event["duration_minutes"]) if event.get("duration_minutes") else None
        InfraEvent.objects.create(customer=None if event.get("shared") else customer, kind=event["kind"],
                                  service=event.get("service", ""), description=event["description"],
                                  started_at=started, ended_at=ended)
    for item in spec.get("context_items", []):
        ContextItem.objects.create(customer=None if item.get("shared") else customer, kind=item["kind"],
                                   title=item["title"], body=item.get("body", ""),
                                   threat_types=item.get("threat_types", []), keywords=item.get("keywords", []),
                                   valid_from=at - timedelta(days=1), valid_until=at + timedelta(days=1))
    sig = spec["signal"]
    return Threat.objects.create(
        source=sig.get("source", "generator"), threat_type=sig["threat_type"], title=sig["title"],
        customer=customer, occurred_at=at, received_at=at + timedelta(seconds=sig.get("delay_seconds", 3)),
        observables=sig.get("observables", {}), raw=sig.get("raw", {}), mitre_hints=sig.get("mitre_hints", []),
        severity_hint=sig.get("severity_hint", ""),
    )


def check(scenario, threat):
    """The list of mismatches between the analysed threat and the expectation (empty = passed)."""
    expect, problems = scenario.expect, []
    if threat.severity not in expect["severity"]:
        problems.append(f"severity {threat.severity} (risk {threat.risk_score}) not in {expect['severity']}")
    if threat.requires_human_review != expect["review"]:
        problems.append(f"review {threat.requires_human_review} != {expect['review']} ({threat.review_reasons})")
    found = {t["technique_id"] for t in threat.mitre.get("techniques", [])}
    missing = {t for t in expect.get("techniques", []) if not technique_found(t, threat.mitre.get("techniques", []))}
    if missing:
        problems.append(f"techniques {sorted(missing)} missing from {sorted(found)}")
    if "false_positive" in expect and threat.false_positive["recommendation"] not in expect["false_positive"]:
        problems.append(f"false-positive recommendation {threat.false_positive['recommendation']} "
                        f"not in {expect['false_positive']}")
    if "adversarial" in expect and threat.adversarial["detected"] != expect["adversarial"]:
        problems.append(f"adversarial detected {threat.adversarial['detected']} != {expect['adversarial']}")
    return problems


def technique_found(expected, techniques):
    """An expected technique is found as itself, its current id (a revoked one resolves to its
    replacement), or one of their sub-techniques: saying more precisely what happened is no miss."""
    from .priority import attack

    current = attack.technique(expected)
    wanted = {expected.upper(), current["technique_id"]} if current else {expected.upper()}
    for technique in techniques:
        ids = {technique["technique_id"], technique.get("original_id", "")}
        if ids & wanted or {i.split(".")[0] for i in ids if "." in i} & wanted:
            return True
    return False


def _customer(spec):
    if isinstance(spec, str):
        return Customer.objects.create(name=spec, slug=slugify(spec), **generator.CUSTOMER_CATALOGUE[spec])
    fields = dict(spec)
    name = fields.pop("name")
    return Customer.objects.create(name=name, slug=slugify(name), **fields)


def _past_threat(customer, at, index, past):
    received = at - timedelta(days=past.get("days_before", 1), minutes=index)
    disposition = past.get("disposition", "")
    status = past.get("status", Status.CLOSED if disposition else Status.NEW)
    closed = status in CLOSED_STATUSES
    closed_by = get_user_model().objects.get_or_create(username=past["closed_by"])[0] if past.get("closed_by") else None
    return Threat.objects.create(
        source=past.get("source", "generator"), threat_type=past["threat_type"],
        title=past.get("title", f"Past {past['threat_type']} #{index + 1}"),
        customer=_other_customer(past["customer"]) if past.get("customer") else customer,
        occurred_at=received, received_at=received, observables=past.get("observables", {}),
        analysis_status=AnalysisStatus.COMPLETED, status=status, disposition=disposition,
        disposition_reason=past.get("reason", "scenario history" if disposition else ""),
        closed_at=received + timedelta(minutes=past.get("closed_after_minutes", 60)) if closed else None,
        closed_by_kind=past.get("closed_by_kind", "human") if closed else "", closed_by=closed_by if closed else None,
    )


def _other_customer(name):
    found = Customer.objects.filter(name=name).first()
    return found or Customer.objects.create(name=name, slug=slugify(name))
