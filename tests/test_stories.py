"""Kill-chain stories (issue 21 item 3, docs/stories.md): an entity's alerts within a customer are read
in time order with their ATT&CK tactics; a progression to a later stage flags the story once and can
raise its severity above any single alert's."""

from datetime import timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from stories import stitching
from stories.models import Story, StoryThreat
from tests import factories
from threats import services
from threats.choices import AnalysisStatus
from threats.models import Threat, ThreatEvent, ThreatGroup

pytestmark = pytest.mark.django_db
T0 = timezone.now().replace(microsecond=0) - timedelta(days=2)
RECON, INITIAL, EXECUTION, PERSISTENCE, C2, EXFIL, IMPACT = (
    "TA0043", "TA0001", "TA0002", "TA0003", "TA0011", "TA0010", "TA0040")


def mitre(*tactic_ids):
    return {"tactics": [{"id": tactic_id, "name": stitching.TACTIC_NAMES[tactic_id], "techniques": []}
                        for tactic_id in tactic_ids]}


def alert(customer, minutes, tactics=(), severity="MEDIUM", host="WS-01", stitch=True, **fields):
    """A stored, analysed alert on `host` that happened `minutes` after T0, stitched like an analysis would."""
    observables = {"host": host, **fields.pop("observables", {})}
    threat = factories.make_threat(customer=customer, analyse=False, title=fields.pop("title", f"alert at {minutes}"),
                                   observables=observables, occurred_at=T0 + timedelta(minutes=minutes))
    Threat.objects.filter(pk=threat.pk).update(**{
        "analysis_status": AnalysisStatus.COMPLETED, "severity": severity, "mitre": mitre(*tactics),
        "false_positive": {"recommendation": "likely_real_threat"}, **fields})
    threat.refresh_from_db()
    if stitch:
        stitching.stitch([threat])
    return threat


def host_story(customer, host="ws-01"):
    return Story.objects.get(customer=customer, entity_kind="host", entity=host)


# --- One alert ---------------------------------------------------------------------------------------


def test_an_alert_names_its_host_person_and_source_address(acme):
    threat = alert(acme, 0, stitch=False, observables={"user": "CORP\\Alice", "src_ip": "203.0.113.7"})
    assert stitching.entities(threat) == [("host", "ws-01"), ("user", "alice"), ("source", "203.0.113.7")]


def test_a_system_account_is_nobodys_story(acme):
    threat = alert(acme, 0, stitch=False, observables={"user": "NT AUTHORITY\\SYSTEM"})
    assert stitching.entities(threat) == [("host", "ws-01")]


def test_tactics_are_read_in_kill_chain_order_and_unknown_ids_left_out():
    found = stitching.tactics_of({"tactics": [{"id": EXFIL, "name": "Exfiltration"}, {"id": "TA9999", "name": "?"},
                                              {"id": INITIAL, "name": "Initial Access"}, "junk"]})
    assert [t["id"] for t in found] == [INITIAL, EXFIL]


# --- The progression --------------------------------------------------------------------------------------


def test_three_alerts_on_one_host_tell_one_story_in_time_order(acme):
    first = alert(acme, 0, [INITIAL], "MEDIUM")
    second = alert(acme, 30, [EXECUTION], "HIGH")
    third = alert(acme, 90, [EXFIL], "MEDIUM")
    story = host_story(acme)
    assert [(t["id"], t["threat"]) for t in story.tactics] == [
        (INITIAL, str(first.pk)), (EXECUTION, str(second.pk)), (EXFIL, str(third.pk))]
    assert story.stage_count == 3 and story.threat_count == 3
    assert (story.first_seen, story.last_seen) == (first.occurred_at, third.occurred_at)
    assert list(story.links.values_list("threat_id", flat=True)) == [first.pk, second.pk, third.pk]


def test_the_alert_reaching_a_later_stage_flags_the_story(acme):
    alert(acme, 0, [INITIAL])
    assert host_story(acme).flagged_at is None
    second = alert(acme, 30, [EXECUTION])
    story = host_story(acme)
    assert story.flagged_at is not None and story.flagged_threat_id == second.pk


