"""Browser tests: Playwright drives Debian's Chromium (/usr/bin/chromium, never `playwright install`)
against a real embedded-mode Daphne process (tests/integration/server.py) with its own database.

Every test here is marked `browser` and `integration` (so `make test-fast` skips them). One server
serves the whole package; tests that restart it start their own. Each page fails its test when it logs a
JavaScript error or a Content-Security-Policy violation.
"""

import json
import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.server import PASSWORD, USERNAME, EmbeddedServer

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
TEAMMATE = "bob"  # a second analyst, for "another analyst's screen"
TIMEOUT_MS = 15_000
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", Path(__file__).resolve().parents[2] / "docs" / "screenshots"))
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).resolve().parent == HERE:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.integration)


# Package scope, not session: Playwright's sync API runs an event loop on this thread while it is
# open, and every later test that calls asyncio.run() would fail. It closes after the last browser test.
@pytest.fixture(scope="package")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


def start_server(request, history=0):
    """A fresh server with the demo login, a teammate, `history` past threats (partly triaged, as
    `make run` shows them) and collected static files."""
    running = EmbeddedServer(collect_static=True).start()
    running.manage("seed_demo", "--insecure-demo-login", "--username", TEAMMATE, "--password", TEAMMATE,
                   "--history", str(history))
    failed_before = request.session.testsfailed
    return running, failed_before


def stop_server(request, running, failed_before):
    log = running.stderr_text() if request.session.testsfailed > failed_before else ""
    running.stop()
    if log:
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\n--- daphne stderr ---\n{log}\n--- end of daphne stderr ---")


@pytest.fixture(scope="package")
def server(request):
    running, failed_before = start_server(request, history=40)
    try:
        yield running
    finally:
        stop_server(request, running, failed_before)


class Browsers:
    """Opens logged-in pages in separate browser contexts (separate cookies: separate analysts) and
    collects every page's JavaScript errors and CSP violations."""

    def __init__(self, chromium, server):
        self.chromium, self.server = chromium, server
        self.contexts, self.problems, self.expected = [], [], []
        self.frames = {}  # page -> every WebSocket frame it received, parsed, in order

    def page(self, username=USERNAME, password=None, path="/", clock=False, **context_options):
        """A logged-in page at `path`; `clock=True` installs Playwright's fake clock (from now), so a
        test can move the page's time forward."""
        context = self.chromium.new_context(viewport={"width": 1440, "height": 1000}, locale="en-US",
                                            **context_options)
        if clock:
            context.clock.install()
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda error: self.problems.append(f"{username}: {error}"))
        page.on("console", lambda message: self._console(username, message))
        self.frames[page] = frames = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(json.loads(payload))))
        page.goto(self.server.base_url + "/accounts/login/?next=" + path)
        page.fill("#id_username", username)
        page.fill("#id_password", password or (PASSWORD if username == USERNAME else username))
        page.click("button[type=submit]")
        page.wait_for_url(self.server.base_url + path)
        wait_connected(page)
        return page

    def _console(self, username, message):
        # A refused API call (a test's deliberate 400) is logged by Chrome as a failed resource
        # load: not a page problem. Script errors and CSP refusals are.
        if message.text.startswith("Failed to load resource"):
            return
        if any(message.text.startswith(prefix) for prefix in self.expected):
            return
        if message.type == "error" or "Content Security Policy" in message.text:
            self.problems.append(f"{username}: console {message.type}: {message.text}")

    def expect_console(self, prefix):
        """A console message this test causes on purpose (e.g. a refused WebSocket while the server is down)."""
        self.expected.append(prefix)

    def close(self):
        for context in self.contexts:
            context.close()


@contextmanager
def browsers_for(chromium, server):
    opened = Browsers(chromium, server)
    try:
        yield opened
    finally:
        opened.close()
    assert opened.problems == [], "the pages logged errors"


@pytest.fixture
def browsers(chromium, server):
    with browsers_for(chromium, server) as opened:
        yield opened


# --- helpers shared by the browser tests --------------------------------------------------------


def wait_connected(page):
    page.wait_for_selector("#connection[data-state=connected]")


def settle(page):
    """Let the page finish what it drew for the events it has (the overview renders on animation frames)."""
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def metric(page, key):
    return page.locator(f'[data-metric="{key}"]').inner_text()


def row(page, threat_id, table="#feed"):
    return page.locator(f'{table} tr.threat-row[data-id="{threat_id}"]')


def api_get(page, path):
    """GET an API path with the page's own session (what the page itself could read)."""
    return page.evaluate("path => fetch(path, {credentials: 'same-origin'}).then(r => r.json())", path)


def api_send(page, method, path, body):
    return page.evaluate(
        """([method, path, body]) => {
            const token = document.cookie.match(/csrftoken=([^;]+)/)[1];
            return fetch(path, {method, credentials: 'same-origin', body: JSON.stringify(body),
                                headers: {'Content-Type': 'application/json', 'X-CSRFToken': token}})
              .then(r => r.json().then(data => ({status: r.status, data})));
        }""",
        [method, path, body],
    )


def trigger_from_button(page, selector):
    """Click a trigger button; returns the id of the threat the API queued."""
    with page.expect_response(lambda r: r.url.endswith("/api/threats/trigger")) as answer:
        page.click(selector)
    assert answer.value.status == 202
    return answer.value.json()["id"]


def activity_seqs(page):
    return [int(s) for s in page.locator("#activity li[data-seq]").evaluate_all("els => els.map(e => e.dataset.seq)")]
