"""Load scenarios for the SOC Agent System (Locust 2.47; `make load` runs them against `make cluster`).

Users:
- `Analyst` (FastHttpUser): logs in through the form with its CSRF token, opens the dashboard,
  pages and filters the threat list (API and page), opens details, triages (acknowledge, assign
  to me, a note), sometimes triggers a threat, and holds a WebSocket for its whole life, counting
  the events it receives (reported as `WS event <type>` rows: response time = push delay from the
  event's `at`).
- `IngestClient` (FastHttpUser): posts alert batches with an API key in every format (`wazuh`,
  `suricata`, `ecs` NDJSON; `generic` JSON array), built from tests/fixtures/alerts with fresh ids so
  each alert is new (unique source refs, a few grouping keys so some join a group).
- `Burst`: the load shape — a warm-up, a burst at four times the users, a cool-down; then it stops
  by itself, so a headless run is bounded.

URL names are grouped (`/api/threats/{id}`, `/api/ingest/wazuh`), so the report has one row per
endpoint. Configuration from the environment (set by tests/load/run.py): LOAD_USERNAME /
LOAD_PASSWORD (analyst / analyst), LOAD_ANALYSTS (N accounts USERNAME-1..N, one per simulated analyst in
turn, so the per-user rate limit applies per person as in real life), LOAD_API_KEY (an ingest key; without it no IngestClient runs),
LOAD_USERS (peak analysts before the burst, default 20), LOAD_SECONDS (whole run, default 60),
LOAD_BATCH (alerts per ingest request, default 50).

Not a pytest module: pytest never collects tests/load (pytest.ini `norecursedirs`), because
Locust monkey-patches the standard library with gevent on import.
"""

import copy
import itertools
import json
import os
import random
import re
import time
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

import gevent
import websocket
from locust import FastHttpUser, LoadTestShape, between, events, task

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alerts"
USERNAME = os.environ.get("LOAD_USERNAME", "analyst")  # with LOAD_ANALYSTS=N: USERNAME-1 ... USERNAME-N
PASSWORD = os.environ.get("LOAD_PASSWORD", "analyst")
ANALYSTS = int(os.environ.get("LOAD_ANALYSTS", "0"))
API_KEY = os.environ.get("LOAD_API_KEY", "")
USERS = int(os.environ.get("LOAD_USERS", "20"))
SECONDS = int(os.environ.get("LOAD_SECONDS", "60"))
BATCH = int(os.environ.get("LOAD_BATCH", "50"))
_numbers = itertools.count()
FILTERS = [{"severity": "HIGH"}, {"severity": "CRITICAL"}, {"status": "new"}, {"requires_review": "true"},
           {"assignee": "me"}, {"customer": "retailmax"}, {"threat_type": "bot_traffic"}]


# --- Analysts ------------------------------------------------------------------------------------


class Analyst(FastHttpUser):
    weight = 4
    wait_time = between(1, 3)

    def on_start(self):
        self.seen, self.socket, self.listener = [], None, None
        self.username = f"{USERNAME}-{next(_numbers) % ANALYSTS + 1}" if ANALYSTS else USERNAME
        self.login()
        self.client.get("/", name="/ (dashboard)")
        self.remember(self.client.get("/api/threats?limit=20", name="/api/threats [newest]").json()["items"])
        self.listener = gevent.spawn(self.hold_websocket)

    def on_stop(self):
        if self.socket is not None:
            self.socket.close()
        if self.listener is not None:
            self.listener.kill(block=False)

    def login(self):
        page = self.client.get("/accounts/login/", name="/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        form = urlencode({"csrfmiddlewaretoken": token, "username": self.username, "password": PASSWORD, "next": ""})
        self.client.post("/accounts/login/", data=form, name="/accounts/login/ (POST)",
                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                  "Referer": self.host + "/accounts/login/"})
        if not self.cookie("sessionid"):
            raise RuntimeError(f"login as {self.username!r} failed")

    def cookie(self, name):
        return next((c.value for c in self.client.cookiejar if c.name == name), None)

    def write_headers(self):
        return {"X-CSRFToken": self.cookie("csrftoken") or "", "Referer": self.host + "/", "Origin": self.host,
                "Content-Type": "application/json"}

    def remember(self, items):
        self.seen = ([item["id"] for item in items] + self.seen)[:200]

    @task(6)
    def newest(self):
        self.remember(self.client.get("/api/threats?limit=20", name="/api/threats [newest]").json()["items"])

    @task(4)
    def filtered_and_paged(self):
        query = {"limit": 20, **random.choice(FILTERS)}
        page = self.client.get(f"/api/threats?{urlencode(query)}", name="/api/threats [filter]").json()
        for _ in range(random.randint(0, 3)):
            if not page["next_cursor"]:
                break
            query["cursor"] = page["next_cursor"]
            page = self.client.get(f"/api/threats?{urlencode(query)}", name="/api/threats [filter, next page]").json()
        self.remember(page["items"])

    @task(2)
    def list_page(self):
        self.client.get(f"/threats/?{urlencode(random.choice(FILTERS))}", name="/threats/ (page)")

    @task(5)
    def detail(self):
        if self.seen:
            threat_id = random.choice(self.seen)
            self.client.get(f"/api/threats/{threat_id}", name="/api/threats/{id}")
            if random.random() < 0.3:
                self.client.get(f"/threats/{threat_id}/", name="/threats/{id}/ (page)")

    @task(2)
    def analytics(self):
        self.client.get("/api/analytics", name="/api/analytics")

    @task(2)
    def triage(self):
        if not self.seen:
            return
        change = random.choice([{"status": "acknowledged"}, {"assignee": self.username}, {"status": "investigating"}])
        with self.client.patch(f"/api/threats/{random.choice(self.seen)}", data=json.dumps(change),
                               headers=self.write_headers(), name="/api/threats/{id} (PATCH)",
                               catch_response=True) as response:
            if response.status_code in (200, 404):  # 404: retention removed it meanwhile
                response.success()

    @task(1)
    def note(self):
        if self.seen:
            self.client.post(f"/api/threats/{random.choice(self.seen)}/notes", name="/api/threats/{id}/notes",
                             data=json.dumps({"body": "Checked under load."}), headers=self.write_headers())

    @task(1)
    def trigger(self):
        self.client.post("/api/threats/trigger", data=json.dumps({}), headers=self.write_headers(),
                         name="/api/threats/trigger")

    def hold_websocket(self):
        """One socket for the user's life: count every event and report its push delay."""
        url = "ws" + self.host[4:] + "/ws"
        started = time.perf_counter()
        try:
            self.socket = websocket.create_connection(
                url, timeout=30, header=[f"Cookie: sessionid={self.cookie('sessionid')}; csrftoken={self.cookie('csrftoken')}"],
                origin=self.host)
        except (OSError, websocket.WebSocketException) as exc:  # a failure row, like a failed request
            _report("WS", "connect", (time.perf_counter() - started) * 1000, exc)
            return
        _report("WS", "connect", (time.perf_counter() - started) * 1000)
        while True:
            try:
                frame = json.loads(self.socket.recv())
            except (websocket.WebSocketTimeoutException, json.JSONDecodeError):
                continue
            except (OSError, websocket.WebSocketException):  # closed: the user stopped, or the pod went away
                return
            if "seq" in frame and "at" in frame:
                delay = (time.time() - datetime.fromisoformat(frame["at"]).timestamp()) * 1000
                _report("WS event", frame["type"], max(delay, 0), length=len(json.dumps(frame)))