def test_a_story_is_flagged_once(acme):
    alert(acme, 0, [INITIAL])
    second = alert(acme, 30, [EXECUTION])
    flagged_at = host_story(acme).flagged_at
    alert(acme, 60, [EXFIL])
    story = host_story(acme)
    assert (story.flagged_at, story.flagged_threat_id) == (flagged_at, second.pk)


def test_one_alert_with_two_tactics_is_no_progression(acme):
    alert(acme, 0, [INITIAL, EXECUTION])
    assert host_story(acme).flagged_at is None
    alert(acme, 10, [EXECUTION])  # nothing new
    assert host_story(acme).flagged_at is None


def test_an_earlier_stage_after_a_later_one_does_not_flag(acme):
    alert(acme, 0, [EXECUTION])
    alert(acme, 30, [RECON])
    story = host_story(acme)
    assert story.flagged_at is None and [t["id"] for t in story.tactics] == [EXECUTION, RECON]


def test_an_alert_without_tactics_joins_the_story_without_advancing_it(acme):
    alert(acme, 0, [INITIAL])
    alert(acme, 10, [])
    story = host_story(acme)
    assert story.threat_count == 2 and story.stage_count == 1 and story.flagged_at is None


# --- Severity ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alert_severity, reached, expected", [
    ("MEDIUM", [(INITIAL, "a"), (EXECUTION, "b")], ("MEDIUM", None)),
    ("MEDIUM", [(INITIAL, "a"), (EXECUTION, "b"), (PERSISTENCE, "c")], ("HIGH", "3 tactics")),
    ("HIGH", [(INITIAL, "a"), (EXFIL, "b")], ("CRITICAL", "Exfiltration after an earlier stage")),
    ("LOW", [(EXECUTION, "a"), (IMPACT, "b")], ("MEDIUM", "Impact after an earlier stage")),
    ("CRITICAL", [(INITIAL, "a"), (EXECUTION, "b"), (EXFIL, "c")], ("CRITICAL", None)),
    ("HIGH", [(INITIAL, "a"), (EXFIL, "a")], ("HIGH", None)),  # one alert's two tactics: no later stage
    ("", [(INITIAL, "a"), (EXECUTION, "b"), (EXFIL, "c")], ("", None)),
])
def test_story_severity_rises_one_band_for_breadth_or_a_final_stage_after_another(alert_severity, reached, expected):
    tactics = [{"id": t, "name": stitching.TACTIC_NAMES[t], "threat": threat} for t, threat in reached]
    assert stitching.story_severity(alert_severity, tactics) == expected


def test_a_stored_story_is_worse_than_its_worst_alert(acme):
    alert(acme, 0, [INITIAL], "LOW")
    alert(acme, 30, [EXECUTION], "MEDIUM")
    assert (host_story(acme).alert_severity, host_story(acme).severity) == ("MEDIUM", "MEDIUM")
    alert(acme, 60, [EXFIL], "LOW")
    assert (host_story(acme).alert_severity, host_story(acme).severity) == ("MEDIUM", "HIGH")


# --- What does not advance a story ---------------------------------------------------------------------------


def test_an_alert_the_agents_dismissed_does_not_join(acme):
    alert(acme, 0, [INITIAL])
    alert(acme, 30, [EXECUTION], false_positive={"recommendation": "likely_false_positive"})
    alert(acme, 40, [PERSISTENCE], false_positive={"recommendation": "likely_benign_true_positive"})
    story = host_story(acme)
    assert story.threat_count == 1 and story.flagged_at is None


def test_an_alert_closed_as_false_positive_stops_counting(acme):
    alert(acme, 0, [INITIAL], "LOW")
    second = alert(acme, 30, [EXECUTION], "HIGH")
    Threat.objects.filter(pk=second.pk).update(status="closed", disposition="false_positive")
    second.refresh_from_db()
    stitching.restitch(second)
    story = host_story(acme)
    assert [t["id"] for t in story.tactics] == [INITIAL] and story.alert_severity == "LOW"
    assert story.threat_count == 1 and StoryThreat.objects.get(threat=second).counts is False
    assert story.flagged_at is not None  # the flag went out; it stays


