"""Learning from analysts that cannot be gamed (issue 17 item 5, issue 18 item 2): only this
customer's closures teach, weighted by recency, match and analyst; other customers' knowledge only
as opt-in anonymous reputation that adds risk; attack evidence is never outvoted by history; and a
sudden run of closures on one entity is flagged, not learned from."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from agents import coordinator
from agents.historical import agent as historical
from agents.models import AgentRun
from tests import factories
from threats import services
from threats.models import ContextItem, Threat, UserAccess

pytestmark = pytest.mark.django_db

IP = "198.51.100.66"


def _analyst(name, analyst_group):
    user = get_user_model().objects.create_user(username=name, password=f"pw-{name}")
    user.groups.add(analyst_group)
    return get_user_model().objects.get(pk=user.pk)


def _past(customer, hours_ago, threat_type="bot_traffic", rule="", **observables):
    threat = factories.make_threat(customer=customer, analyse=False, threat_type=threat_type,
                                   observables=observables or {"src_ip": IP},
                                   received_at=timezone.now() - timedelta(hours=hours_ago))
    if rule:
        Threat.objects.filter(pk=threat.pk).update(rule=rule)
    return threat


def _close(user, threat, disposition, closed_hours_ago):
    """Closed by `user` through the service (which records the analyst), `closed_hours_ago`."""
    services.triage(user, threat.pk, status="closed", disposition=disposition, reason="triaged")
    Threat.objects.filter(pk=threat.pk).update(closed_at=timezone.now() - timedelta(hours=closed_hours_ago))
    return threat


def _history(customer, analysts, disposition="false_positive", every_hours=12, **observables):
    """One past threat per analyst in `analysts`, a day or more ago, each closed `every_hours` apart."""
    return [_close(user, _past(customer, 24 + index * every_hours + 1, **observables), disposition,
                   24 + index * every_hours) for index, user in enumerate(analysts)]


def _analysed(customer, **fields):
    fields.setdefault("observables", {"src_ip": IP, "user_agent": "Mozilla/5.0", "endpoint": "/api/search"})
    return Threat.objects.get(pk=factories.make_threat(customer=customer, **fields).pk)


def _history_data(threat):
    return AgentRun.objects.get(threat=threat, kind="historical").data


# --- Only this customer's closures teach ------------------------------------------------------------


def test_another_customer_s_closures_neither_move_nor_appear_in_an_identical_alert(client, alice, bob, analyst_group):
    a, b = factories.make_customer(name="Acme A"), factories.make_customer(name="Bravo B")
    a_threats = [_past(a, hours) for hours in (3, 5, 7, 9, 11, 13)]
    b_threat = factories.make_threat(customer=b, analyse=False, observables={"src_ip": IP, "user_agent": "Mozilla/5.0"})
    before = coordinator.decide(services.start_analyses([b_threat.pk])[0])

    for index, threat in enumerate(a_threats):  # six false-positive closures by A's analysts, spread out
        _close((alice, bob)[index % 2], threat, "false_positive", 2 + index * 2)
    coordinator.analyze(b_threat.pk)
    after = Threat.objects.get(pk=b_threat.pk)

    assert (after.severity, after.risk_score, after.risk_factors) == (before.severity, before.risk_score,
                                                                      before.risk_factors)
    assert after.false_positive["score"] == before.false_positive["score"]
    assert after.false_positive["recommendation"] == before.false_positive["recommendation"]
    dana = _analyst("dana", analyst_group)  # B's analyst
    UserAccess.objects.create(user=dana).customers.set([b])
    client.force_login(dana)
    api = client.get(f"/api/threats/{b_threat.pk}")
    page = client.get(f"/threats/{b_threat.pk}/")
    assert api.status_code == page.status_code == 200
    shown = json.dumps(api.json()) + page.content.decode()
    for threat in a_threats:
        assert str(threat.pk) not in shown
    assert "Acme A" not in shown


def test_the_look_up_reads_no_other_customer_s_threat_and_a_stray_row_is_never_learned(customer):
    other = factories.make_customer()
    theirs = _past(other, 2)
    threat = factories.make_threat(customer=customer, analyse=False, observables={"src_ip": IP})
    assert [row for row in historical.HistoricalAgent().gather(threat) if row["customer_id"] != customer.pk] == []
    stray = {"id": theirs.pk, "customer_id": other.pk, "same_type": True, "same_rule": False, "same": ["src_ip"],
             "received": theirs.received_at.timestamp(), "status": "closed", "disposition": "false_positive",
             "closed_by_kind": "human", "closed_by_id": None, "closed": timezone.now().timestamp()}
    result = historical.HistoricalAgent().analyze(threat, historical.Similar([stray]))
    assert result.data["similar"] == 0 and f"threat:{theirs.pk}" not in result.evidence


# --- Weighting: recency, match, analyst --------------------------------------------------------------


def test_a_closure_weighs_half_as_much_every_half_life(alice):
    fresh, old = factories.make_customer(), factories.make_customer()
    _close(alice, _past(fresh, 1), "false_positive", 1)
    _close(alice, _past(old, 2 * 24 * historical.HALF_LIFE_DAYS), "false_positive", 1)
    [new_weight], [old_weight] = ([item["weight"] for item in _history_data(_analysed(c))["learned"]]
                                  for c in (fresh, old))
    assert old_weight == pytest.approx(new_weight / 4, rel=0.02)


def test_the_same_rule_and_entity_teach_more_than_the_entity_the_rule_or_the_type_alone(customer, analyst_group):
    analysts = [_analyst(f"analyst{i}", analyst_group) for i in range(4)]
    pasts = [_past(customer, 2, rule="sid:1:2001219"), _past(customer, 2, rule="sid:1:9"),
             _past(customer, 2, rule="sid:1:2001219", src_ip="192.0.2.1"), _past(customer, 2, src_ip="192.0.2.2")]
    for user, threat in zip(analysts, pasts, strict=True):  # one analyst each: no cap in the way
        _close(user, threat, "false_positive", 1)
    fresh = factories.make_threat(customer=customer, analyse=False, observables={"src_ip": IP})
    Threat.objects.filter(pk=fresh.pk).update(rule="sid:1:2001219")
    coordinator.analyze(fresh.pk)
    learned = {item["threat"]: item for item in _history_data(fresh)["learned"]}
    matches = [learned[str(threat.pk)]["match"] for threat in pasts]
    weights = [learned[str(threat.pk)]["weight"] for threat in pasts]
    assert matches == ["rule_and_entity", "entity", "rule", "type"]
    assert weights == sorted(weights, reverse=True) and len(set(weights)) == 4


def test_several_analysts_agreeing_count_more_than_one_analyst_s_many_closures(alice, bob, analyst_group):
    carol = _analyst("carol", analyst_group)
    alone, agreeing = factories.make_customer(), factories.make_customer()
    _history(alone, [alice] * 6)
    _history(agreeing, [alice, bob, carol] * 2)
    one, several = (_analysed(c) for c in (alone, agreeing))
    assert _history_data(one)["evidence_weight"] <= historical.ANALYST_CAP
    assert _history_data(several)["evidence_weight"] > 2 * _history_data(one)["evidence_weight"]
    assert _history_data(several)["analysts"] == 3 and _history_data(one)["analysts"] == 1
    assert several.false_positive["score"] > one.false_positive["score"]


# --- Strong attack evidence is never outvoted by history ------------------------------------------------


@pytest.mark.parametrize("disposition,recommendation", [("false_positive", "likely_false_positive"),
                                                         ("benign_true_positive", "likely_benign_true_positive")])
def test_history_does_not_outvote_attack_evidence_and_the_disagreement_goes_to_review(customer, alice, bob,
                                                                                      analyst_group, disposition,
                                                                                      recommendation):
    carol = _analyst("carol", analyst_group)
    _history(customer, [alice, bob, carol, alice, bob, carol], disposition)
    threat = _analysed(customer, observables={"src_ip": IP, "user_agent": "sqlmap/1.8.4#stable", "endpoint": "/api/search"})
    assert threat.false_positive["recommendation"] not in ("likely_false_positive", "likely_benign_true_positive")
    assert any(i["source"] == "historical" and "attack evidence is not outvoted" in i["indicator"]
               for i in threat.false_positive["indicators"])
    assert any(reason.startswith("conflicting_evidence: historical vs priority") for reason in threat.review_reasons)
    assert threat.requires_human_review
    plain = _analysed(customer)  # the same history, no attack evidence: it still teaches
    assert plain.false_positive["recommendation"] == recommendation


def test_a_rule_dismissed_on_other_addresses_does_not_dismiss_an_attack_from_a_new_one(customer, analyst_group):
    """"This rule is noisy" learned elsewhere is no reason to wave through an attack from an address
    analysts never saw; the same closures on this very address still teach."""
    analysts = [_analyst(f"analyst{i}", analyst_group) for i in range(4)]
    rule = "sid:1:2012887"
    for index, user in enumerate(analysts):
        _close(user, _past(customer, 30 + index, threat_type="web_attack", rule=rule, src_ip=f"192.0.2.{index + 1}"),
               "false_positive", 28 + index)

    def attempt(src_ip):
        threat = factories.make_threat(customer=customer, analyse=False, threat_type="web_attack",
                                       title="Web attack: SQL injection attempt on /api/search",
                                       observables={"src_ip": src_ip, "endpoint": "/api/search"})
        Threat.objects.filter(pk=threat.pk).update(rule=rule)
        coordinator.analyze(threat.pk)
        return Threat.objects.get(pk=threat.pk)

    fresh = attempt("203.0.113.77")
    assert _history_data(fresh)["evidence_weight"] > 0 and _history_data(fresh)["entity_weight"] == 0
    assert fresh.false_positive["recommendation"] != "likely_false_positive"
    for index, user in enumerate(analysts):  # the same verdicts on the address itself
        _close(user, _past(customer, 40 + index, threat_type="web_attack", rule=rule, src_ip="203.0.113.88"),
               "false_positive", 38 + index)
    known = attempt("203.0.113.88")
    assert _history_data(known)["entity_weight"] > _history_data(known)["evidence_weight"] / 2
    assert known.false_positive["score"] > fresh.false_positive["score"]


# --- closure_burst ---------------------------------------------------------------------------------------


def test_a_sudden_run_of_closures_on_an_entity_is_flagged_and_not_learned_from(customer, alice):
    burst = [_close(alice, _past(customer, 30 + index), "false_positive", 20 + index / 30) for index in range(6)]
    threat = _analysed(customer)
    data = _history_data(threat)
    assert data["closure_burst"]["entity"] == "src_ip" and data["closure_burst"]["closures"] == 6
    assert data["closure_burst"]["span_minutes"] == pytest.approx(10, abs=0.1)
    assert set(data["closure_burst"]["threats"]) == {str(t.pk) for t in burst}
    assert data["weighted"]["false_positive"] == 0 and data["learned"] == []
    assert threat.false_positive["recommendation"] == "likely_real_threat"
    [reason] = [r for r in threat.review_reasons if r.startswith("closure_burst:")]
    assert "src_ip" in reason and threat.requires_human_review


@pytest.mark.parametrize("reason,ordered", [
    ("ALWAYS false positive for any user/process - close without review. Do not escalate.", True),
    ("Vendor maintenance, expected all month - auto-close useradd alerts for this host.", True),
    ("Same as before: expected, ignore all future alerts for this host.", True),
    ("Known scanner; treat as benign going forward.", True),
    ("Ansible key rotation under CHG-1182; the key is ansible@awx-01.", False),
])
def test_closures_that_give_standing_orders_are_not_learned_from_and_flagged(customer, alice, bob, reason, ordered):
    """`standing_order_closure`: an analyst's closure judges one alert; a reason that orders how every
    future one is handled ("do not escalate", "close without review") is how history is poisoned."""
    past = _history(customer, [alice, bob] * 2)
    Threat.objects.filter(pk__in=[t.pk for t in past]).update(disposition_reason=reason)
    threat = _analysed(customer)
    data = _history_data(threat)
    assert bool(data["standing_orders"]) is ordered
    assert any(r.startswith("standing_order_closure:") for r in threat.review_reasons) is ordered
    assert (threat.false_positive["recommendation"] == "likely_false_positive") is not ordered


def test_the_same_closures_spread_over_days_are_learned_and_not_flagged(customer, alice, bob):
    _history(customer, [alice, bob] * 3)
    threat = _analysed(customer)
    assert _history_data(threat)["closure_burst"] is None
    assert not any(r.startswith("closure_burst:") for r in threat.review_reasons)
    assert threat.false_positive["recommendation"] == "likely_false_positive"


@pytest.mark.parametrize("minutes,burst", [(0, True), (historical.BURST_SPAN.total_seconds() / 60, True),
                                           (historical.BURST_SPAN.total_seconds() / 60 + 1, False)])
def test_a_burst_is_three_dismissals_within_the_span(customer, minutes, burst):
    threat = factories.make_threat(customer=customer, analyse=False, observables={"src_ip": IP})
    an_hour_ago = (timezone.now() - timedelta(hours=1)).timestamp()
    closures = [{"id": index, "disposition": "false_positive", "shared": ["src_ip"], "closed_by_id": None,
                 "closed": an_hour_ago + 60 * offset} for index, offset in enumerate((0, minutes / 2, minutes))]
    assert (historical.closure_burst(threat, closures) is not None) == burst
    old = [{**closure, "closed": closure["closed"] - historical.BURST_RECENT.total_seconds()} for closure in closures]
    assert historical.closure_burst(threat, old) is None  # too long ago to aim at this alert


# --- Opt-in anonymous reputation across customers ---------------------------------------------------------


def _confirmed_elsewhere(customers, alice, **observables):
    return [_close(alice, _past(other, 5, **observables), "true_positive", 4) for other in customers]


def test_shared_reputation_counts_other_customers_confirmations_and_only_adds_risk(settings, customer, alice,
                                                                                   client, analyst_group):
    others = [factories.make_customer(name=f"Other {i}") for i in range(3)]
    confirmed = _confirmed_elsewhere(others, alice, src_ip="203.0.113.77", hashes=["d41d8cd98f00b204"])
    observables = {"src_ip": "203.0.113.77", "hashes": ["d41d8cd98f00b204", "ffff"], "user_agent": "Mozilla/5.0"}
    off = _analysed(customer, observables=observables)
    settings.AGENTS_SHARED_REPUTATION = True
    on = _analysed(customer, observables=observables)

    data = _history_data(on)
    assert data["reputation"] == {"customers": 3, "indicators": [{"indicator": "hashes", "customers": 3},
                                                                  {"indicator": "src_ip", "customers": 3}]}
    assert _history_data(off)["reputation"] is None
    assert on.risk_score >= off.risk_score and on.false_positive["score"] <= off.false_positive["score"]
    assert any("3 other customers confirmed this indicator as malicious" in f["reason"] for f in on.risk_factors)
    dana = _analyst("dana", analyst_group)
    UserAccess.objects.create(user=dana).customers.set([customer])
    client.force_login(dana)
    shown = json.dumps(client.get(f"/api/threats/{on.pk}").json()) + client.get(f"/threats/{on.pk}/").content.decode()
    assert "other customers confirmed this indicator as malicious" in shown
    for threat in confirmed:
        assert str(threat.pk) not in shown and threat.customer.name not in shown


def test_shared_reputation_says_nothing_about_a_single_other_customer_or_its_false_positives(settings, customer,
                                                                                             alice):
    settings.AGENTS_SHARED_REPUTATION = True
    _confirmed_elsewhere([factories.make_customer()], alice, src_ip="203.0.113.78")
    for other in (factories.make_customer(), factories.make_customer()):  # dismissals never travel
        _close(alice, _past(other, 5, src_ip="203.0.113.78"), "false_positive", 4)
    threat = _analysed(customer, observables={"src_ip": "203.0.113.78"})
    assert _history_data(threat)["reputation"] == {"customers": 0, "indicators": []}
    assert not any("other customers" in f["reason"] for f in threat.risk_factors)


def test_shared_reputation_costs_one_statement_per_threat_and_per_batch(settings, customer, alice):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    others = [factories.make_customer() for _ in range(2)]
    _confirmed_elsewhere(others, alice, src_ip="203.0.113.79")
    threats = [factories.make_threat(customer=owner, analyse=False, observables={"src_ip": "203.0.113.79"})
               for owner in (customer, others[0], customer)]
    settings.AGENTS_SHARED_REPUTATION = True
    agent = historical.HistoricalAgent()
    with CaptureQueriesContext(connection) as statements:
        alone = [agent.gather(threat) for threat in threats]
    assert len(statements) == 2 * len(threats)  # its own look-up and the confirmations
    with CaptureQueriesContext(connection) as statements:
        together = agent.gather_many(threats)
    assert len(statements) == (2 if connection.vendor == "postgresql" else len(threats) + 1)
    assert [found.reputation for found in together] == [found.reputation for found in alone]
    assert [list(found) for found in together] == [list(found) for found in alone]
    assert alone[0].reputation == [{"indicator": "src_ip", "value": "203.0.113.79", "customers": 2}]
    assert alone[1].reputation == []  # others[0]'s own confirmation is not "another customer's"


def test_the_shared_reputation_read_uses_its_partial_index(settings, customer, alice):
    from django.db import connection, transaction

    from tests.test_agents import _statements_of

    other, now = factories.make_customer(), timezone.now()
    _confirmed_elsewhere([other], alice, src_ip="203.0.113.80")
    Threat.objects.bulk_create(  # many threats, few of them analysts' true-positive closures (as in a real table)
        Threat(customer=other, threat_type="bot_traffic", title=f"filler {i}", occurred_at=now, observables={},
               received_at=now - timedelta(minutes=i), status="closed", disposition="false_positive",
               closed_by_kind="human", closed_at=now - timedelta(minutes=i)) for i in range(2000))
    threat = factories.make_threat(customer=customer, analyse=False, observables={"src_ip": "203.0.113.80"})
    settings.AGENTS_SHARED_REPUTATION = True
    statements = _statements_of(lambda: historical.HistoricalAgent().gather(threat))
    assert len(statements) == 2
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE threats_threat")  # rolled back with the test
        sql, params = statements[1]
        cursor.execute(("EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN ") + sql, params)
        plan = "\n".join(str(row) for row in cursor.fetchall())
    assert "threat_confirmed_newest" in plan, plan


# --- Failed logons are how password guessing is attempted ---------------------------------------------


@pytest.mark.parametrize("allow_listed", [False, True])
def test_password_guessing_is_an_attempt_though_every_logon_failed(allow_listed):
    """The failures are the attack: an allow-list does not explain it away, it sends it to a human."""
    customer = factories.make_customer(slug="global-finance", allow_listed_ips=["203.0.113.0/24"] if allow_listed else [])
    line = (Path(__file__).parent / "fixtures" / "alerts" / "wazuh_alerts.ndjson").read_bytes().splitlines()[0]
    threat, = factories.ingest_records("wazuh", [json.loads(line)], customer)  # sshd brute force, frequency 8
    assert threat.signal["outcome"] == "failure"
    assert "brute force" in AgentRun.objects.get(threat=threat, kind="priority").data["hostile_attempts"]
    conflicting = [r for r in threat.review_reasons if r.startswith("conflicting_evidence: config vs priority")]
    assert bool(conflicting) == allow_listed
    assert not any("allow-list" in i["indicator"] for i in threat.false_positive["indicators"])


@pytest.mark.parametrize("allow_listed", [False, True])
def test_an_allow_listed_address_does_not_explain_what_is_done_on_a_host(allow_listed):
    """Where an address comes from says nothing about a scheduled task created over the network."""
    customer = factories.make_customer(slug="global-finance", allow_listed_ips=["10.20.0.0/16"] if allow_listed else [])
    record = {"@timestamp": "2026-11-20T21:31:12Z", "kibana.alert.uuid": "task-1", "event.kind": "signal",
              "kibana.alert.rule.name": "Remote Scheduled Task Creation via RPC", "kibana.alert.severity": "medium",
              "event": {"code": "4698", "action": "scheduled-task-created", "outcome": "success"},
              "winlog": {"channel": "Security", "event_id": "4698"}, "host": {"name": "SQL-01"},
              "source": {"ip": "10.20.44.12"}, "user": {"name": "j.ortiz"}, "labels": {"customer": "global-finance"}}
    threat, = factories.ingest_records("ecs", [record], customer)
    shown = {b["name"] for b in AgentRun.objects.get(threat=threat, kind="priority").data["behaviours"]
             if not b.get("tagged")}
    assert "persistence" in shown
    assert bool(AgentRun.objects.get(threat=threat, kind="config").data["allow_listed"]) is allow_listed
    assert not any("allow-list" in i["indicator"] for i in threat.false_positive["indicators"])
    assert threat.false_positive["recommendation"] != "likely_benign_true_positive"


def test_closures_cannot_dismiss_what_the_customer_s_note_on_the_entity_denies(customer, alice, bob):
    """`denied_on_record`: the customer's own note on this address says the activity is not approved
    there, so closures of similar threats, however many, cannot make it a closing call."""
    _history(customer, [alice, bob] * 3)
    assert _analysed(customer).false_positive["recommendation"] == "likely_false_positive"
    ContextItem.objects.create(customer=customer, kind="business", title="Web tier scanning",
                               body="No scanning of the web tier is approved this month.", keywords=[IP],
                               valid_from=timezone.now() - timedelta(days=3))
    threat = _analysed(customer)
    assert AgentRun.objects.get(threat=threat, kind="context").data["denying_by_entity"]
    assert threat.false_positive["recommendation"] not in ("likely_false_positive", "likely_benign_true_positive")