def _report(kind, name, milliseconds, exception=None, length=0):
    events.request.fire(request_type=kind, name=name, response_time=milliseconds, response_length=length,
                        exception=exception, context={})


# --- Machines ingesting alerts --------------------------------------------------------------------------


def _samples():
    """One valid alert per format from the fixtures, as templates."""
    def first(path, check):
        for line in (FIXTURES / path).read_text().splitlines():
            try:
                alert = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(alert, dict) and check(alert):
                return alert
        raise RuntimeError(f"no usable alert in {path}")

    return {
        "wazuh": first("wazuh_alerts.ndjson", lambda a: "rule" in a and "agent" in a),
        "suricata": first("suricata_eve.ndjson", lambda a: a.get("event_type") == "alert"),
        "ecs": first("ecs_alerts.ndjson", lambda a: "kibana.alert.uuid" in a),
        "generic": json.loads((FIXTURES / "generic_alerts.json").read_text())[0],
    }


SAMPLES = _samples()


def fresh_alert(kind):
    """A new alert of `kind`: fresh ids, now, one of eight source addresses (so some group)."""
    alert, ident, host = copy.deepcopy(SAMPLES[kind]), uuid.uuid4(), f"203.0.113.{random.randint(1, 8)}"
    now = datetime.now().astimezone().isoformat(timespec="milliseconds")
    if kind == "wazuh":
        alert.update(id=f"{time.time():.0f}.{ident.int % 10**9}", timestamp=now)
        alert.setdefault("data", {})["srcip"] = host
        alert["agent"].pop("labels", None)  # the key's customer applies
    elif kind == "suricata":
        alert.update(flow_id=ident.int % 2**52, timestamp=now, src_ip=host)
    elif kind == "ecs":
        alert.update({"kibana.alert.uuid": ident.hex, "@timestamp": now, "source.ip": host})
        alert.pop("organization.name", None)
        alert.pop("organization", None)
    else:
        alert.update(id=ident.hex, occurred_at=now)
        alert["observables"]["src_ip"] = host
        alert.pop("customer", None)
    return alert


class IngestClient(FastHttpUser):
    weight = 1 if API_KEY else 0
    wait_time = between(0.5, 2)

    def batch(self, kind):
        alerts = [fresh_alert(kind) for _ in range(BATCH)]
        if kind == "generic":
            body, content_type = json.dumps(alerts), "application/json"
        else:
            body, content_type = "\n".join(json.dumps(a) for a in alerts), "application/x-ndjson"
        with self.client.post(f"/api/ingest/{kind}", data=body, name=f"/api/ingest/{kind}", catch_response=True,
                              headers={"X-API-Key": API_KEY, "Content-Type": content_type}) as response:
            if response.status_code != 202:
                response.failure(f"{response.status_code}: {response.text[:200]}")
            elif response.json()["errors"]:
                response.failure(f"{response.json()['errors']} alert(s) refused: {response.text[:300]}")

    @task
    def wazuh(self):
        self.batch("wazuh")

    @task
    def suricata(self):
        self.batch("suricata")

    @task
    def ecs(self):
        self.batch("ecs")

    @task
    def generic(self):
        self.batch("generic")


# --- The shape: warm-up, burst, cool-down ------------------------------------------------------------------


class Burst(LoadTestShape):
    """20 % of the time ramping to LOAD_USERS, a burst at 4x for the middle 30 %, back to LOAD_USERS,
    then stop (tick returns None)."""

    def tick(self):
        elapsed = self.get_run_time()
        if elapsed > SECONDS:
            return None
        if elapsed < 0.2 * SECONDS:
            return max(1, round(USERS * elapsed / (0.2 * SECONDS))), max(1, USERS / 2)
        if 0.4 * SECONDS <= elapsed < 0.7 * SECONDS:
            return 4 * USERS, 4 * USERS  # the burst: many users log in at once
        return USERS, USERS