def test_a_grouped_member_is_represented_by_its_head(acme):
    head = alert(acme, 0, [INITIAL])
    group = ThreatGroup.objects.create(customer=acme, source="generic", key="k", title="g", head=head, member_count=2,
                                       first_seen=head.occurred_at, last_seen=head.occurred_at)
    member = alert(acme, 5, [EXECUTION], analysis_status=AnalysisStatus.GROUPED, group=group)
    assert not StoryThreat.objects.filter(threat=member).exists()
    assert host_story(acme).threat_count == 1


# --- Windows, order, tenants ---------------------------------------------------------------------------------


def test_an_alert_within_the_window_of_the_last_joins_and_later_starts_a_new_story(acme):
    alert(acme, 0, [INITIAL])
    alert(acme, 23 * 60, [EXECUTION])  # 23 h after the last: same story
    alert(acme, 23 * 60 + 25 * 60, [EXFIL])  # 25 h after the last: a new one
    stories = list(Story.objects.filter(entity="ws-01").order_by("first_seen"))
    assert [s.threat_count for s in stories] == [2, 1]
    assert stories[0].flagged_at is not None and stories[1].flagged_at is None


def test_a_late_arriving_earlier_alert_is_read_in_time_order(acme):
    third = alert(acme, 60, [EXFIL])
    first = alert(acme, 0, [INITIAL])
    story = host_story(acme)
    assert [(t["id"], t["threat"]) for t in story.tactics] == [(INITIAL, str(first.pk)), (EXFIL, str(third.pk))]
    assert story.flagged_threat_id == third.pk and story.first_seen == first.occurred_at


def test_stitching_twice_keeps_one_link(acme):
    threat = alert(acme, 0, [INITIAL])
    stitching.stitch([threat])
    assert StoryThreat.objects.filter(threat=threat).count() == 1 and host_story(acme).threat_count == 1


def test_stories_never_cross_customers(acme):
    globex = factories.make_customer(name="Globex")
    alert(acme, 0, [INITIAL])
    alert(globex, 30, [EXECUTION])
    assert host_story(acme).flagged_at is None and host_story(globex).flagged_at is None
    assert host_story(acme).threat_count == host_story(globex).threat_count == 1


def test_each_entity_of_an_alert_has_its_story(acme):
    threat = alert(acme, 0, [INITIAL], observables={"user": "alice", "src_ip": "203.0.113.7"})
    kinds = set(Story.objects.filter(links__threat=threat).values_list("entity_kind", "entity"))
    assert kinds == {("host", "ws-01"), ("user", "alice"), ("source", "203.0.113.7")}


# --- The hook: storing a verdict stitches, and a progression is an event -----------------------------------------


def analysed(customer, minutes, tactics, severity="HIGH"):
    threat = factories.make_threat(customer=customer, analyse=False, observables={"host": "db-7"},
                                   occurred_at=T0 + timedelta(minutes=minutes))
    verdict = factories.Verdict(severity=severity, mitre=mitre(*tactics), false_positive={"recommendation": "likely_real_threat"})
    with TestCase.captureOnCommitCallbacks(execute=True):
        return services.do_record_analyses([(threat, verdict)])[0]


def test_storing_a_verdict_stitches_and_records_story_flagged_once(acme):
    analysed(acme, 0, [INITIAL])
    second = analysed(acme, 10, [EXECUTION])
    analysed(acme, 20, [EXFIL])
    story = host_story(acme, "db-7")
    flagged = list(ThreatEvent.objects.filter(type="story.flagged"))
    assert len(flagged) == 1 and flagged[0].threat_id == second.pk
    assert flagged[0].payload["story"]["id"] == story.pk
    assert [t["id"] for t in flagged[0].payload["story"]["tactics"]] == [INITIAL, EXECUTION]
    assert flagged[0].payload["threat"]["customer_slug"] == acme.slug
    assert story.stage_count == 3 and story.severity == "CRITICAL"


def test_stitching_leaves_the_threats_own_verdict_alone(acme):
    analysed(acme, 0, [INITIAL], "LOW")
    second = analysed(acme, 10, [EXFIL], "LOW")
    second.refresh_from_db()
    assert second.severity == "LOW" and host_story(acme, "db-7").severity == "MEDIUM"


