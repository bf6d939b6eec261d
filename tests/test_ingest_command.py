"""`manage.py import_alerts FILE [--format F] [--customer C]`: every sample file imports, NDJSON
is streamed in batches with progress on stderr, and the summary names each failed line."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import TestCase

from agents.models import AgentRun
from tests import factories
from threats.models import Threat, ThreatGroup

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).parent / "fixtures" / "alerts"


def run(*args):
    """(stdout, stderr, error) of one run, with on-commit work (analysis) done as a commit would."""
    out, err, error = StringIO(), StringIO(), None
    with TestCase.captureOnCommitCallbacks(execute=True):
        try:
            call_command("import_alerts", *map(str, args), stdout=out, stderr=err)
        except CommandError as exc:
            error = exc
    return out.getvalue(), err.getvalue(), error


@pytest.fixture
def finance(db):
    return factories.make_customer(name="Global Finance", slug="global-finance")


def test_a_wazuh_file_imports_and_the_summary_names_the_bad_lines(finance):
    out, err, error = run(FIXTURES / "wazuh_alerts.ndjson", "--format", "wazuh", "--customer", "global-finance")
    assert "imported          12  (11 group heads analysed, 1 joined a group)" in out
    assert "errors             3" in out
    assert "error at line 5: line: Line 5: invalid JSON" in out
    assert "error at line 9: rule.level: Rule level must be an integer 0-15, not 'critical'." in out
    assert "error at line 13: rule:" in out
    assert error is not None and error.returncode == 1  # some lines failed: non-zero exit
    assert "100%" in err  # progress goes to stderr
    assert Threat.objects.filter(source="wazuh").count() == 12
    assert AgentRun.objects.values("threat").distinct().count() == 11


def test_the_format_is_recognised_and_non_alerts_are_counted_as_skipped(finance):
    out, _, _ = run(FIXTURES / "suricata_eve.ndjson", "--customer", "global finance")  # a name works too
    assert "suricata_eve.ndjson (suricata)" in out
    assert "skipped            6" in out and "skipped: event_type 'flow' is not an alert (1)" in out
    assert Threat.objects.filter(source="suricata").count() == 7


@pytest.mark.parametrize("name, source, count", [("wazuh_shuffle.json", "wazuh", 2),
                                                 ("ecs_search_response.json", "ecs", 2)])
def test_single_json_documents_import_too(finance, name, source, count):
    out, _, error = run(FIXTURES / name, "--customer", "global-finance")
    assert error is None, out
    assert f"imported    {count:>8}" in out and Threat.objects.filter(source=source).count() == count


def test_the_generic_sample_file_imports_with_its_item_errors(finance):
    factories.make_customer(name="RetailMax", slug="retailmax")
    out, _, error = run(FIXTURES / "generic_alerts.json", "--customer", "global-finance")
    assert "generic_alerts.json (generic)" in out and "imported           6" in out and "errors             5" in out
    assert "error at item 6: title:" in out and "error at item 10: alert: Each alert must be a JSON object." in out
    assert error.returncode == 1 and Threat.objects.filter(source="generic").count() == 6


def test_running_twice_reports_duplicates_and_stores_nothing_new(finance):
    run(FIXTURES / "ecs_alerts.ndjson", "--format", "ecs", "--customer", "global-finance")
    stored = Threat.objects.count()
    out, _, _ = run(FIXTURES / "ecs_alerts.ndjson", "--format", "ecs", "--customer", "global-finance")
    assert "imported           0" in out and "duplicates         6" in out
    assert Threat.objects.count() == stored


def test_a_large_ndjson_file_is_streamed_in_batches(finance, tmp_path):
    path = tmp_path / "big.ndjson"
    with path.open("w") as f:
        for n in range(2_500):
            f.write(json.dumps({"id": f"big-{n}", "title": f"rule {n % 5}", "rule": f"r{n % 5}", "host": "h",
                                "occurred_at": f"2026-11-20T10:{n % 60:02d}:00Z"}) + "\n")
            if n == 1_234:
                f.write("{broken\n")
    out, err, error = run(path, "--format", "generic", "--customer", "global-finance", "--batch-size", "300")
    assert "imported        2500  (5 group heads analysed, 2495 joined a group)" in out
    assert "error at line 1236: line:" in out and error.returncode == 1
    progress = err.splitlines()  # after the first batch, then at most twice a second, and at the end
    assert "300 alerts" in progress[0] and progress[-1].endswith("100%  2,501 alerts")
    assert Threat.objects.count() == 2_500
    assert sorted(ThreatGroup.objects.values_list("member_count", flat=True)) == [500] * 5


def test_a_line_too_long_to_read_is_skipped_with_its_number(finance, tmp_path, settings):
    settings.INGEST_MAX_ITEM_CHARS = 1_000  # lines over 4,000 bytes are not read into memory
    path = tmp_path / "long.ndjson"
    first = {"id": "ok-1", "title": "fine", "occurred_at": "2026-11-20T10:00:00Z"}
    path.write_text("\n" + json.dumps(first) + "\n" + json.dumps({**first, "id": "big", "pad": "p" * 50_000}) + "\n"
                    + json.dumps({**first, "id": "ok-2"}) + "\n")
    out, _, error = run(path, "--format", "generic", "--customer", "global-finance")
    assert "imported           2" in out and "error at line 3: line: Line 3 is longer than 1000 characters" in out
    assert error.returncode == 1 and set(Threat.objects.values_list("source_ref", flat=True)) == {"ok-1", "ok-2"}


def test_bad_arguments_are_refused_plainly(finance, tmp_path):
    assert "Unknown customer 'nobody'. Known: global-finance." in str(run(FIXTURES / "ecs_alerts.ndjson", "--customer",
                                                                      "nobody")[2])
    assert "Cannot read" in str(run(tmp_path / "missing.ndjson")[2])
    (tmp_path / "odd.ndjson").write_text('{"what": "is this"}\n')
    assert "pass --format" in str(run(tmp_path / "odd.ndjson")[2])
    assert not Threat.objects.exists()


@pytest.mark.parametrize("document", ["array", "search"])
def test_a_whole_document_on_one_line_is_a_document_not_ndjson(finance, tmp_path, document):
    alerts = [json.loads(line) for line in (FIXTURES / "suricata_eve.ndjson").read_text().splitlines()[:2]]
    body = alerts if document == "array" else {"hits": {"hits": [{"_id": str(i), "_source": a}
                                                                 for i, a in enumerate(alerts)]}}
    path = tmp_path / "one-line.json"
    path.write_text(json.dumps(body))  # one line: the way `jq -c` or an API export writes it
    out, _, error = run(path, "--customer", "global-finance", "--format", "suricata")
    assert error is None, out
    assert f"imported    {2:>8}" in out and Threat.objects.filter(source="suricata").count() == 2
