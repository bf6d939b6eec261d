"""Each importer maps its format into the Threat fields, from the sample files in
tests/fixtures/alerts/ (Wazuh alerts.json lines and a Shuffle envelope, Suricata eve.json, Elastic
Security alerts and a `_search` answer, the generic shape). Pure functions: no database."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from threats.importers import FORMATS, ItemError, Skip, detect_format, ecs, generic, suricata, wazuh
from threats.importers.common import Reader, dig, parse_time, scheduled_command, tactic_ids

FIXTURES = Path(__file__).parent / "fixtures" / "alerts"


def lines(name):
    """Decoded lines of an NDJSON fixture (None for a malformed or blank line), by line number."""
    decoded = {}
    for number, line in enumerate((FIXTURES / name).read_text(encoding="utf-8").splitlines(), start=1):
        try:
            decoded[number] = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            decoded[number] = None
    return decoded


def document(name):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


WAZUH = lines("wazuh_alerts.ndjson")
EVE = lines("suricata_eve.ndjson")
ECS = lines("ecs_alerts.ndjson")
GENERIC = document("generic_alerts.json")


# --- Wazuh ------------------------------------------------------------------------------------------


def test_a_wazuh_alert_maps_to_the_threat_fields():
    item = WAZUH[1]
    alert = wazuh.parse(item)
    assert alert.source == "wazuh"
    assert alert.source_ref == "wazuh-manager-1:1795162502.1047261"  # `id`, qualified by the manager
    assert alert.occurred_at == datetime(2026, 11, 20, 8, 15, 2, 347000, tzinfo=UTC)
    assert alert.title == "sshd: brute force trying to get access to the system. Non existent user."
    assert alert.threat_type == "wazuh:sshd"  # first rule group after the log channel ("syslog")
    assert alert.severity_hint == "MEDIUM"  # level 10
    assert alert.observables == {"src_ip": "203.0.113.45", "src_port": 51422, "user": "admin", "host": "web-01"}
    assert alert.mitre_hints == ["T1110"]
    assert alert.tactics == ["TA0006"]  # "Credential Access" is a name: turned into its id
    assert alert.customer_hint == "global-finance"  # agent.labels.customer
    assert alert.group_key == "rule:5712|web-01|203.0.113.45"
    assert alert.raw is item


@pytest.mark.parametrize("level, severity", [(0, "LOW"), (3, "LOW"), (6, "LOW"), (7, "MEDIUM"), (11, "MEDIUM"),
                                             (12, "HIGH"), (14, "HIGH"), (15, "CRITICAL")])
def test_wazuh_levels_map_through_the_default_table(level, severity):
    item = {**WAZUH[1], "rule": {**WAZUH[1]["rule"], "level": level}}
    assert wazuh.parse(item).severity_hint == severity


def test_the_wazuh_level_table_is_a_setting(settings):
    settings.INGEST_WAZUH_LEVELS = "0:LOW, 5:HIGH, 10:CRITICAL"
    assert wazuh.parse(WAZUH[4]).severity_hint == "HIGH"  # level 5
    assert wazuh.parse(WAZUH[1]).severity_hint == "CRITICAL"  # level 10
    settings.INGEST_WAZUH_LEVELS = [("0", "LOW"), ("5", "CRITICAL")]  # the form settings.py reads from the env
    assert wazuh.parse(WAZUH[4]).severity_hint == "CRITICAL"
    settings.INGEST_WAZUH_LEVELS = "3:LOW,9:ultra"
    with pytest.raises(ImproperlyConfigured):
        wazuh.parse(WAZUH[1])
    settings.INGEST_WAZUH_LEVELS = "5:LOW,12:HIGH"
    with pytest.raises(ImproperlyConfigured, match="level 0"):
        wazuh.parse(WAZUH[1])


def test_any_wazuh_rule_is_accepted_with_its_observables():
    syscheck, windows, sysmon, virustotal = (wazuh.parse(WAZUH[n]) for n in (6, 7, 8, 11))
    assert syscheck.threat_type == "wazuh:syscheck" and syscheck.tactics == ["TA0040"]
    assert "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" in syscheck.observables["hashes"]
    assert windows.observables["user"] == "svc_backup" and windows.observables["src_ip"] == "10.0.5.42"
    assert windows.threat_type == "wazuh:windows_security"
    assert windows.tactics == ["TA0001", "TA0003", "TA0004", "TA0005"]
    assert sysmon.severity_hint == "HIGH" and sysmon.mitre_hints == ["T1059.001", "T1027"]
    assert sysmon.observables["command_line"].startswith("powershell.exe -NoP -W Hidden -Enc")
    assert sysmon.observables["process"].endswith("powershell.exe")
    # Sysmon packs digests in one string: SHA1=...,MD5=...,SHA256=...,IMPHASH=...
    assert sysmon.observables["hashes"] == [
        "6cbce4a295c163791b60fc23d285e6d84f28ee4c", "7353f60b1739074eb17c5f4dddefe239",
        "de96a6e69944335375dc1ac238336066889d9ffc7d73628ef4fe1b1b160ab32c",
    ]
    assert virustotal.observables["hashes"] == ["ccef46c7edf9131ccffc47bd69eb743b",
                                                "4d8f5b0c2a7e3f9d1b6c8a0e2f4d6b8a0c2e4f6a"]


def test_a_wazuh_web_access_alert_keeps_the_logged_response_size():
    """The web-accesslog decoder keeps the status (data.id) but not the size: read from the logged line."""
    item = {"timestamp": "2026-11-22T16:43:06.000+0000", "id": "1.2", "agent": {"id": "1", "name": "web-01"},
            "rule": {"level": 6, "id": "31106", "description": "A web attack returned code 200 (success).",
                     "groups": ["web", "accesslog", "attack"]},
            "data": {"srcip": "203.0.113.88", "id": "200", "url": "/item.php?id=1"},
            "full_log": '203.0.113.88 - - [22/Nov/2026:16:43:06 +0000] "GET /item.php?id=1 HTTP/1.1" 200 187442 "-" "x"'}
    measures = wazuh.parse(item).signal["measures"]
    assert measures["http_status"] == 200 and measures["response_bytes"] == 187442


@pytest.mark.parametrize("task,image,command", [
    ("<Task><Actions><Exec><Command>powershell.exe</Command><Arguments>-w hidden -enc SQBFAFgA</Arguments>"
     "</Exec></Actions></Task>", "", "powershell.exe -w hidden -enc SQBFAFgA"),
    ("<Exec><Command>C:\\Temp\\a&amp;b.exe</Command></Exec>", "", "C:\\Temp\\a&b.exe"),
    ("", "\\\\10.0.0.5\\ADMIN$\\svc.exe", "\\\\10.0.0.5\\ADMIN$\\svc.exe"),
    (None, None, ""),
])
def test_what_a_scheduled_task_or_new_service_runs_is_its_command_line(task, image, command):
    assert scheduled_command(task, image) == command


def test_a_wazuh_4698_task_s_command_is_the_alert_s_command_line():
    item = {"timestamp": "2026-11-22T02:13:05.640+0000", "id": "1.4698", "agent": {"id": "3", "name": "fin-ws-07"},
            "rule": {"level": 8, "id": "60140", "description": "A scheduled task was created",
                     "groups": ["windows", "windows_security"]},
            "data": {"win": {"system": {"eventID": "4698"},
                             "eventdata": {"taskName": "\\Updater", "subjectUserName": "j.doe",
                                           "taskContent": "<Task><Actions Context=\"Author\"><Exec><Command>"
                                                          "powershell.exe</Command><Arguments>-nop -enc AAAA"
                                                          "</Arguments></Exec></Actions></Task>"}}}}
    assert wazuh.parse(item).observables["command_line"] == "powershell.exe -nop -enc AAAA"


@pytest.mark.parametrize("group,shown", [("sudo", "privileged_group_change"), ("audio", "account_changed")])
def test_a_gpasswd_membership_is_a_group_change_of_its_group(group, shown):
    item = {"timestamp": "2026-11-22T08:13:05.640+0000", "id": "1.9", "agent": {"id": "7", "name": "api-02"},
            "rule": {"level": 5, "id": "2961", "description": f"User added to group {group}.",
                     "groups": ["syslog", "errors"]},
            "decoder": {"parent": "gpasswd", "name": "gpasswd"},
            "data": {"dstuser": "systemd-updater", "srcuser": "root", "group": group}}
    found = wazuh.parse(item).signal
    assert [b["name"] for b in found["behaviours"]] == [shown]
    assert found["account"] == {"target": "systemd-updater", "actor": "root", "group": group}


def test_the_http_method_in_wazuh_protocol_is_not_taken_for_a_transport():
    sql = wazuh.parse(WAZUH[10])
    assert "proto" not in sql.observables  # data.protocol is "GET" for web access logs
    assert sql.observables["urls"] == ["/products.php?id=1%27%20UNION%20SELECT%20username,password%20FROM%20users--"]


def test_the_shuffle_envelope_is_unwrapped_but_kept_as_received():
    envelope = document("wazuh_shuffle.json")[0]
    alert = wazuh.parse(envelope)
    assert alert.source_ref == "wazuh-manager-2:1795269737.334510"
    assert alert.title.startswith("Android: malicious application installed")
    assert alert.severity_hint == "HIGH" and alert.mitre_hints == ["T1476", "T1407"]
    assert alert.observables["hashes"] == ["5a2f3c9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f"]
    assert alert.raw is envelope and "all_fields" in alert.raw


def test_a_wazuh_record_without_a_rule_or_with_a_bad_level_is_refused_by_field():
    with pytest.raises(ItemError) as no_rule:
        wazuh.parse(WAZUH[13])
    assert no_rule.value.field == "rule"
    with pytest.raises(ItemError) as bad_level:
        wazuh.parse(WAZUH[9])
    assert bad_level.value.field == "rule.level"
    with pytest.raises(ItemError) as too_high:
        wazuh.parse({**WAZUH[1], "rule": {**WAZUH[1]["rule"], "level": 16}})
    assert too_high.value.field == "rule.level"
    with pytest.raises(ItemError) as no_time:
        wazuh.parse({k: v for k, v in WAZUH[1].items() if k != "timestamp"})
    assert no_time.value.field == "timestamp"


def test_unicode_and_hostile_text_pass_through_untouched():
    sudo, hostile = wazuh.parse(WAZUH[15]), wazuh.parse(WAZUH[16])
    assert sudo.title.startswith("sudo: три неудачных попытки 🔐")
    assert sudo.observables["host"] == "сервер-01" and sudo.observables["user"] == "root"
    assert hostile.observables["urls"] == ["/search?q=<script>alert(document.cookie)</script>"]
    assert "IGNORE ALL PREVIOUS INSTRUCTIONS" in hostile.raw["full_log"]  # kept as data, never interpreted


def test_an_alert_without_an_id_gets_a_stable_content_reference():
    item = {k: v for k, v in WAZUH[1].items() if k != "id"}
    first, again = wazuh.parse(item), wazuh.parse(json.loads(json.dumps(item)))
    assert first.source_ref.startswith("sha256:") and first.source_ref == again.source_ref
    other = {**item, "full_log": "something else"}
    assert wazuh.parse(other).source_ref != first.source_ref


# --- Suricata ------------------------------------------------------------------------------------


def test_an_eve_alert_maps_to_the_threat_fields():
    item = EVE[1]
    alert = suricata.parse(item)
    assert alert.source == "suricata"
    assert alert.source_ref == "1482760342310921:2032749:2026-11-20T11:00:03.118402+0000:0"
    assert alert.occurred_at == datetime(2026, 11, 20, 11, 0, 3, 118402, tzinfo=UTC)
    assert alert.title == "ET MALWARE Cobalt Strike Beacon Activity (GET)"
    assert alert.threat_type == "suricata:a_network_trojan_was_detected"
    # severity 1 = HIGH; ET's signature_severity "Critical" is at least HIGH (CRITICAL needs evidence of impact)
    assert alert.severity_hint == "HIGH"
    assert [b["name"] for b in alert.signal["behaviours"]] == ["malware", "command_and_control"]
    assert alert.observables == {
        "src_ip": "10.0.2.34", "dst_ip": "198.51.100.23", "src_port": 49812, "dst_port": 80, "proto": "tcp",
        "community_id": "1:Vd3SF6J5Sx3y0bAJN5QzZzqWv2k=",
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Trident/7.0; rv:11.0) like Gecko",
        "urls": ["http://cdn.update-check.example/jquery-3.3.1.min.js"], "domains": ["cdn.update-check.example"],
    }
    assert alert.mitre_hints == ["T1071", "T1071.001"] and alert.tactics == ["TA0011"]
    assert alert.group_key == "sid:1:2032749|10.0.2.34>198.51.100.23"
    assert alert.hosts == ["sensor-dmz-01"]  # the sensor name, for INGEST_HOST_CUSTOMERS
    assert alert.raw is item


@pytest.mark.parametrize("rating,band", [("Audit", "LOW"), ("Informational", "LOW"), ("Minor", "MEDIUM"),
                                         ("Major", "MEDIUM"), ("Critical", "HIGH")])
def test_emerging_threats_own_rating_bounds_the_eve_severity(rating, band):
    """ET rules carry metadata.signature_severity; Audit and Informational rules are context (ET's rule
    managers disable the two together), so a severity 2 Tor-exit audit rule is LOW."""
    item = json.loads(json.dumps(EVE[1]))
    item["alert"].update(severity=2, metadata={"signature_severity": [rating]})
    assert suricata.parse(item).severity_hint == band


@pytest.mark.parametrize("signature,category,shown", [
    ("ET CNC Feodo Tracker Reported CnC Server group 1", "A Network Trojan was detected",
     ["command_and_control", "malware"]),  # the rule set's CNC category
    ("ET POLICY TOR Consensus Data Requested", "Potential Corporate Privacy Violation",
     ["policy_violation", "anonymising_proxy"]),  # a POLICY rule's subject
    ("ET POLICY Cryptocurrency Miner Checkin", "Potential Corporate Privacy Violation",
     ["policy_violation", "resource_hijacking"]),
    ("ET POLICY Python-urllib/ Suspicious User Agent", "Attempted Information Leak",
     ["policy_violation", "recon_probe"]),  # no subject that is a behaviour
    ("Local rule about tor and stratum", "Misc activity", ["informational"]),  # not an ET subject: words alone
    ("ET INFO DYNAMIC_DNS Query to *.duckdns. Domain", "Misc activity", ["informational", "dynamic_dns"]),
])
def test_the_rule_set_category_and_a_policy_rule_s_subject_are_behaviours(signature, category, shown):
    item = json.loads(json.dumps(EVE[1]))
    item["alert"].update(signature=signature, category=category, metadata={})
    assert [b["name"] for b in suricata.parse(item).signal["behaviours"]] == shown


@pytest.mark.parametrize("severity, hint", [(1, "HIGH"), (2, "MEDIUM"), (3, "LOW"), (4, "LOW")])
def test_suricata_severity_is_inverted(severity, hint):
    item = json.loads(json.dumps(EVE[9]))
    item["alert"]["severity"] = severity
    item["alert"]["metadata"] = {}
    assert suricata.parse(item).severity_hint == hint


@pytest.mark.parametrize("number, event_type", [(4, "flow"), (5, "dns"), (6, "http"), (7, "tls"), (8, "stats"),
                                                (16, "fileinfo")])
def test_non_alert_eve_records_are_skipped_not_refused(number, event_type):
    with pytest.raises(Skip) as skipped:
        suricata.parse(EVE[number])
    assert event_type in skipped.value.reason


def test_a_broken_eve_alert_is_refused_by_field():
    with pytest.raises(ItemError) as no_sid:
        suricata.parse(EVE[13])
    assert no_sid.value.field == "alert.signature_id"
    with pytest.raises(ItemError) as no_type:
        suricata.parse(EVE[14])
    assert no_type.value.field == "event_type"


def test_an_ipv6_scan_maps_its_addresses_and_reconnaissance_tactic():
    scan = suricata.parse(EVE[12])
    assert scan.observables["src_ip"] == "2001:db8:bad::17" and scan.observables["dst_port"] == 22
    assert scan.tactics == ["TA0043"] and scan.mitre_hints == ["T1595"]


def test_beacons_of_one_signature_between_two_hosts_share_a_grouping_key():
    beacons = [suricata.parse(EVE[n]) for n in (1, 2, 3)]
    assert len({b.group_key for b in beacons}) == 1
    assert len({b.source_ref for b in beacons}) == 3
    assert len({b.observables["community_id"] for b in beacons}) == 3  # each beacon is a new connection


# --- Elastic / ECS -------------------------------------------------------------------------------------


def test_an_elastic_security_alert_maps_to_the_threat_fields():
    item = ECS[3]
    alert = ecs.parse(item)
    assert alert.source == "ecs"
    assert alert.source_ref == "c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2"  # kibana.alert.uuid
    assert alert.occurred_at == datetime(2026, 11, 20, 12, 10, 38, 516000, tzinfo=UTC)  # original_time
    assert alert.title == "Suspicious MS Office Child Process"
    assert alert.threat_type == "ecs:process"
    assert alert.severity_hint == "HIGH"
    assert alert.mitre_hints == ["T1566", "T1059", "T1566.001", "T1059.001"]
    assert alert.tactics == ["TA0001", "TA0002"]
    assert alert.observables["user"] == "m.rossi" and alert.observables["host"] == "WS-FIN-042"
    assert alert.observables["hashes"] == [
        "7353f60b1739074eb17c5f4dddefe239", "6cbce4a295c163791b60fc23d285e6d84f28ee4c",
        "de96a6e69944335375dc1ac238336066889d9ffc7d73628ef4fe1b1b160ab32c",
    ]
    assert alert.observables["command_line"].startswith("powershell.exe -NoP")
    assert alert.group_key == "rule:7d3c2b1a-0f9e-4d8c-b7a6-5f4e3d2c1b0a|WS-FIN-042|"


def test_ecs_network_fields_and_the_risk_score():
    network = ecs.parse(ECS[5])
    assert network.observables["proto"] == "tcp"  # network.transport, not network.protocol ("tls")
    assert network.observables["dst_port"] == 443 and network.observables["domains"] == ["paste.example"]
    assert network.observables["urls"] == ["https://paste.example/raw/Xk2f9"]
    assert network.observables["community_id"] == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert network.severity_hint == "LOW"
    no_name = json.loads(json.dumps(ECS[5]))
    del no_name["kibana.alert.severity"]
    for score, hint in ((21, "LOW"), (47, "MEDIUM"), (73, "HIGH"), (99, "CRITICAL")):
        no_name["kibana.alert.risk_score"] = score
        assert ecs.parse(no_name).severity_hint == hint


def test_nested_kibana_keys_and_the_organization_as_customer():
    ransomware = ecs.parse(ECS[6])
    assert ransomware.severity_hint == "CRITICAL" and ransomware.title == "Ransomware - Detected - Elastic Defend"
    assert ransomware.source_ref.startswith("e5f6a7b8") and ransomware.mitre_hints == ["T1486"]
    assert ransomware.customer_hint == "Globex"


def test_a_plain_ecs_alert_with_threat_fields():
    zeek = ecs.parse(ECS[7])
    assert zeek.source_ref == "zeek-notice-8f3a91"  # event.id
    assert zeek.title == "Scan::Port_Scan" and zeek.threat_type == "ecs:intrusion_detection"
    assert zeek.mitre_hints == ["T1046"] and zeek.tactics == ["TA0007"]
    assert zeek.hosts == ["zeek-core-01"] and zeek.customer_hint == "global-finance"


def test_search_hits_are_unwrapped_but_kept_as_received():
    hit = document("ecs_search_response.json")["hits"]["hits"][0]
    alert = ecs.parse(hit)
    assert alert.title == "Potential SSH Brute Force Detected" and alert.observables["country"] == "NL"
    assert alert.raw is hit and "_source" in alert.raw


def test_an_ecs_document_without_a_timestamp_is_refused():
    with pytest.raises(ItemError) as refused:
        ecs.parse(ECS[9])
    assert refused.value.field == "@timestamp"


# --- Generic -------------------------------------------------------------------------------------------


def test_the_generic_shape_maps_to_the_threat_fields():
    item = GENERIC[0]
    alert = generic.parse(item)
    assert (alert.source, alert.source_ref, alert.title) == ("generic", "vpn-7781", "Brute force against the VPN gateway")
    assert alert.threat_type == "generic:vpn" and alert.severity_hint == "HIGH"
    assert alert.observables == {"src_ip": "203.0.113.7", "user": "j.doe", "host": "vpn-gw-1", "country": "BR"}
    assert alert.mitre_hints == ["T1110.001"] and alert.tactics == ["TA0006"]
    assert alert.customer_hint == "global-finance" and alert.group_key == "rule:vpn-bruteforce|vpn-gw-1|203.0.113.7"
    assert alert.raw["vendor"] == {"product": "FortiGate", "log_id": "0101039424"}


def test_generic_accepts_known_types_epoch_times_and_offsets():
    waf, dlp = generic.parse(GENERIC[2]), generic.parse(GENERIC[3])
    assert waf.threat_type == "bot_traffic" and waf.severity_hint == "LOW"
    assert waf.occurred_at == datetime.fromtimestamp(1795180000, tz=UTC)
    assert waf.observables["endpoint"] == "/api/login" and waf.observables["proto"] == "tcp"
    assert dlp.occurred_at == datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
    assert dlp.source_ref.startswith("sha256:")  # no id given
    assert dlp.observables["hashes"] == ["9f2b5c0e1d7a3f4b8c6e2d0a1b3c5e7f9a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b"]
    assert any("observables.mac" in w for w in dlp.warnings)
    assert any("'Exfiltration' is not an ATT&CK technique id" in w for w in dlp.warnings)


@pytest.mark.parametrize("index, field", [(6, "title"), (7, "severity"), (8, "occurred_at")])
def test_generic_refuses_bad_items_by_field(index, field):
    with pytest.raises(ItemError) as refused:
        generic.parse(GENERIC[index])
    assert refused.value.field == field


def test_generic_refuses_a_threat_type_that_is_not_a_category():
    with pytest.raises(ItemError) as refused:
        generic.parse({**GENERIC[0], "threat_type": "<script>x</script>"})
    assert refused.value.field == "threat_type"


def test_a_value_that_is_not_an_ip_is_left_out_with_a_warning():
    alert = generic.parse(GENERIC[4])
    assert "src_ip" not in alert.observables
    assert alert.warnings == ["src_ip: 'not-an-ip' is not an IP address; left out of the observables"]


# --- Shared readers ------------------------------------------------------------------------------------


def test_dig_reads_flattened_nested_and_mixed_keys():
    doc = {"kibana.alert.rule.name": "flat", "kibana": {"alert": {"uuid": "nested"}}, "a.b": {"c": "mixed"}}
    assert dig(doc, "kibana.alert.rule.name") == "flat"
    assert dig(doc, "kibana.alert.uuid") == "nested"
    assert dig(doc, "a.b.c") == "mixed"
    assert dig(doc, "kibana.alert.missing") is None


@pytest.mark.parametrize("text, expected", [
    ("2026-11-20T08:15:02.347+0000", datetime(2026, 11, 20, 8, 15, 2, 347000, tzinfo=UTC)),
    ("2026-11-20T08:15:02Z", datetime(2026, 11, 20, 8, 15, 2, tzinfo=UTC)),
    ("2026-11-20T09:15:02+01:00", datetime(2026, 11, 20, 8, 15, 2, tzinfo=UTC)),
    ("2026-11-20 08:15:02", datetime(2026, 11, 20, 8, 15, 2, tzinfo=UTC)),  # naive = UTC
    ("Nov 20, 2026 @ 08:15:02.000", datetime(2026, 11, 20, 8, 15, 2, tzinfo=UTC)),  # Kibana display
    (1795162502, datetime(2026, 11, 20, 8, 15, 2, tzinfo=UTC)),
    (1795162502347, datetime(2026, 11, 20, 8, 15, 2, 347000, tzinfo=UTC)),  # milliseconds
])
def test_timestamps_in_every_shape_the_sources_use(text, expected):
    assert parse_time(text, "timestamp") == expected


@pytest.mark.parametrize("value", ["", "soon", None, True, [], "2026-13-45T00:00:00Z"])
def test_unreadable_timestamps_are_refused(value):
    with pytest.raises(ItemError):
        parse_time(value, "timestamp")


def test_tactic_names_of_every_attack_version_become_ids():
    assert tactic_ids(["Defense Evasion", "defense-evasion", "Stealth", "TA0005"]) == ["TA0005"]
    assert tactic_ids(["Command_And_Control", "credential access", "Defense Impairment"]) == [
        "TA0006", "TA0011", "TA0112"]
    assert tactic_ids(["Made-up Tactic"]) == ["made up tactic"]  # still a distinct tactic for grouping


def test_the_reader_bounds_and_validates_what_it_reads():
    read = Reader({"u": "x" * 2000, "h": ["not-a-hash", "D41D8CD98F00B204E9800998ECF8427E"], "p": 70000,
                   "t": ["T1110", "t1059.001", "T99", "x"]})
    assert read.text("u", limit=10) == "x" * 10 and read.truncated == ["u"]
    assert read.hashes("h") == ["d41d8cd98f00b204e9800998ecf8427e"]
    assert read.port("p", name="src_port") is None
    assert read.techniques(read.get("t")) == ["T1110", "T1059.001"]
    assert len(read.warnings) == 4  # the bad hash, the port and two bad technique ids


def test_the_format_of_every_sample_file_is_recognised():
    expected = {"wazuh_alerts.ndjson": "wazuh", "suricata_eve.ndjson": "suricata", "ecs_alerts.ndjson": "ecs"}
    for name, fmt in expected.items():
        found = {detect_format(item) for item in lines(name).values() if item and detect_format(item)}
        assert found == {fmt}, name
    assert detect_format(document("wazuh_shuffle.json")[0]) == "wazuh"
    assert detect_format(document("ecs_search_response.json")["hits"]["hits"][0]) == "ecs"
    assert detect_format(GENERIC[0]) == "generic"
    assert detect_format("a string") is None and sorted(FORMATS) == ["ecs", "generic", "suricata", "wazuh"]


def test_the_acting_identity_of_cloudtrail_and_kubernetes_audit_is_the_user():
    """Campaigns and pivots read `user`: CloudTrail's IAM user (through Wazuh) and the Kubernetes audit
    log's requesting account (through Elastic) are who acted."""
    trail = wazuh.parse({"timestamp": "2026-11-17T02:41:31.552+0000", "id": "1.1", "agent": {"id": "0", "name": "wazuh"},
                         "rule": {"level": 3, "id": "80253", "description": "AWS Cloudtrail: StopLogging",
                                  "groups": ["amazon", "aws"]},
                         "data": {"integration": "aws", "aws": {"eventName": "StopLogging",
                                                                "userIdentity": {"type": "IAMUser", "userName": "j.mercer"}}}})
    audit = ecs.parse({"@timestamp": "2026-11-20T16:40:12Z", "kibana.alert.rule.name": "Kubernetes rules review",
                       "event": {"kind": "signal", "dataset": "kubernetes.audit_logs"},
                       "kubernetes": {"audit": {"verb": "create",
                                                "user": {"username": "system:serviceaccount:shop:api"}}}})
    assert trail.observables["user"] == "j.mercer"
    assert audit.observables["user"] == "system:serviceaccount:shop:api"


