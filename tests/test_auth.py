"""Authentication (docs/security.md): login brute-force limits per username and per address that
hold under concurrency, the audit log (structured, newline-safe), session rotation, and CSRF for
cookie-authenticated writes while API-key requests need none and never accept a cookie alone."""

import json
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from threats import apikeys
from threats.models import Threat

pytestmark = pytest.mark.django_db
LOGIN = "/accounts/login/"


def _attempt(username, password, address="192.0.2.10", path=LOGIN):
    return Client(REMOTE_ADDR=address).post(path, {"username": username, "password": password})


def _audit(caplog, action):
    return [r.audit for r in caplog.records if getattr(r, "audit", {}).get("action") == action]


def test_the_sixth_failure_for_a_username_is_refused_even_with_the_right_password(alice, caplog):
    caplog.set_level(logging.INFO, logger="soc.audit")
    codes = [_attempt("alice", f"guess-{i}", address=f"192.0.2.{i}").status_code for i in range(5)]
    assert codes == [200] * 5  # the form again, "enter a correct username and password"
    refused = _attempt("alice", "pw-alice", address="198.51.100.7")
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 1800
    assert "_auth_user_id" not in refused.wsgi_request.session
    assert len(_audit(caplog, "login.failed")) == 5 and len(_audit(caplog, "login.throttled")) == 1
    assert _attempt("bob", "whatever").status_code == 200  # other usernames are unaffected


def test_usernames_are_counted_case_insensitively(alice):
    for i in range(5):
        _attempt("ALICE" if i % 2 else "alice", "wrong", address=f"192.0.2.{i}")
    assert _attempt("Alice", "pw-alice").status_code == 429


def test_the_admin_login_is_throttled_by_the_same_counters(alice):
    alice.is_staff = True
    alice.save()
    for i in range(5):
        _attempt("alice", "wrong", path="/admin/login/", address=f"192.0.2.{i}")
    assert _attempt("alice", "pw-alice", path="/admin/login/").status_code == 429


def test_one_address_trying_many_usernames_is_throttled(settings, db):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_ip": (8, 1800)}
    codes = [_attempt(f"user{i}", "password", address="203.0.113.66").status_code for i in range(10)]
    assert codes == [200] * 8 + [429] * 2
    assert _attempt("user99", "password", address="203.0.113.67").status_code == 200


def test_a_successful_login_forgives_the_failures_made_from_its_own_address(alice):
    for _ in range(4):
        _attempt("alice", "wrong")
    assert _attempt("alice", "pw-alice").status_code == 302
    for _ in range(5):
        assert _attempt("alice", "wrong").status_code == 200
    assert _attempt("alice", "wrong").status_code == 429


def test_a_successful_login_does_not_forgive_failures_from_other_addresses(alice):
    for i in range(4):
        _attempt("alice", "wrong", address=f"198.51.100.{i}")
    assert _attempt("alice", "pw-alice").status_code == 302
    assert _attempt("alice", "wrong", address="198.51.100.9").status_code == 200  # the fifth
    assert _attempt("alice", "wrong", address="198.51.100.9").status_code == 429


def test_fifty_parallel_guesses_get_at_most_five_answers(alice, transactional_db):
    """S8: the limit holds when the guesses arrive together, not only one after another."""
    barrier = threading.Barrier(50)

    def guess(index):
        barrier.wait()
        password = "pw-alice" if index == 49 else f"guess-{index}"
        try:
            return _attempt("alice", password, address=f"192.0.2.{index}").status_code
        finally:
            connections.close_all()  # this thread's connection (PostgreSQL would keep 50 open)

    with ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(guess, range(50)))
    answered = [code for code in codes if code != 429]
    assert len(answered) <= 6  # five failures, plus the right password if it finished early
    assert codes.count(200) <= 5
    assert codes.count(429) >= 44


def test_login_rotates_the_session_key(alice):
    client = Client()
    client.get(LOGIN)
    client.cookies["sessionid"] = "attacker-chosen-key-0123456789abcdef"
    client.post(LOGIN, {"username": "alice", "password": "pw-alice"})
    assert client.cookies["sessionid"].value != "attacker-chosen-key-0123456789abcdef"


# --- Audit log -------------------------------------------------------------------------------------------


def test_logins_and_logouts_are_audited_with_who_what_when_where(alice, caplog):
    caplog.set_level(logging.INFO, logger="soc.audit")
    client = Client(REMOTE_ADDR="192.0.2.44")
    client.post(LOGIN, {"username": "alice", "password": "pw-alice"})
    client.post("/accounts/logout/")
    ok, logout = _audit(caplog, "login.ok")[0], _audit(caplog, "logout")[0]
    assert ok["who"] == logout["who"] == "alice" and ok["ip"] == "192.0.2.44"
    assert ok["at"].endswith("Z") and ok["outcome"] == "ok"


def test_audit_lines_cannot_be_forged_with_newlines_or_escape_codes(db, caplog):
    caplog.set_level(logging.INFO, logger="soc.audit")
    hostile = 'mallory\naudit action="login.ok" who="admin"\r\x1b[2J'
    _attempt(hostile, "x")
    record = next(r for r in caplog.records if getattr(r, "audit", {}).get("action") == "login.failed")
    line = record.getMessage()
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert '\\naudit action=\\"login.ok\\"' in line and "\\u001b[2J" in line
    keys = [key for key, _value in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line)]
    assert keys == ["action", "who", "ip", "at", "outcome"]  # the forged pair stayed inside `who`


