"""Ingestion against a real Daphne process and real `import_alerts` processes sharing its
database: concurrent duplicates from several HTTP clients and two importing processes create
exactly one row per alert, and the group heads get analysed in the web process.
(Lives beside the other ingest tests; it starts processes, hence the integration marker.)"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.server import REPO_ROOT, EmbeddedServer, login

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parent / "fixtures" / "alerts"
ANALYSIS_DEADLINE = 60  # seconds for the heads' analyses in the web process
PROCESS_TIMEOUT = 180


@pytest.fixture(scope="module")
def server():
    outer_url = os.environ.get("DATABASE_URL", "")
    postgres_url = outer_url if outer_url.startswith(("postgres://", "postgresql://")) else None
    running = EmbeddedServer(postgres_url=postgres_url).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def api_key(server):
    return issue_key(server, "retailmax")


def issue_key(server, customer):
    code = ("from threats import apikeys; from threats.models import Customer; "
            f"print(apikeys.issue('e2e', ['ingest', 'read'], customer=Customer.objects.get(slug='{customer}'))[1])")
    done = subprocess.run([server.python, "manage.py", "shell", "-c", code], cwd=REPO_ROOT, env=server.env,
                          capture_output=True, text=True, timeout=PROCESS_TIMEOUT, check=True)
    return done.stdout.strip().splitlines()[-1]


def post(server, fmt, data, key, content_type="application/json"):
    request = urllib.request.Request(f"{server.base_url}/api/ingest/{fmt}", data=data, method="POST",
                                     headers={"Content-Type": content_type, "X-API-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(server, path, key):
    request = urllib.request.Request(server.base_url + path, headers={"X-API-Key": key})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_concurrent_duplicates_from_http_clients_and_processes_make_one_row_each(server, api_key, tmp_path):
    alerts = [{"id": f"race-{n}", "title": f"Race alert {n % 4}", "rule": f"race-{n % 4}", "host": "gw-1",
               "occurred_at": f"2026-11-20T10:{n % 60:02d}:00Z", "observables": {"src_ip": "203.0.113.9"}}
              for n in range(120)]
    body = json.dumps(alerts).encode()
    path = tmp_path / "race.ndjson"
    path.write_text("".join(json.dumps(a) + "\n" for a in alerts))
    command = [server.python, "manage.py", "import_alerts", str(path), "--format", "generic", "--customer", "retailmax"]
    importers = [subprocess.Popen(command, cwd=REPO_ROOT, env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: post(server, "generic", body, api_key), range(4)))
    outputs = [process.communicate(timeout=PROCESS_TIMEOUT) for process in importers]

    assert [status for status, _ in answers] == [202] * 4, answers
    assert all(process.returncode == 0 for process in importers), outputs
    for index in range(120):
        assert len({answer["items"][index]["id"] for _, answer in answers}) == 1
    http_created = sum(answer["created"] for _, answer in answers)
    process_created = sum(int(out.split("imported")[1].split()[0]) for out, _ in outputs)
    assert http_created + process_created == 120  # each alert created once, by whoever came first
    session = login(server.base_url)
    assert session.get_json("/api/analytics")["total_threats"] == 120
    groups = get(server, "/api/groups?source=generic&limit=100", api_key)["items"]
    assert sorted(g["member_count"] for g in groups) == [30, 30, 30, 30]


def test_group_heads_are_analysed_by_the_web_process(server, api_key):
    status, answer = post(server, "suricata", (FIXTURES / "suricata_eve.ndjson").read_bytes(), api_key,
                          "application/x-ndjson")
    assert status == 202 and (answer["created"], answer["skipped"], answer["errors"]) == (7, 6, 3)
    heads = {item["id"] for item in answer["items"] if item.get("group_head")}
    session = login(server.base_url)
    deadline = time.monotonic() + ANALYSIS_DEADLINE
    while True:
        states = {i: session.get_json(f"/api/threats/{i}")["analysis_status"] for i in heads}
        if set(states.values()) == {"completed"} or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # polling a real process's background work
    assert set(states.values()) == {"completed"}, states
    members = [item["id"] for item in answer["items"] if item["status"] == "created" and not item["group_head"]]
    assert {session.get_json(f"/api/threats/{i}")["analysis_status"] for i in members} == {"grouped"}


def test_the_command_as_a_process_reports_progress_and_fails_on_bad_lines(server):
    done = subprocess.run([server.python, "manage.py", "import_alerts", str(FIXTURES / "ecs_alerts.ndjson"),
                           "--customer", "retailmax"], cwd=REPO_ROOT, env=server.env, capture_output=True, text=True,
                          timeout=PROCESS_TIMEOUT)
    assert done.returncode == 1
    assert "ecs_alerts.ndjson (ecs)" in done.stdout and "error at line 4: line:" in done.stdout
    assert "100%" in done.stderr and "could not be imported" in done.stderr


def test_the_server_refuses_oversized_bodies_before_reading_them(server, api_key):
    status, answer = post(server, "generic", b"[" + b" " * (11 * 1024 * 1024) + b"]", api_key)
    assert status == 413 and answer["field"] == "body"
