"""Hostile alert text in a real browser: titles, observables and a customer name carrying <script>,
"><img onerror>, <svg onload> and javascript: links render as inert text, whether the page builds
the row from a WebSocket event or the server renders it; the CSP refuses inline script; every
request the pages make stays on the server (nothing from a CDN)."""

import json

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import api_send, row

SCRIPT = '<script>window.__xss = "script"</script>'
IMG = '"><img src=x onerror="window.__xss = \'img\'">'
SVG = "<svg onload=\"window.__xss = 'svg'\">"
JS_LINK = "javascript:window.__xss='link'"
TITLE = f"Login {SCRIPT} from {IMG}"
CUSTOMER = f"Evil {SVG} Corp"

CREATE = """
import json
from django.utils import timezone
from agents.tasks import analysis_inline
from threats import services
from threats.models import Customer
spec = json.loads({spec!r})
customer, _ = Customer.objects.get_or_create(name=spec["customer"], defaults={{"slug": "evil-corp"}})
with analysis_inline():
    threat = services.do_create_threat(
        customer=customer, threat_type="bot_traffic", title=spec["title"], occurred_at=timezone.now(),
        actor=services.SYSTEM, observables=spec["observables"], raw=spec["raw"])
print(threat.pk)
"""


def create_hostile_threat(server):
    """Through the service layer, in a separate process (as an importer would), with hostile fields."""
    spec = {
        "customer": CUSTOMER, "title": TITLE,
        "observables": {"src_ip": "192.0.2.66", "user_agent": IMG, "user": SCRIPT, "country": "US",
                        "endpoint": "/api/login", "urls": [JS_LINK], "domains": [SVG]},
        "raw": {"metadata": {"note": SCRIPT, "link": JS_LINK, "html": IMG}},
    }
    return server.manage("shell", "-c", CREATE.format(spec=json.dumps(spec))).strip().splitlines()[-1]


@pytest.fixture
def watched(browsers):
    """A logged-in overview that records dialogs, and every request its pages make."""
    page = browsers.page()
    page.dialogs, page.requests = [], []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("request", lambda request: page.requests.append(request.url))
    return page


def assert_inert(page, scope="body"):
    assert page.evaluate("() => window.__xss") is None
    assert page.dialogs == []
    root = page.locator(scope)
    injected = "img, svg:not(.bar-track), script:not([src]):not([type='application/json']), iframe, object, embed"
    assert root.locator(injected).count() == 0
    assert page.locator('a[href^="javascript:" i]').count() == 0


def test_hostile_text_arriving_live_is_shown_as_text(browsers, server, watched):
    page = watched
    hostile = create_hostile_threat(server)

    # Created by another process: this page learns of it with the next live event (catch-up).
    api_send(page, "POST", "/api/threats/trigger", {"threat_type": "bot_traffic"})

    expect(row(page, hostile).locator("td.title a")).to_have_text(TITLE)
    expect(row(page, hostile).locator("td").nth(3)).to_have_text(CUSTOMER)
    expect(page.locator("#activity li a", has_text=SCRIPT).first).to_be_visible()
    assert_inert(page, "#feed")
    assert_inert(page, "#activity")


@pytest.mark.parametrize("path", ["/", "/threats/", "/threats/{id}/"])
def test_hostile_text_rendered_by_the_server_is_inert(browsers, server, watched, path):
    page = watched
    hostile = create_hostile_threat(server)

    page.goto(server.base_url + path.format(id=hostile))

    assert_inert(page)
    if "{id}" in path:
        expect(page.locator("#facts .threat-title")).to_have_text(TITLE)
        observables = page.locator("dl.observables").inner_text()
        for text in (IMG, SCRIPT, JS_LINK, SVG):
            assert text in observables
        assert SCRIPT in page.locator("pre.raw").inner_text().replace('\\"', '"')
    else:
        expect(page.locator(f'tr.threat-row[data-id="{hostile}"] td.title a')).to_have_text(TITLE)


def test_the_policy_refuses_inline_script_and_the_pages_load_nothing_from_elsewhere(browsers, server, watched):
    page = watched
    browsers.expect_console("Executing inline script violates")
    browsers.expect_console("Refused to execute inline script")

    blocked = page.evaluate("""() => new Promise(resolve => {
        document.addEventListener('securitypolicyviolation', e => resolve(e.violatedDirective), {once: true});
        const s = document.createElement('script');
        s.textContent = 'window.__inline = 1';
        document.body.appendChild(s);
    })""")

    assert blocked.startswith("script-src")
    assert page.evaluate("() => window.__inline") is None
    for path in ("/threats/", "/api/docs"):
        page.goto(server.base_url + path)
    for url in page.requests:
        assert url.startswith((server.base_url + "/", "data:")), url