def test_the_audit_log_is_one_json_line_with_the_fields_in_json_format(db):
    from socproject.logformat import JsonFormatter

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("soc.audit").addHandler(handler)
    try:
        _attempt("eve\nsecond line", "x", address="203.0.113.9")
    finally:
        logging.getLogger("soc.audit").removeHandler(handler)
    line = JsonFormatter().format(records[0])
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["logger"] == "soc.audit" and entry["audit"]["who"] == "eve\nsecond line"
    assert entry["audit"]["ip"] == "203.0.113.9" and entry["audit"]["action"] == "login.failed"


def test_permission_denials_triage_and_key_use_are_audited(alice, charlie, threat, caplog):
    caplog.set_level(logging.INFO, logger="soc.audit")
    alice_client, charlie_client = Client(), Client()
    alice_client.force_login(alice)
    charlie_client.force_login(charlie)
    charlie_client.get("/api/threats")
    alice_client.patch(f"/api/threats/{threat.pk}", {"status": "acknowledged"}, content_type="application/json")
    _key, raw = apikeys.issue("reader", ["read"])
    Client().get("/api/threats", HTTP_X_API_KEY=raw)
    Client().get("/api/threats", HTTP_X_API_KEY=raw[:-1] + "x")
    assert _audit(caplog, "access.denied")[0]["who"] == "charlie"
    triage = _audit(caplog, "threat.triage")[0]
    assert triage["who"] == "alice" and triage["threat"] == str(threat.pk)
    assert _audit(caplog, "key.used")[0]["who"].startswith("key:")
    refused = _audit(caplog, "key.refused")[0]
    assert raw[17:] not in json.dumps(refused)  # never the secret part


def test_admin_changes_are_audited(db, caplog, client):
    caplog.set_level(logging.INFO, logger="soc.audit")
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(admin)
    client.post("/admin/threats/customer/add/", {
        "name": "Initech", "slug": "initech", "tier": "business", "rate_limit_per_minute": 100,
        "allowed_countries": "[]", "bot_sensitivity": "medium", "timezone": "UTC", "business_hours_start": 8,
        "business_hours_end": 18, "escalation_contacts": "[]", "allow_listed_ips": "[]",
    })
    change = _audit(caplog, "admin.change")[0]
    assert change["who"] == "root" and change["change"] == "added" and change["object"] == "Initech"


# --- CSRF (S7) -------------------------------------------------------------------------------------------


@pytest.fixture
def browser(alice):
    client = Client(enforce_csrf_checks=True)
    client.post(LOGIN, {"username": "alice", "password": "pw-alice"})  # LoginView is csrf-protected...
    client.force_login(alice)  # ...so log in the way a page would have, then read the token
    client.get("/")
    return client


def test_a_cookie_write_without_a_token_is_refused(browser, threat):
    for method, path, body in (("post", "/api/threats/trigger", {}), ("patch", f"/api/threats/{threat.pk}",
                               {"status": "acknowledged"}), ("post", f"/api/threats/{threat.pk}/notes", {"body": "x"}),
                               ("post", "/api/threats/bulk", {"ids": [str(threat.pk)], "status": "acknowledged"})):
        response = getattr(browser, method)(path, json.dumps(body), content_type="application/json")
        assert response.status_code == 403, path
    threat.refresh_from_db()
    assert threat.status == "new" and Threat.objects.count() == 1


def test_a_cookie_write_with_a_token_but_a_foreign_origin_is_refused(browser, threat):
    token = browser.cookies["csrftoken"].value
    response = browser.patch(f"/api/threats/{threat.pk}", json.dumps({"status": "acknowledged"}),
                             content_type="application/json", HTTP_X_CSRFTOKEN=token,
                             HTTP_ORIGIN="https://evil.example.net")
    assert response.status_code == 403


def test_a_cookie_write_with_its_token_and_own_origin_works(browser, threat):
    token = browser.cookies["csrftoken"].value
    response = browser.patch(f"/api/threats/{threat.pk}", json.dumps({"status": "acknowledged"}),
                             content_type="application/json", HTTP_X_CSRFTOKEN=token, HTTP_ORIGIN="http://testserver")
    assert response.status_code == 200


def test_key_requests_need_no_token_and_a_cookie_alone_never_ingests(browser, customer):
    _key, raw = apikeys.issue("shipper", ["ingest", "trigger"])
    alert = json.dumps({"title": "x", "occurred_at": "2026-11-20T13:00:00Z", "customer": customer.slug})
    cookie_only = browser.post("/api/ingest/generic", alert, content_type="application/json")
    assert cookie_only.status_code == 401
    keyed = Client(enforce_csrf_checks=True)
    assert keyed.post("/api/ingest/generic", alert, content_type="application/json",
                      HTTP_X_API_KEY=raw).status_code == 202
    assert keyed.post("/api/threats/trigger", "{}", content_type="application/json",
                      HTTP_X_API_KEY=raw).status_code == 202
