"""A real embedded-mode Daphne process, for end-to-end tests and benchmarks.

`EmbeddedServer` makes a temporary folder, migrates a fresh database (SQLite in that folder, or a
new database on the Postgres server named by `postgres_url`), seeds the demo login (analyst /
analyst, no history) and runs `python -m daphne` on a free loopback port, with the auto-generator
off. `stop()` ends that process by its PID and removes what `start()` made.

`login()` goes through the real login form and returns the session cookies; `trigger()` calls
POST /api/threats/trigger with them. Only the standard library is used here (plus psycopg for
the Postgres case), so both pytest and bench/trigger_latency.py can import it.
"""

import http.cookiejar
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_SECONDS = 20
STOP_TIMEOUT_SECONDS = 10
COMMAND_TIMEOUT_SECONDS = 180
HTTP_TIMEOUT_SECONDS = 10
USERNAME = PASSWORD = "analyst"
# Variables of the caller that must not leak into the server: it gets its own database and stays
# in embedded mode (in-memory channel layer, analysis in-process).
STRIPPED_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedServer:
    def __init__(self, port=None, postgres_url=None, keep_db=False, python=None, collect_static=False, env=None):
        self.port = port or free_port()
        self.collect_static = collect_static  # pages with their JS/CSS (browser tests): collectstatic first
        self.extra_env = env or {}  # settings a test needs, e.g. a short SOC_SLA_WARN_INTERVAL_SECONDS
        self.postgres_url = postgres_url
        self.keep_db = keep_db
        self.python = python or sys.executable
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.tmp = None
        self.database_url = None
        self.pg_database = None
        self.process = None
        self.env = None
        self._stdout = self._stderr = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self):
        try:
            self.tmp = Path(tempfile.mkdtemp(prefix="soc-e2e-"))
            self.database_url = self._create_database()
            self.env = self._environment()
            self._manage("migrate", "--noinput")
            self._manage("seed_demo", "--insecure-demo-login", "--history", "0")
            if self.collect_static:
                self._manage("collectstatic", "--noinput", "--verbosity", "0")
            self._start_daphne()
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, while_down=None):
        """Stop Daphne (every socket drops), call `while_down()` if given, and start Daphne again on
        the same port and database. Returns what `while_down` returned."""
        self._stop_daphne()
        result = while_down() if while_down else None
        self._start_daphne()
        return result

    def manage(self, *args):
        """Run a management command against this server's database; returns its stdout."""
        return self._manage(*args)

    def stop(self):
        """Terminate the Daphne PID (kill it after 10 s), then drop what start() created."""
        self._stop_daphne()
        if self.pg_database and not self.keep_db:
            self._drop_database()
            self.pg_database = None
        if self.tmp is not None and not self.keep_db:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def stderr_text(self, limit=20000):
        """The tail of Daphne's stderr (its log), for failure reports."""
        if self.tmp is None or not (self.tmp / "daphne.stderr").exists():
            return ""
        return (self.tmp / "daphne.stderr").read_text(errors="replace")[-limit:]

    # --- helpers ---------------------------------------------------------------------------

    def _start_daphne(self):
        self._stdout = open(self.tmp / "daphne.stdout", "ab")
        self._stderr = open(self.tmp / "daphne.stderr", "ab")
        self.process = subprocess.Popen(
            [self.python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "socproject.asgi:application"],
            cwd=REPO_ROOT, env=self.env, stdout=self._stdout, stderr=self._stderr, stdin=subprocess.DEVNULL,
        )
        self._wait_until_healthy()

    def _stop_daphne(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        for handle in (self._stdout, self._stderr):
            if handle is not None:
                handle.close()
        self._stdout = self._stderr = None

    def _environment(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_") and k not in STRIPPED_VARIABLES}
        env.update(
            DJANGO_SETTINGS_MODULE="socproject.settings",
            DJANGO_SECRET_KEY="e2e-test-secret-key-" + secrets.token_hex(16),
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DJANGO_DEBUG="false",
            DATABASE_URL=self.database_url,
            ENABLE_AUTO_THREAT_GENERATION="false",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def _manage(self, *args):
        result = subprocess.run(
            [self.python, "manage.py", *args], cwd=REPO_ROOT, env=self.env, capture_output=True, text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def _wait_until_healthy(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        last_error = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited with {self.process.returncode}:\n{self.stderr_text()}")
            try:
                with urllib.request.urlopen(self.base_url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                last_error = exc
            time.sleep(0.1)  # waiting for a real process to bind its port
        raise RuntimeError(
            f"daphne did not answer /health within {STARTUP_TIMEOUT_SECONDS} s ({last_error}):\n{self.stderr_text()}"
        )

    def _create_database(self):
        if not self.postgres_url:
            return f"sqlite:///{self.tmp}/e2e.sqlite3"
        self.pg_database, url = create_postgres_database(self.postgres_url, prefix="e2e")
        return url

    def _drop_database(self):
        drop_postgres_database(self.postgres_url, self.pg_database)


def create_postgres_database(server_url, prefix):
    """A new, empty database on the Postgres server of `server_url`; returns (name, its URL)."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(6)}"
    with _maintenance_connection(psycopg, server_url) as conn:
        for attempt in range(5):
            try:
                conn.execute(f'CREATE DATABASE "{name}"')
                break
            except psycopg.errors.ObjectInUse:  # template1 busy: another session is creating a database
                if attempt == 4:
                    raise
                time.sleep(0.5)
    parts = urllib.parse.urlsplit(server_url)
    return name, urllib.parse.urlunsplit(parts._replace(path="/" + name))


def drop_postgres_database(server_url, name):
    import psycopg

    with _maintenance_connection(psycopg, server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _maintenance_connection(psycopg, server_url):
    parts = urllib.parse.urlsplit(server_url)
    return psycopg.connect(urllib.parse.urlunsplit(parts._replace(path="/postgres")), autocommit=True)


# --- HTTP as a browser does it ---------------------------------------------------------------


class Session:
    """A logged-in browser session: the cookie jar plus the CSRF token Django expects on writes."""

    def __init__(self, base_url, cookies):
        self.base_url = base_url
        self.cookies = cookies
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))

    def cookie(self, name):
        return next((c.value for c in self.cookies if c.name == name), None)

    @property
    def cookie_header(self):
        return "; ".join(f"{c.name}={c.value}" for c in self.cookies)

    def get_json(self, path):
        with self.opener.open(self.base_url + path, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return json.loads(response.read())

    def post_json(self, path, payload):
        request = urllib.request.Request(
            self.base_url + path, data=json.dumps(payload).encode(), method="POST",
            headers={
                "Content-Type": "application/json", "X-CSRFToken": self.cookie("csrftoken") or "",
                "Referer": self.base_url + "/", "Origin": self.base_url,
            },
        )
        with self.opener.open(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return response.status, json.loads(response.read())


def login(base_url, username=USERNAME, password=PASSWORD):
    """Log in through /accounts/login/ like a browser; returns a Session holding the cookies."""
    session = Session(base_url, http.cookiejar.CookieJar())
    login_url = base_url + "/accounts/login/"
    with session.opener.open(login_url, timeout=HTTP_TIMEOUT_SECONDS) as response:
        page = response.read().decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if not match:
        raise RuntimeError("no csrfmiddlewaretoken on the login page")
    form = urllib.parse.urlencode({
        "csrfmiddlewaretoken": match.group(1), "username": username, "password": password, "next": "",
    }).encode()
    request = urllib.request.Request(login_url, data=form, method="POST", headers={"Referer": login_url})
    with session.opener.open(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
        response.read()
    if not session.cookie("sessionid"):
        raise RuntimeError(f"login as {username!r} failed: no session cookie")
    return session


def trigger(session, **payload):
    """POST /api/threats/trigger (threat_type=, scenario=, customer=); returns the 202 body."""
    status, body = session.post_json("/api/threats/trigger", payload)
    if status != 202:
        raise RuntimeError(f"trigger answered {status}: {body}")
    return body