@pytest.mark.parametrize("action,error,prevented", [("Quarantine", "0x00000000", True), ("Allow", "0x00000000", False),
                                                    ("Quarantine", "0x80508023", None), (None, None, None)])
def test_a_defender_detection_that_states_its_action_says_whether_it_was_stopped(action, error, prevented):
    event = {"threat Name": "Trojan:Win32/LummaStealer.RPZ!MTB", "path": "file:_C:\\Users\\c\\Downloads\\v.exe"}
    if action:
        event.update({"action Name": action, "error Code": error})
    item = {"timestamp": "2026-12-03T22:48:31.000+0000", "id": "d-1", "agent": {"id": "7", "name": "lt-0457"},
            "rule": {"level": 12, "id": "62123", "description": "Windows Defender: detected", "groups": ["windows_defender"]},
            "data": {"win": {"system": {"eventID": "1116", "providerName": "Microsoft-Windows-Windows Defender"},
                             "eventdata": event}}}
    assert wazuh.parse(item).signal.get("prevented") is prevented


def test_an_es_ql_alert_s_aggregated_columns_name_its_source_and_account():
    item = {"@timestamp": "2026-12-04T05:31:00.000Z", "kibana.alert.rule.name": "Entra ID Impossible Travel Sign-in",
            "kibana.alert.severity": "high", "Esql.source_ip_values": ["198.51.100.166", "192.0.2.10"],
            "azure.signinlogs.properties.user_principal_name": "m.byrne@example.com"}
    alert = ecs.parse(item)
    assert alert.observables["src_ip"] == "198.51.100.166" and alert.observables["user"] == "m.byrne@example.com"