def test_closing_an_alert_as_false_positive_through_triage_takes_it_out_of_its_story(acme, alice):
    alert(acme, 0, [INITIAL], "LOW")
    second = alert(acme, 30, [EXFIL], "HIGH")
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.triage(alice, second.pk, status="closed", disposition="false_positive", reason="our scanner")
    story = host_story(acme)
    assert [t["id"] for t in story.tactics] == [INITIAL] and story.severity == "LOW"
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.triage(alice, second.pk, status="investigating")  # reopened: it counts again
    assert [t["id"] for t in host_story(acme).tactics] == [INITIAL, EXFIL]


def test_an_alert_the_agents_dismissed_joins_once_an_analyst_confirms_it(acme, alice):
    alert(acme, 0, [INITIAL])
    second = alert(acme, 30, [EXECUTION], false_positive={"recommendation": "likely_false_positive"})
    assert host_story(acme).flagged_at is None
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.triage(alice, second.pk, status="closed", disposition="true_positive", reason="it ran")
    story = host_story(acme)
    assert story.flagged_threat_id == second.pk and story.threat_count == 2
    [event] = ThreatEvent.objects.filter(type="story.flagged", threat=second)
    assert event.actor_label == "alice"  # the analyst's confirmation made the progression


# --- Batches: an ingest batch's verdicts are stored (and stitched) together -----------------------------------


def test_a_batch_is_read_in_time_order_whatever_order_it_comes_in(acme):
    third = alert(acme, 60, [EXFIL], stitch=False)
    first = alert(acme, 0, [INITIAL], stitch=False)
    second = alert(acme, 30, [EXECUTION], stitch=False)
    flagged = stitching.stitch([third, first, second])
    story = host_story(acme)
    assert [t["threat"] for t in story.tactics] == [str(first.pk), str(second.pk), str(third.pk)]
    assert flagged == [(story, str(second.pk))] and story.threat_count == 3 and story.severity == "HIGH"


def test_a_batch_with_an_older_alert_re_reads_its_story(acme):
    alert(acme, 0, [INITIAL])
    alert(acme, 60, [EXFIL])
    late = alert(acme, 30, [EXECUTION], stitch=False)
    newest = alert(acme, 90, [IMPACT], stitch=False)
    stitching.stitch([late, newest])
    story = host_story(acme)
    assert [t["id"] for t in story.tactics] == [INITIAL, EXECUTION, EXFIL, IMPACT] and story.threat_count == 4


def test_a_batch_over_two_customers_and_entities_keeps_them_apart(acme):
    globex = factories.make_customer(name="Globex")
    batch = [alert(acme, 0, [INITIAL], stitch=False), alert(globex, 10, [EXECUTION], stitch=False),
             alert(acme, 20, [EXECUTION], host="WS-02", stitch=False)]
    assert stitching.stitch(batch) == []
    assert sorted(Story.objects.values_list("customer__name", "entity", "threat_count")) == [
        ("Acme", "ws-01", 1), ("Acme", "ws-02", 1), ("Globex", "ws-01", 1)]


def test_retention_takes_a_story_whose_alerts_are_all_gone_and_keeps_the_others(acme, settings):
    alert(acme, 0, [INITIAL], host="old-host")
    alert(acme, 10, [INITIAL])
    alert(acme, 20, [EXECUTION])
    settings.MAX_STORED_THREATS = 2
    services.enforce_retention()
    assert list(Story.objects.values_list("entity", flat=True)) == ["ws-01"]


def test_a_flag_is_counted_in_metrics_by_the_storys_severity(acme, client):
    def flagged_high():
        text = client.get("/metrics").content.decode()
        prefix = 'soc_stories_flagged_total{severity="HIGH"} '
        return float(next(line for line in text.splitlines() if line.startswith(prefix))[len(prefix):])

    before = flagged_high()
    analysed(acme, 0, [INITIAL])
    analysed(acme, 10, [EXECUTION])  # HIGH alerts, two tactics: a HIGH story
    assert flagged_high() == before + 1
